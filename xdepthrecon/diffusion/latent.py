"""The latent diffusion model: a classical analysis plus a generated residual, in the autoencoder's latent.

A regression mean plus a generated residual (as in residual diffusion designs): the model composes a
classical :class:`~xdepthrecon.analysis.classical.Analysis`, whose guess (background + SST regression +
optimal interpolation, in degC) is the mean, and the denoiser generates the residual latent

``r = normalize(encode(truth)) - normalize(encode(guess))``,

in units of its own spread (``residual_std``, per latent channel), conditioned on
(:meth:`LatentDiffusion.prepare`, the one function that builds the condition for training, calibration,
reconstruction and tests) what the guess has not yet used, as departures from it in the residual's units:

- the SST's departure from the guess's surface level, in units of its spread (``surface_departure_std``), 0
  where missing, and where it is valid;
- the observed columns' latent departure from the guess's, 0 where no column is observed;
- the observed fraction of each column's levels;
- the normalised latent of the guess (where the fronts and eddies it holds are).

Departures, not the absolute SST and observations: what the guess missed is a few hundredths of the absolute
fields' range, and a network conditioned on them had to learn to subtract them with that precision (on the
nature run its correction gained 1-2 % over the guess in the upper 300 m, a regression on the departures 14-16 %).
A sample ``r`` decodes to ``guess + decode(base + s r) - decode(base)`` with ``base`` the guess's latent and
``s`` the ``residual_std`` (:meth:`LatentDiffusion.decode_residual`): an untrained network (its head starts at
zero) returns the guess exactly, and the autoencoder's error does not blur it. The ``correction_gate`` (one
weight in [0, 1] per class of observation density and level, fitted by ``train_diffusion`` on validation patches)
keeps the mean's correction only as far as it helps there (:meth:`LatentDiffusion.gated`); the density classes
are the analysis's (:class:`~xdepthrecon.analysis.departures.DepartureAnalysis`), since a correction that helps
where profiles are sparse may not where they are dense. ``reconstruct`` shifts all members alike, so their spread
is kept. Everything a user needs to reconstruct travels with the model (``save``/``xdepthrecon.load``); loading
never unpickles.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from xdepthrecon import checkpoint
from xdepthrecon._halo import interior_of
from xdepthrecon.analysis.classical import Analysis, AnalysisInputs, Guess, calibrated_variance, missing_sst
from xdepthrecon.analysis.errors import ErrorModel
from xdepthrecon.diffusion.schedule import NoiseSchedule
from xdepthrecon.models.autoencoder import DepthBandAutoencoder
from xdepthrecon.models.unet import ConditionalUNet

#: The normalisation statistics a model keeps, each a vector.
STATISTICS = ("latent_mean", "latent_std", "residual_std", "surface_departure_std")
#: The weights of the network's correction a model keeps, per density class and level: with SST, and without.
GATES = ("correction_gate", "gap_correction_gate")
#: Fraction of a field's ocean cells that may lack SST beyond what the model was trained with before
#: :meth:`LatentDiffusion.warn_sst_gaps` warns (a few coastal cells do not matter).
SST_GAP_TOLERANCE = 0.01


class Prepared(NamedTuple):
    """What :meth:`LatentDiffusion.prepare` makes of a batch of observations: the condition channels, the
    analysis's guess, its normalised latent (the base the residual is added to), each field's density class and its
    ocean cells without SST (batch, H, W)."""

    condition: torch.Tensor
    guess: Guess
    base: torch.Tensor
    density_class: torch.Tensor
    gaps: torch.Tensor


def _gate(values: Any, classes: int, levels: int) -> torch.Tensor:
    """The correction gate ``(classes, levels)`` from ``values`` of that shape, one per level (every class alike)
    or None (1); each in [0, 1]."""
    gate = torch.as_tensor(np.ones(levels) if values is None else np.asarray(values), dtype=torch.float32)
    if gate.shape == (levels,):
        gate = gate.expand(classes, levels).clone()
    if gate.shape != (classes, levels) or not torch.all((gate >= 0) & (gate <= 1)):
        raise ValueError(f"correction_gate must hold {levels} values or {classes} x {levels} (one per density class "
                         f"and level) in [0, 1], got {gate.tolist()}")
    return gate


def _vector(values: Any, size: int, name: str) -> torch.Tensor:
    vector = torch.as_tensor(np.asarray(values, dtype=np.float32))
    if vector.shape != (size,) or not torch.all(torch.isfinite(vector)):
        raise ValueError(f"{name} must hold {size} finite values, got shape {tuple(vector.shape)}")
    return vector


class LatentDiffusion(nn.Module):
    """Conditional latent diffusion of the residual of a classical analysis (see the module docstring).

    Parameters
    ----------
    autoencoder
        The depth-band autoencoder whose latent is generated.
    denoiser
        The backbone; ``channels`` the latent channels, ``condition_channels``
        :meth:`condition_channels` ``(latent_channels)``.
    schedule
        Noise schedule (and prediction target) the denoiser is trained with.
    analysis
        The classical analysis whose guess the model corrects.
    statistics
        ``latent_mean``, ``latent_std`` (per latent channel, over the ocean) that normalise the latent,
        ``residual_std`` (per latent channel) the spread of the truth's normalised latent about the guess's, and
        ``surface_departure_std`` (one value) that of the SST about the guess's surface level.
    error_model, covered_error_model
        The validation error of the members' mean against the analysis's predicted variance
        (:class:`~xdepthrecon.analysis.errors.ErrorModel`), in new regions and, for cells the training data
        covered, at new times, each with its ratios under SST gaps where calibration saw clouds; they floor the
        spread ``reconstruct`` reports. None: the ensemble's alone.
    correction_gate
        Weight of the network's correction per density class of the analysis and level ``(classes, levels)``, or
        per level for every class, in [0, 1]; None: 1 (the whole correction).
    gap_correction_gate
        The same where the SST of an ocean cell is missing (the guess there has no SST term, and the correction
        helps otherwise); None: ``correction_gate``.
    cloud_cover
        The largest fraction of a patch's SST hidden by simulated clouds in training
        (:class:`~xdepthrecon.ObservationConfig`); more missing SST than that makes :meth:`warn_sst_gaps` warn.
    """

    def __init__(self, autoencoder: DepthBandAutoencoder, denoiser: ConditionalUNet, schedule: NoiseSchedule,
                 analysis: Analysis, statistics: Mapping[str, Any], error_model: ErrorModel | None = None,
                 covered_error_model: ErrorModel | None = None, *, correction_gate: Any = None,
                 gap_correction_gate: Any = None, cloud_cover: float = 0.0) -> None:
        super().__init__()
        latent = autoencoder.latent_channels
        expected = self.condition_channels(latent)
        if denoiser.channels != latent or denoiser.condition_channels != expected:
            raise ValueError(f"the denoiser must take {latent} sample channels and {expected} condition channels "
                             f"(1 SST departure + 1 SST valid + {latent} observed departure + 1 observed fraction + "
                             f"{latent} guess); it takes {denoiser.channels} and {denoiser.condition_channels}")
        if not 0.0 <= cloud_cover < 1.0:
            raise ValueError(f"cloud_cover must be in [0, 1), got {cloud_cover}")
        if analysis.levels != autoencoder.in_channels:
            raise ValueError(f"the analysis has {analysis.levels} levels; the autoencoder has "
                             f"{autoencoder.in_channels}")
        missing = [name for name in STATISTICS if name not in statistics]
        if missing:
            raise ValueError(f"statistics lack {missing}; give {STATISTICS}")
        self.autoencoder = autoencoder
        self.denoiser = denoiser
        self.schedule = schedule
        self.analysis = analysis
        self.error_model = error_model
        self.covered_error_model = covered_error_model
        self.cloud_cover = float(cloud_cover)
        for name in STATISTICS:
            size = 1 if name.startswith("surface") else latent
            self.register_buffer(name, _vector(statistics[name], size, name), persistent=False)
        gates = (correction_gate, correction_gate if gap_correction_gate is None else gap_correction_gate)
        for name, values in zip(GATES, gates):
            self.register_buffer(name, _gate(values, analysis.departures.classes, analysis.levels), persistent=False)
        #: Training history (one dict per epoch), set by ``train_diffusion``.
        self.history: list[dict[str, Any]] = []

    @staticmethod
    def condition_channels(latent_channels: int) -> int:
        """Number of condition channels for this latent size."""
        return 3 + 2 * latent_channels

    # --- saving ---------------------------------------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """Everything but arrays and weights, as a JSON-serialisable dict."""
        optional = lambda model: None if model is None else model.config  # noqa: E731
        return {"autoencoder": self.autoencoder.config, "denoiser": self.denoiser.config,
                "schedule": self.schedule.config, "analysis": self.analysis.config,
                "error_model": optional(self.error_model), "covered_error_model": optional(self.covered_error_model),
                "cloud_cover": self.cloud_cover}

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Normalisation statistics and the autoencoder's levels and statistics, as numpy arrays."""
        arrays = {name: getattr(self, name).detach().cpu().numpy() for name in (*STATISTICS, *GATES)}
        arrays.update({f"autoencoder_{key}": value for key, value in self.autoencoder.arrays.items()})
        return arrays

    @classmethod
    def from_saved(cls, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> LatentDiffusion:
        """Rebuild an (untrained) model from :attr:`config` and :attr:`arrays`; weights are loaded after."""
        if "analysis" not in config or not isinstance(config["analysis"], Mapping) or \
                "settings" not in config["analysis"]:
            raise ValueError("this checkpoint holds a diffusion model of xdepthrecon 0.1, whose network corrects a "
                             "latent background and first guess; xdepthrecon 0.2 models correct a classical "
                             "analysis (xdepthrecon.fit_analysis). Retrain it with xdepthrecon.train_diffusion")
        if "residual_std" not in arrays:
            raise ValueError("this checkpoint holds a diffusion model whose network is conditioned on the absolute "
                             "SST and observations; this version conditions it on their departures from the "
                             "analysis's guess, which the saved network cannot read. Retrain it with "
                             "xdepthrecon.train_diffusion (the autoencoder and analysis can be reused)")
        prefix = "autoencoder_"
        autoencoder = DepthBandAutoencoder(**config["autoencoder"],
                                           **{k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
        errors, covered = (None if config[k] is None else ErrorModel(**config[k])
                           for k in ("error_model", "covered_error_model"))
        return cls(autoencoder, ConditionalUNet(**config["denoiser"]), NoiseSchedule(**config["schedule"]),
                   Analysis.from_saved(config["analysis"], {}), {name: arrays[name] for name in STATISTICS},
                   errors, covered, **{name: arrays[name] for name in GATES}, cloud_cover=config["cloud_cover"])

    def save(self, path: str | PathLike[str], training_state: Mapping[str, Any] | None = None) -> Path:
        """Save the model (and optional training state) to one file; see :func:`xdepthrecon.checkpoint.save`."""
        return checkpoint.save(self, path, training_state=training_state)

    # --- the maths ------------------------------------------------------------------------------------------

    def normalize_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Latent in autoencoder units -> normalised latent (per channel)."""
        return (z - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latent -> temperature (batch, levels, H, W) in degC."""
        return self.autoencoder.decode(z * self.latent_std[:, None, None] + self.latent_mean[:, None, None])

    def encode_target(self, y: torch.Tensor) -> torch.Tensor:
        """Normalised latent of a full cube ``y`` (batch, levels, H, W) in degC."""
        return self.normalize_latent(self.autoencoder.encode(y))

    def latent_of(self, r: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """The normalised latent ``base + residual_std * r`` of residuals ``r`` (in the residual's units) about
        the guess's normalised latent ``base``."""
        return base + r * self.residual_std[:, None, None]

    def residual_of(self, z: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """The residual (in its own units) of normalised latents ``z`` about ``base``: the inverse of
        :meth:`latent_of`."""
        return (z - base) / self.residual_std[:, None, None]

    @staticmethod
    def sst_departure(sst: torch.Tensor, guess: torch.Tensor) -> torch.Tensor:
        """The SST ``(batch, 1, H, W)``'s departure (degC) from the surface level of the ``guess``."""
        return sst - guess[:, :1]

    def prepare(self, inputs: AnalysisInputs, *, with_variance: bool = False,
                interior: torch.Tensor | None = None) -> Prepared:
        """The condition, the analysis's guess and its latent for a batch of observations; with ``interior``
        ((batch, 4): first row, first column, rows and columns of each field's part, e.g. a training patch within
        its halo), the analysis and the density class use the whole of ``inputs``, the rest is of the part."""
        guess = self.analysis(inputs, with_variance=with_variance, interior=interior)
        with torch.no_grad():
            observed = inputs.mask.bool() & ~torch.isnan(inputs.x)
            classes = self.analysis.departures.classes_of(observed, inputs.ocean).to(guess.mean.device)
            observed, x, sst, gaps = (interior_of(values, interior)
                                      for values in (observed, inputs.x, inputs.sst[:, :1], missing_sst(inputs)))
            fraction = observed.float().mean(dim=1, keepdim=True)
            base = self.encode_target(guess.mean)
            observed_latent = self.encode_target(torch.where(observed, x, guess.mean))
            observed_departure = torch.where(fraction > 0, self.residual_of(observed_latent, base), 0.0)
            valid = torch.isfinite(sst)
            surface = torch.where(valid, self.sst_departure(sst, guess.mean) / self.surface_departure_std, 0.0)
        condition = torch.cat([surface, valid.to(surface), observed_departure, fraction, base], dim=1)
        return Prepared(condition, guess, base, classes, gaps)

    def warn_sst_gaps(self, inputs: AnalysisInputs) -> None:
        """Warn when the SST of a batch misses more of its ocean cells than the model was trained to miss."""
        ocean = torch.ones_like(inputs.sst[:, 0], dtype=torch.bool) if inputs.ocean is None else inputs.ocean
        missing = missing_sst(inputs).sum(dim=(-2, -1)) / ocean.sum(dim=(-2, -1)).clamp(min=1)
        worst = float(missing.max())
        if worst <= self.cloud_cover + SST_GAP_TOLERANCE:
            return
        reason = (f"this model saw at most {self.cloud_cover:.0%} of a patch's SST hidden in training; retrain it "
                  "with a larger ObservationConfig.cloud_cover")
        warnings.warn(f"the SST misses {worst:.0%} of the ocean cells; {reason}, or fill the SST (an L4 product). "
                      "Where the SST is missing the estimate rests on the profiles alone, and the network's "
                      "correction under more gaps than it saw is untested (docs/performance.md, cloud gaps).",
                      UserWarning, stacklevel=2)

    def residual(self, y: torch.Tensor, prepared: Prepared) -> torch.Tensor:
        """The residual latent of full cubes ``y`` (degC, NaN on land) from the guess's, in its own units; 0 on
        land."""
        ocean = ~torch.isnan(y).all(dim=1, keepdim=True)
        return torch.where(ocean, self.residual_of(self.encode_target(y), prepared.base), 0.0)

    def loss(self, y: torch.Tensor, prepared: Prepared, context: Mapping[str, torch.Tensor], *,
             generator: torch.Generator | None = None, levels: str = "uniform", mean_weight: float = 0.0
             ) -> torch.Tensor:
        """Denoising loss on the ocean pixels of a batch of full cubes ``y`` (degC, NaN on land), at noise
        levels drawn as ``levels`` says (:meth:`~xdepthrecon.diffusion.schedule.NoiseSchedule.draw_levels`); with
        ``mean_weight`` > 0 each item is drawn a second time at the noisiest level, where the denoiser's output
        is its estimate of the residual's conditional mean from the condition alone (what the gates are fitted
        on and the ensemble's mean rests on), and that draw's loss is added with this weight: more training of
        the mean for one more pass of the network, without another analysis."""
        ocean = ~torch.isnan(y).all(dim=1, keepdim=True)
        trainable = any(p.requires_grad for p in self.autoencoder.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and trainable):
            r0 = self.residual(y, prepared)
        draws = 2 if mean_weight > 0 else 1
        repeat = lambda values: torch.cat([values] * draws)  # noqa: E731
        r0 = repeat(r0)
        noise = torch.randn(r0.shape, generator=generator).to(r0.device)
        t = self.schedule.draw_levels(len(ocean), generator, levels)
        if draws == 2:
            t = torch.cat([t, torch.full_like(t, self.schedule.steps - 1)])
        t = t.to(r0.device)
        output = self.denoiser(self.schedule.add_noise(r0, noise, t), t, repeat(prepared.condition),
                               **{name: repeat(values) for name, values in context.items()})
        target = self.schedule.training_target(r0, noise, t)
        weight = repeat(ocean.expand(-1, output.shape[1], -1, -1).float())
        squares = ((output - target) ** 2 * weight).unflatten(0, (draws, -1)).flatten(1).sum(dim=1)
        return (squares[0] + mean_weight * squares[1:].sum()) / weight[:len(ocean)].sum().clamp(min=1.0)

    def decode_residual(self, r: torch.Tensor, prepared: Prepared,
                        decoded_base: torch.Tensor | None = None) -> torch.Tensor:
        """Temperature (batch, levels, H, W) in degC of residual latents ``r``: the guess plus the decoded
        departure of :meth:`latent_of` ``r`` from ``base`` (ungated: see :meth:`gated`). ``decoded_base``:
        ``decode_latent(prepared.base)`` when already at hand (it is the same for every member of an ensemble)."""
        if decoded_base is None:
            decoded_base = self.decode_latent(prepared.base)
        return prepared.guess.mean + (self.decode_latent(self.latent_of(r, prepared.base)) - decoded_base)

    def gated(self, estimate: torch.Tensor, guess: torch.Tensor, density_class: torch.Tensor,
              gaps: torch.Tensor | None = None) -> torch.Tensor:
        """An estimate of the mean (degC, levels on axis -3) moved back towards the ``guess`` by the
        ``correction_gate`` of its ``density_class`` (one per batch item, or one value without a batch axis):
        ``guess + gate (estimate - guess)``; the ``gap_correction_gate`` in the cells of ``gaps`` (H, W, with the
        batch axis if any: :attr:`Prepared.gaps`)."""
        index = density_class.to(self.correction_gate.device)
        gate = self.correction_gate[index].to(estimate)[..., None, None]
        if gaps is not None:
            gap_gate = self.gap_correction_gate[index].to(estimate)[..., None, None]
            gate = torch.where(gaps.to(estimate.device).unsqueeze(-3), gap_gate, gate)
        return guess + gate * (estimate - guess)

    def error_variance(self, prepared: Prepared, coverage: torch.Tensor | None = None) -> torch.Tensor | None:
        """The network's calibrated error variance (None without an error model; see
        :func:`~xdepthrecon.analysis.classical.calibrated_variance`)."""
        if self.error_model is None:
            return None
        return calibrated_variance(prepared.guess.predicted_variance, self.error_model, self.covered_error_model,
                                   coverage, gaps=prepared.gaps)
