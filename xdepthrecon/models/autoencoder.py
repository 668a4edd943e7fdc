"""The depth-band autoencoder: compresses the depth levels of a temperature field into a few latent channels.

The encoder is one Conv3x3+GELU per width of ``encoder_channels``, then a 1x1 convolution to
``latent_channels``; the decoder is one Conv3x3+GELU per width of ``decoder_channels``, then a 1x1
convolution back to ``in_channels`` (the reference system's ``depth_band_ae``). The model works in
degC: it carries the depth levels it was trained on and per-level mean and standard deviation, and
normalises on the way in and back on the way out.

With ``spatial_downsample=k > 1`` the normalised field is average-pooled by ``k`` *before* the encoder
convolutions (every convolution then runs on the coarse grid) and the decoder output is upsampled
bilinearly by ``k``. This is where the reference system pools, so its weights keep their meaning.
Height and width must be multiples of ``k``; anything else is refused with a ValueError that says
how to crop.

With ``linear_path=True`` the model also has a fixed linear 1x1 path beside each convolution stack,
set to the EOFs of the training columns so that training starts at PCA truncation; see
:mod:`xdepthrecon.models.linear_path`. The reference architecture has no such path; it is off by
default, so reference weights and configs load unchanged.

Parameter names, which are also the layout of the reference state dicts once their ``model.`` prefix
is removed (:mod:`xdepthrecon.models.reference` reads reference configs and weights): ``encoder.0``,
``encoder.2``, ... (the 3x3 convolutions; GELUs sit at the odd indices), ``to_latent``, ``decoder.0``,
``decoder.2``, ..., ``to_output``, each with ``.weight`` and ``.bias``; with the linear path also
``encode_linear`` and ``decode_linear``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xdepthrecon import checkpoint
from xdepthrecon._precision import convolution_layout
from xdepthrecon.models.levels import as_numpy, check_levels, level_statistics
from xdepthrecon.models.linear_path import fill_gaps, full_precision, set_eof_path
from xdepthrecon.models.reference import read_config
from xdepthrecon.stats.pca import PCACompressor

__all__ = ["DepthBandAutoencoder"]

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[float], float]


class DepthBandAutoencoder(nn.Module):
    """Autoencoder that compresses the depth levels of a temperature field, pixel by pixel.

    Parameters
    ----------
    in_channels
        Number of depth levels.
    latent_channels
        Number of latent channels.
    encoder_channels, decoder_channels
        Widths of the Conv3x3+GELU layers of the encoder and the decoder.
    spatial_downsample
        Factor by which the latent grid is coarser than the data grid (1: no spatial compression).
    linear_path
        Add a fixed linear 1x1 path beside the encoder and the decoder, to be set to the EOFs of the
        training data with :meth:`init_linear_path` (see the module docstring); not in the reference
        architecture.
    depth
        Depth levels (m) the model is trained on, one per channel; checked by :meth:`check_levels`.
    mean, std
        Per-level normalisation statistics (degC), one per channel or one scalar for all levels.
        Default 0 and 1; set them from data with :meth:`fit_normalization`.

    Notes
    -----
    ``mean`` and ``std`` are buffers (they follow ``.to(device)``) but are left out of
    ``state_dict()``, which holds the network weights alone, in the reference layout; ``save`` keeps
    everything. For reduced precision run the model under ``torch.autocast``: normalisation stays in float32
    there, while casting the module itself (``.half()``) would round the statistics too.

    Examples
    --------
    >>> ae = DepthBandAutoencoder(5, latent_channels=2, encoder_channels=(8,), decoder_channels=(8,))
    >>> ae.encode(torch.zeros(1, 5, 16, 16)).shape
    torch.Size([1, 2, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        latent_channels: int = 12,
        encoder_channels: Sequence[int] = (64, 96, 128),
        decoder_channels: Sequence[int] = (128, 96, 64),
        spatial_downsample: int = 1,
        linear_path: bool = False,
        depth: ArrayLike | None = None,
        mean: ArrayLike | None = None,
        std: ArrayLike | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.latent_channels = _positive_int("latent_channels", latent_channels)
        self.spatial_downsample = _positive_int("spatial_downsample", spatial_downsample)
        self.encoder_channels = tuple(_positive_int("encoder_channels", w) for w in encoder_channels)
        self.decoder_channels = tuple(_positive_int("decoder_channels", w) for w in decoder_channels)
        if not isinstance(linear_path, (bool, np.bool_)):
            raise ValueError(f"linear_path must be True or False, got {linear_path!r}")
        self.linear_path = bool(linear_path)
        self.encoder, width = _conv_stack(self.in_channels, self.encoder_channels)
        #: None when the latent is the linear path's alone (``linear_path`` and no encoder widths).
        self.to_latent = (nn.Conv2d(width, self.latent_channels, kernel_size=1)
                          if self.encoder_channels or not self.linear_path else None)
        self.decoder, width = _conv_stack(self.latent_channels, self.decoder_channels)
        self.to_output = nn.Conv2d(width, self.in_channels, kernel_size=1)
        if self.linear_path:
            self.encode_linear = nn.Conv2d(self.in_channels, self.latent_channels, kernel_size=1)
            self.decode_linear = nn.Conv2d(self.latent_channels, self.in_channels, kernel_size=1)
            self.encode_linear.requires_grad_(False)
            self.decode_linear.requires_grad_(False)
            self.register_buffer("gap_penalty", torch.zeros(self.latent_channels))
            self.register_buffer("correction_gate", torch.ones(self.in_channels))
            self.register_load_state_dict_pre_hook(_open_gate_of_older_weights)
        self.register_buffer("mean", self._level_vector("mean", 0.0 if mean is None else mean), persistent=False)
        self.register_buffer("std", self._level_vector("std", 1.0 if std is None else std), persistent=False)
        self.depth = depth
        #: Loss and optimiser settings read by :meth:`from_config` (``{"loss": {...}, "training": {...}}``).
        self.training_config: dict[str, Any] = {}

    @classmethod
    def from_config(
        cls,
        source: str | PathLike[str] | Mapping[str, Any],
        *,
        depth: ArrayLike | None = None,
        mean: ArrayLike | None = None,
        std: ArrayLike | None = None,
    ) -> DepthBandAutoencoder:
        """Build a model from a reference-system ``ae_config.yaml`` (or the dict parsed from one).

        The ``ae`` section may sit at the top level or under ``data``. Its ``loss`` and ``training``
        sections are kept, unchanged, in ``model.training_config``; settings it does not give take
        this class's defaults. The reading itself is :func:`xdepthrecon.models.reference.read_config`.

        Parameters
        ----------
        source
            Path of the YAML file, or its parsed content.
        depth, mean, std
            As in the constructor (a config file holds none of them).
        """
        kwargs, training_config = read_config(source)
        model = cls(**kwargs, depth=depth, mean=mean, std=std)
        model.training_config = training_config
        return model

    @property
    def depth(self) -> np.ndarray | None:
        """Depth levels (m, float64, read-only) the model is trained on, or None when not recorded."""
        return self._depth

    @depth.setter
    def depth(self, values: ArrayLike | None) -> None:
        if values is None:
            self._depth = None
            return
        levels = np.array(as_numpy(values), dtype=np.float64)
        if levels.shape != (self.in_channels,) or not np.all(np.isfinite(levels)):
            raise ValueError(
                f"depth must hold {self.in_channels} finite levels (m), one per channel; got shape {levels.shape}"
            )
        levels.flags.writeable = False
        self._depth = levels

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments other than arrays, as a JSON-serialisable dict."""
        return {
            "in_channels": self.in_channels,
            "latent_channels": self.latent_channels,
            "encoder_channels": list(self.encoder_channels),
            "decoder_channels": list(self.decoder_channels),
            "spatial_downsample": self.spatial_downsample,
            "linear_path": self.linear_path,
        }

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Array constructor arguments (``depth`` when recorded, ``mean``, ``std``) as numpy arrays."""
        arrays = {"mean": self.mean.detach().cpu().numpy(), "std": self.std.detach().cpu().numpy()}
        if self._depth is not None:
            arrays["depth"] = self._depth
        return arrays

    @property
    def identity(self) -> str:
        """Short hash of class, config, arrays and weights: equal identities encode and decode alike."""
        tensors = {f"model.{key}": value for key, value in self.state_dict().items()}
        tensors.update({f"array.{key}": torch.from_numpy(np.array(value)) for key, value in self.arrays.items()})
        header = json.dumps({"class": type(self).__name__, "config": self.config}, sort_keys=True)
        return hashlib.sha256((header + checkpoint.digest(tensors)).encode()).hexdigest()[:16]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(x - mean) / std`` per level; ``x`` is in degC, shaped ``(..., in_channels, H, W)``."""
        _check_shape(x, self.in_channels, "x")
        return (x - self.mean[:, None, None]) / self.std[:, None, None]

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x * std + mean`` per level (degC); the inverse of :meth:`normalize`."""
        _check_shape(x, self.in_channels, "x")
        return x * self.std[:, None, None] + self.mean[:, None, None]

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Encode a temperature field to its latent.

        Parameters
        ----------
        x
            Temperature (degC), shaped ``(..., in_channels, H, W)``; NaN marks missing values.
        mask
            Optional validity mask broadcastable to ``x`` (True: valid). NaN and invalid values are
            replaced by their level's mean (0 after normalisation) before the network sees them; with
            the linear path, the gaps of a column that has some valid levels are filled instead with the
            linear decoder's regularised least-squares fit to those levels (see the module docstring).

        Returns
        -------
        torch.Tensor
            Latent shaped ``(..., latent_channels, H / k, W / k)`` with ``k = spatial_downsample``.
        """
        _check_shape(x, self.in_channels, "x")
        self._check_divisible(x, "x")
        invalid = torch.isnan(x)
        if mask is not None:
            invalid = invalid | ~torch.as_tensor(mask, device=x.device).bool()
        h = torch.where(invalid, 0.0, self.normalize(x))
        lead = h.shape[:-3]
        h = h.reshape(-1, *h.shape[-3:])
        if self.linear_path:
            h = fill_gaps(h, invalid.expand(*lead, *h.shape[-3:]).reshape(h.shape), self.decode_linear,
                          self.gap_penalty)
        h = h.to(self.to_output.weight.dtype)
        if self.spatial_downsample > 1:
            h = F.avg_pool2d(h, self.spatial_downsample)
        z = full_precision(self.encode_linear, h) if self.linear_path else 0.0
        if self.to_latent is not None:
            z = z + self.to_latent(self.encoder(convolution_layout(h))).contiguous()
        return z.reshape(*lead, *z.shape[-3:])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decode a latent ``(..., latent_channels, h, w)`` to temperature (degC) ``(..., in_channels, h*k, w*k)``."""
        _check_shape(z, self.latent_channels, "z")
        lead = z.shape[:-3]
        h = z.reshape(-1, *z.shape[-3:]).to(self.to_output.weight.dtype)
        if self.linear_path and not self.correction_gate.any():  # a closed gate: the correction adds nothing
            y = full_precision(self.decode_linear, h)
        else:
            y = self.to_output(self.decoder(convolution_layout(h))).contiguous()
            if self.linear_path:
                y = y * self.correction_gate[:, None, None].to(y.dtype) + full_precision(self.decode_linear, h)
        if self.spatial_downsample > 1:
            y = F.interpolate(y, scale_factor=self.spatial_downsample, mode="bilinear", align_corners=False)
        y = self.denormalize(y if y.dtype == torch.float64 else y.float())
        return y.reshape(*lead, *y.shape[-3:])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruct ``x`` (degC): ``decode(encode(x, mask))``."""
        return self.decode(self.encode(x, mask))

    def latent_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Return where the latent has data: a latent cell is valid if ANY level of ANY source cell is.

        Parameters
        ----------
        mask
            Validity (True: valid) shaped ``(..., C, H, W)``: per level (``C = in_channels``) or
            ``C = 1`` for one mask for all levels.

        Returns
        -------
        torch.Tensor
            Boolean mask shaped ``(..., 1, H / k, W / k)``.
        """
        _check_shape(mask, None, "mask")
        self._check_divisible(mask, "mask")
        valid = torch.as_tensor(mask).bool().any(dim=-3, keepdim=True)
        if self.spatial_downsample == 1:
            return valid
        lead = valid.shape[:-3]
        pooled = F.max_pool2d(valid.reshape(-1, *valid.shape[-3:]).float(), self.spatial_downsample) > 0
        return pooled.reshape(*lead, *pooled.shape[-3:])

    def check_levels(self, depth_values: ArrayLike) -> None:
        """Raise a ValueError unless ``depth_values`` (m) are the levels the model was trained on."""
        if self._depth is None:
            raise ValueError(
                "this autoencoder records no depth levels, so new data cannot be checked against them; "
                "set ae.depth to the levels it was trained on"
            )
        check_levels(self._depth, depth_values)

    def fit_normalization(
        self, x: ArrayLike, mask: ArrayLike | None = None, min_std: float = 1e-3
    ) -> DepthBandAutoencoder:
        """Set ``mean`` and ``std`` from data with :func:`level_statistics`; return the model.

        Parameters
        ----------
        x, mask
            As in :func:`level_statistics`.
        min_std
            Floor (degC) for the standard deviation, so a level of constant temperature does not divide by 0.
        """
        mean, std = level_statistics(x, mask)
        if mean.shape != (self.in_channels,):
            raise ValueError(f"x has {mean.size} levels along axis -3; this autoencoder has {self.in_channels}")
        empty = np.flatnonzero(np.isnan(mean))
        if empty.size:
            names = [f"{self._depth[i]:g} m" for i in empty] if self._depth is not None else empty.tolist()
            raise ValueError(
                f"levels {names} have no valid values, so they cannot be normalised; "
                "fit on data where every level has ocean, or drop those levels"
            )
        self.mean.copy_(torch.from_numpy(mean))
        self.std.copy_(torch.from_numpy(np.maximum(std, min_std)))
        return self

    def init_linear_path(self, eofs: PCACompressor) -> DepthBandAutoencoder:
        """Start the model at EOF truncation: linear path from ``eofs``, convolution stacks silent; return the model.

        See :func:`xdepthrecon.models.linear_path.set_eof_path`: the model's output is the EOF
        truncation until training changes it.

        Parameters
        ----------
        eofs
            EOFs fitted with this model's normalisation, e.g.
            ``PCACompressor.fit(cube, ae.latent_channels, mean=ae.mean, std=ae.std)``.
        """
        set_eof_path(self, eofs)
        return self

    def save(self, path: str | PathLike[str], training_state: Mapping[str, Any] | None = None) -> Path:
        """Save the model (and optional training state) to one file; see :func:`xdepthrecon.checkpoint.save`."""
        return checkpoint.save(self, path, training_state=training_state)

    def _level_vector(self, name: str, values: ArrayLike) -> torch.Tensor:
        vector = np.asarray(as_numpy(values), dtype=np.float64)
        if vector.ndim == 0:
            vector = np.full(self.in_channels, float(vector))
        if vector.shape != (self.in_channels,) or not np.all(np.isfinite(vector)):
            raise ValueError(
                f"{name} must be a finite scalar or hold one value per level ({self.in_channels}); "
                f"got shape {vector.shape}"
            )
        if name == "std" and np.any(vector <= 0):
            raise ValueError("std must be positive at every level")
        return torch.tensor(vector, dtype=torch.float32)

    def _check_divisible(self, x: torch.Tensor, name: str) -> None:
        k = self.spatial_downsample
        height, width = x.shape[-2:]
        if height % k or width % k:
            raise ValueError(
                f"{name} is {height}x{width} pixels, not a multiple of spatial_downsample={k}; crop or pad it, "
                f"e.g. x[..., :{height - height % k}, :{width - width % k}]"
            )


def _open_gate_of_older_weights(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """Weights saved before the correction had a gate (xdepthrecon 0.2.0) load with the gate open."""
    state_dict.setdefault(prefix + "correction_gate", torch.ones(module.in_channels))


def _conv_stack(in_channels: int, widths: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(in_channels, width, kernel_size=3, padding=1), nn.GELU()]
        in_channels = width
    return nn.Sequential(*layers), in_channels


def _check_shape(x: torch.Tensor, channels: int | None, name: str) -> None:
    if x.ndim < 3 or (channels is not None and x.shape[-3] != channels):
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected (..., {channels or 'C'}, H, W)")


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must hold positive integers, got {value!r}")
    return int(value)

