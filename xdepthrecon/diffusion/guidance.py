"""The parts a sampler is given: the conditioned network as a denoiser, and replacement of observed values.

:class:`ConditionedDenoiser` turns a model, a prepared condition and the FiLM context into the
``denoiser(r_t, t) -> output`` the samplers take (:mod:`xdepthrecon.diffusion.samplers`), running the network
over the tiles of a large grid in chunks and blending them (:class:`~xdepthrecon.tiling.Tiling`).
:class:`Replacement` is a projection of each step's clean estimate: decode it, put the observations in,
encode it again, so the sample stays consistent with what was observed.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from xdepthrecon._precision import network_precision
from xdepthrecon.diffusion.latent import LatentDiffusion, Prepared
from xdepthrecon.tiling import Tiling, tiled


class ConditionedDenoiser:
    """The model's network with a fixed condition: ``denoiser(r_t, t) -> output`` in the schedule's target.

    Parameters
    ----------
    model
        The diffusion model.
    condition
        Condition channels (batch, C, H, W) (:attr:`Prepared.condition
        <xdepthrecon.diffusion.latent.Prepared.condition>`), one per sample.
    context
        FiLM context (``latitude``, ``longitude``, ``day_of_year``), one value per sample (per tile and
        sample with a tiling).
    tiling
        Run the network on these tiles of the grid (all tiles and samples batched, tile-major) and blend
        the outputs; None: on the whole grid at once.
    batch_size
        Tiles x samples per network call.
    fast
        Run the network in bfloat16 autocast (None: where that is faster; see ``SamplingOptions``); the output
        is float32.
    """

    def __init__(self, model: LatentDiffusion, condition: torch.Tensor, context: Mapping[str, torch.Tensor], *,
                 tiling: Tiling | None = None, batch_size: int = 16, fast: bool | None = None) -> None:
        self.model, self.tiling, self.batch_size, self.fast = model, tiling, batch_size, fast
        self.condition = condition if tiling is None else tiling.cut(condition)
        self.context = dict(context)

    def __call__(self, r_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        run = self._network if self.tiling is None else tiled(self._network, self.tiling)
        return run(r_t, t)

    def _network(self, pieces: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, len(pieces), self.batch_size):
            part = slice(start, start + self.batch_size)
            with network_precision(pieces.device, self.fast):
                out.append(self.model.denoiser(pieces[part], levels[part], self.condition[part],
                                               **{k: v[part] for k, v in self.context.items()}).float())
        return torch.cat(out)


class Replacement:
    """Projection keeping the observed values: ``replacement(r0, t) -> r0``.

    The clean residual estimate is decoded, the observations put in where observed, and the columns
    holding an observation encoded again; other columns keep the estimate.

    Parameters
    ----------
    model
        The diffusion model.
    prepared
        The batch's prepared condition (its base and guess), one per sample.
    x, mask
        The observations (batch, levels, H, W) in degC and where they are observed.
    """

    def __init__(self, model: LatentDiffusion, prepared: Prepared, x: torch.Tensor, mask: torch.Tensor) -> None:
        self.model, self.prepared = model, prepared
        self.x, self.mask = x, mask.bool()
        self.columns = self.mask.any(dim=1, keepdim=True)

    def __call__(self, r0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        decoded = self.model.decode_latent(self.model.latent_of(r0, self.prepared.base))
        corrected = self.model.residual_of(self.model.encode_target(torch.where(self.mask, self.x, decoded)),
                                           self.prepared.base)
        return torch.where(self.columns, corrected, r0)
