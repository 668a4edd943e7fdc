"""The latent diffusion model: autoencoder + denoiser + schedule + normalisation, as one object.

The model generates the (normalised) latent of the full temperature cube, conditioned on

- the surface fields (SST, and any other), normalised per field, NaN (land) set to 0;
- ``z_x``: the normalised latent of the gridded observations, 0 where no column is observed;
- the observed fraction of each column's levels (0 where unobserved);
- with ``first_guess`` scales, successive-correction passes spreading ``z_x`` from the largest scale
  to the smallest, each with its support (:func:`~xdepthrecon.stats.smoothing.first_guess`);
- with a ``background`` (:class:`~xdepthrecon.analysis.background.LatentBackground`), the first guess
  spreads the observations' departures from the background latent, and the normalised latent of the
  *temperature guess* comes last (:meth:`LatentDiffusion.temperature_guess`: the decoded background, the
  SST's departure from it carried down by local regression slopes, and the observations' remaining
  departures spread level by level in degC, by optimal interpolation when the model has an analysis),

so ``condition_channels = n_surface + latent_channels + 1 + len(first_guess) * (latent_channels + 1)
(+ latent_channels with a background)``. With an ``x0`` target the denoiser learns the correction to a
base: the encoded temperature guess with a background, else the first guess (if any). With a background
a sample ``z`` decodes to ``decode_latent(z) + guess - decode_latent(base)``: the temperature guess plus
the network's correction, so an untrained network returns the guess exactly and the autoencoder's error
does not blur it. Everything a user needs to reconstruct travels with the model
(``save``/``xdepthrecon.load``); loading never unpickles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from xdepthrecon import checkpoint
from xdepthrecon.analysis.departures import DepartureAnalysis
from xdepthrecon.analysis.background import LatentBackground
from xdepthrecon.analysis.errors import ErrorModel
from xdepthrecon.stats.smoothing import first_guess as _first_guess
from xdepthrecon.stats.smoothing import gaussian_sum
from xdepthrecon.diffusion.samplers import sample
from xdepthrecon.diffusion.schedule import NoiseSchedule
from xdepthrecon.models.autoencoder import DepthBandAutoencoder
from xdepthrecon.models.unet import ConditionalUNet


#: Fewest observed columns for the SST slope of the temperature-space guess (else no SST term).
MIN_SLOPE_COLUMNS = 10
#: Weight, in columns, of an item's overall SST slope in each cell's local slope.
SLOPE_PRIOR_COLUMNS = 3.0
#: Ridge of the SST slopes (degC^2 per column): SST departures much smaller than its root define no slope.
SLOPE_RIDGE = 0.1**2


class TemperatureGuess(NamedTuple):
    """What :meth:`LatentDiffusion.temperature_guess` returns: the guess (degC) and the analysis's error
    variance (degC^2, None without an analysis), each (batch, levels, H, W)."""

    value: torch.Tensor
    variance: torch.Tensor | None


def _vector(values: Any, size: int, name: str) -> torch.Tensor:
    vector = torch.as_tensor(np.asarray(values, dtype=np.float32))
    if vector.shape != (size,) or not torch.all(torch.isfinite(vector)):
        raise ValueError(f"{name} must hold {size} finite values, got shape {tuple(vector.shape)}")
    return vector


class LatentDiffusion(nn.Module):
    """Conditional latent diffusion for 3-D ocean temperature.

    Parameters
    ----------
    autoencoder
        The depth-band autoencoder whose latent is generated.
    denoiser
        The backbone; its ``channels`` must be the latent channels and its ``condition_channels``
        :meth:`condition_channels` ``(len(surface_names), latent_channels, first_guess)``.
    schedule
        Noise schedule (and prediction target) the denoiser is trained with.
    latent_mean, latent_std
        Per-channel statistics of the autoencoder's latent over the ocean, used to normalise it.
    surface_names
        Names of the surface fields, in channel order (e.g. ``("sst",)``).
    surface_mean, surface_std
        Per-field normalisation statistics (degC for SST).
    first_guess
        Length scales (grid cells) of the first guess spread from the observed columns; empty for none.
    background
        Seasonal background of the latent (fitted to the training data); None for none.
    error_model
        The model's validation error by level and by a predictor of it (the analysis's error variance, or
        the observation support) (:class:`~xdepthrecon.analysis.errors.ErrorModel`), fitted by
        ``train_diffusion``; it floors the reported spread. None: the spread is the ensemble's alone. With
        a background it is measured against backgrounds fitted without each region, and holds where the
        training data did not reach.
    analysis
        Fitted covariances of the observations' departures from the temperature-space background
        (:class:`~xdepthrecon.analysis.departures.DepartureAnalysis`), fitted by ``train_diffusion``; with
        one, :meth:`temperature_guess` spreads the departures by optimal interpolation instead of the
        first guess's successive corrections. Needs a background.
    slope_scale
        Gaussian length scale (grid cells) of the local regression that carries the SST's departure from
        the background down (:meth:`anchor`).
    covered_error_model
        The same as ``error_model``, measured against backgrounds fitted without each time step: the error
        where the training data covered the cell (:meth:`LatentBackground.covered_at
        <xdepthrecon.analysis.background.LatentBackground.covered_at>`) but not the time. None: the
        ``error_model`` everywhere.
    """

    def __init__(
        self,
        autoencoder: DepthBandAutoencoder,
        denoiser: ConditionalUNet,
        schedule: NoiseSchedule,
        latent_mean: Any,
        latent_std: Any,
        surface_names: Sequence[str] = ("sst",),
        surface_mean: Any = (0.0,),
        surface_std: Any = (1.0,),
        first_guess: Sequence[float] = (),
        background: LatentBackground | None = None,
        error_model: ErrorModel | None = None,
        analysis: DepartureAnalysis | None = None,
        slope_scale: float = 8.0,
        covered_error_model: ErrorModel | None = None,
    ) -> None:
        super().__init__()
        latent = autoencoder.latent_channels
        self.first_guess = tuple(float(scale) for scale in first_guess)
        if any(not scale > 0 for scale in self.first_guess):
            raise ValueError(f"first_guess length scales must be positive grid-cell counts, got {first_guess}")
        if background is not None and background.latent.shape[1] != latent:
            raise ValueError(f"the background has {background.latent.shape[1]} latent channels; the autoencoder has "
                             f"{latent}")
        if analysis is not None and (background is None or len(analysis.length_scale) != autoencoder.in_channels):
            raise ValueError("a departure analysis needs a background and one covariance per autoencoder level "
                             f"({autoencoder.in_channels})")
        expected = self.condition_channels(len(surface_names), latent, self.first_guess, background is not None)
        if denoiser.channels != latent or denoiser.condition_channels != expected:
            raise ValueError(f"the denoiser must take {latent} sample channels and {expected} condition channels "
                             f"({len(surface_names)} surface + {latent} z_x + 1 mask + "
                             f"{len(self.first_guess)} x ({latent} + 1) first guess"
                             f"{f' + {latent} background' if background is not None else ''}); it takes "
                             f"{denoiser.channels} and {denoiser.condition_channels}")
        self.autoencoder = autoencoder
        self.denoiser = denoiser
        self.analysis = analysis
        if not slope_scale > 0:
            raise ValueError(f"slope_scale must be a positive number of grid cells, got {slope_scale}")
        self.slope_scale = float(slope_scale)
        self.background = background
        self.error_model = error_model
        self.covered_error_model = covered_error_model
        self.schedule = schedule
        self.surface_names = tuple(surface_names)
        self.register_buffer("latent_mean", _vector(latent_mean, latent, "latent_mean"), persistent=False)
        self.register_buffer("latent_std", _vector(latent_std, latent, "latent_std"), persistent=False)
        n_surface = len(self.surface_names)
        self.register_buffer("surface_mean", _vector(surface_mean, n_surface, "surface_mean"), persistent=False)
        self.register_buffer("surface_std", _vector(surface_std, n_surface, "surface_std"), persistent=False)
        #: Training history (one dict per epoch), set by ``train_diffusion``.
        self.history: list[dict[str, Any]] = []

    @staticmethod
    def condition_channels(n_surface: int, latent_channels: int, first_guess: Sequence[float] = (),
                           background: bool = False) -> int:
        """Number of condition channels for these surface fields, latent size, first-guess scales and background."""
        return n_surface + latent_channels * (1 + background) + 1 + len(first_guess) * (latent_channels + 1)

    # --- saving ---------------------------------------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """Everything but arrays and weights, as a JSON-serialisable dict."""
        return {"autoencoder": self.autoencoder.config, "denoiser": self.denoiser.config,
                "schedule": self.schedule.config, "surface_names": list(self.surface_names),
                "first_guess": list(self.first_guess), "slope_scale": self.slope_scale,
                "background": None if self.background is None else self.background.config,
                "error_model": None if self.error_model is None else self.error_model.config,
                "analysis": None if self.analysis is None else self.analysis.config,
                "covered_error_model": None if self.covered_error_model is None else self.covered_error_model.config}

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Normalisation statistics and the autoencoder's levels and statistics, as numpy arrays."""
        arrays = {name: getattr(self, name).detach().cpu().numpy()
                  for name in ("latent_mean", "latent_std", "surface_mean", "surface_std")}
        arrays.update({f"autoencoder_{key}": value for key, value in self.autoencoder.arrays.items()})
        return arrays

    @classmethod
    def from_saved(cls, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> LatentDiffusion:
        """Rebuild an (untrained) model from :attr:`config` and :attr:`arrays`; weights are loaded after."""
        prefix = "autoencoder_"
        autoencoder = DepthBandAutoencoder(**config["autoencoder"],
                                           **{k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
        background, errors, analysis, covered = (config.get(name) for name in ("background", "error_model", "analysis",
                                                                                "covered_error_model"))
        return cls(autoencoder, ConditionalUNet(**config["denoiser"]), NoiseSchedule(**config["schedule"]),
                   arrays["latent_mean"], arrays["latent_std"], config["surface_names"],
                   arrays["surface_mean"], arrays["surface_std"], config.get("first_guess", ()),
                   None if background is None else LatentBackground(**background),
                   None if errors is None else ErrorModel(**errors),
                   None if analysis is None else DepartureAnalysis(**analysis), config.get("slope_scale", 8.0),
                   None if covered is None else ErrorModel(**covered))

    def save(self, path: str | PathLike[str], training_state: Mapping[str, Any] | None = None) -> Path:
        """Save the model (and optional training state) to one file; see :func:`xdepthrecon.checkpoint.save`."""
        return checkpoint.save(self, path, training_state=training_state)

    # --- the maths ------------------------------------------------------------------------------------------

    def normalize_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Latent in autoencoder units -> normalised latent (per channel)."""
        return (z - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def denormalize_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latent -> latent in autoencoder units."""
        return z * self.latent_std[:, None, None] + self.latent_mean[:, None, None]

    def encode_target(self, y: torch.Tensor) -> torch.Tensor:
        """Normalised latent of a full cube ``y`` (batch, levels, H, W) in degC."""
        return self.normalize_latent(self.autoencoder.encode(y))

    def condition(self, x: torch.Tensor, x_mask: torch.Tensor, surface: torch.Tensor,
                  background: torch.Tensor | None = None, guess: torch.Tensor | None = None) -> torch.Tensor:
        """Condition channels from gridded observations and surface fields.

        Parameters
        ----------
        x
            Gridded observations (batch, levels, H, W) in degC, NaN where unobserved.
        x_mask
            Where ``x`` is observed (batch, levels, H, W).
        surface
            Surface fields (batch, n_surface, H, W) in their units, NaN on land.
        background
            The background latent (batch, latent_channels, H, W) in autoencoder units, for a model with a
            background (:meth:`LatentBackground.at <xdepthrecon.analysis.background.LatentBackground.at>`).
        guess
            With a background, the temperature guess made from the same inputs
            (:meth:`temperature_guess` ``.value``).
        """
        if (background is None) != (self.background is None):
            raise ValueError("this model has a background: pass background=model.background.at(...)"
                             if background is None else "this model has no background; pass background=None")
        if background is not None and guess is None:
            raise ValueError("a model with a background is conditioned on its temperature guess: pass "
                             "guess=model.temperature_guess(...).value")
        observed = x_mask.bool() & ~torch.isnan(x)
        fraction = observed.float().mean(dim=1, keepdim=True)
        any_observed = fraction > 0
        z_x = torch.where(any_observed, self.encode_target(torch.where(observed, x, torch.nan)), 0.0)
        fields = (surface - self.surface_mean[:, None, None]) / self.surface_std[:, None, None]
        fields = torch.nan_to_num(fields, nan=0.0)
        parts = [fields, z_x, fraction]
        if self.first_guess:
            departure = z_x if background is None else torch.where(
                any_observed, z_x - self.normalize_latent(background), 0.0)
            parts.append(_first_guess(departure, any_observed, self.first_guess))
        if background is not None:
            ocean = ~torch.isnan(guess).all(dim=1, keepdim=True)
            parts.append(torch.where(ocean, self.encode_target(guess), 0.0))
        return torch.cat(parts, dim=1)

    def predict(self, z_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor, **context) -> torch.Tensor:
        """The denoiser's output for the schedule's target; an ``x0`` estimate corrects the base (see module)."""
        output = self.denoiser(z_t, t, condition, **context)
        if self.schedule.target != "x0":
            return output
        base = self.base(condition)
        return output if base is None else output + base

    def base(self, condition: torch.Tensor) -> torch.Tensor | None:
        """What an ``x0`` denoiser corrects: the encoded temperature guess (with a background, the last
        channels), else the first guess's last pass (before its support), else None."""
        latent, end = self.autoencoder.latent_channels, condition.shape[1]
        if self.background is not None:
            return condition[:, end - latent:end]
        if self.first_guess:
            return condition[:, end - latent - 1:end - 1]
        return None

    def loss(
        self,
        y: torch.Tensor,
        condition: torch.Tensor,
        context: Mapping[str, torch.Tensor],
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Denoising loss on the ocean pixels of a batch of full cubes ``y`` (degC, NaN on land)."""
        ocean = ~torch.isnan(y).all(dim=1, keepdim=True)
        trainable = any(p.requires_grad for p in self.autoencoder.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and trainable):
            z0 = torch.where(ocean, self.encode_target(y), 0.0)
        noise = torch.randn(z0.shape, generator=generator).to(z0.device)
        t = torch.randint(0, self.schedule.steps, (z0.shape[0],), generator=generator).to(z0.device)
        z_t = self.schedule.add_noise(z0, noise, t)
        output = self.predict(z_t, t, condition, **context)
        target = self.schedule.training_target(z0, noise, t)
        weight = ocean.expand_as(output).float()
        return ((output - target) ** 2 * weight).sum() / weight.sum().clamp(min=1.0)

    def sample_latent(
        self,
        condition: torch.Tensor,
        context: Mapping[str, torch.Tensor],
        steps: int = 50,
        sampler: str = "ddim",
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        denoiser=None,
        project=None,
    ) -> torch.Tensor:
        """Sample normalised latents for a batch of conditions (one sample per batch item)."""
        net = denoiser if denoiser is not None else (lambda z_t, t: self.predict(z_t, t, condition, **context))
        shape = (condition.shape[0], self.autoencoder.latent_channels, *condition.shape[-2:])
        return sample(net, shape, self.schedule, steps=steps, sampler=sampler, eta=eta, generator=generator,
                      device=condition.device, project=project)

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latent -> temperature (batch, levels, H, W) in degC."""
        return self.autoencoder.decode(self.denormalize_latent(z))

    def anchor(self, x: torch.Tensor, x_mask: torch.Tensor, background: torch.Tensor,
               surface: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The temperature-space background and the observations' departures from it.

        The background is the decoded background latent plus (with an ``sst`` surface field) the SST's
        departure from the decoded surface temperature times a slope per level and cell: the least-squares
        regression of the observed departures on the SST's, with the observed columns weighted by a
        Gaussian of their distance (``slope_scale`` cells), drawn towards the item's overall slope with the
        weight of :data:`SLOPE_PRIOR_COLUMNS` columns, with a ridge of :data:`SLOPE_RIDGE` per column so that
        columns whose SST hardly departs cannot make a steep slope (no SST term with fewer than
        :data:`MIN_SLOPE_COLUMNS` observed columns). The relation of subsurface to surface anomalies
        changes from region to region; one slope per level would carry the wrong one into some.

        Parameters
        ----------
        x, x_mask
            Gridded observations (batch, levels, H, W) in degC and where they are observed.
        background
            The background latent in autoencoder units, as given to :meth:`condition`.
        surface
            The surface fields as given to :meth:`condition` (degC); None leaves the SST term out.

        Returns
        -------
        tuple of torch.Tensor
            The background (batch, levels, H, W) in degC, the departures of the observations from it (0
            where not observed) and where they are observed.
        """
        guess = self.autoencoder.decode(background)
        observed = x_mask.bool() & ~torch.isnan(x)
        departure = torch.where(observed, x - guess, 0.0)
        if surface is not None and "sst" in self.surface_names:
            index = self.surface_names.index("sst")
            sst_departure = torch.nan_to_num(surface[:, index:index + 1] - guess[:, :1])
            pairs = observed.float()
            products, squares = departure * sst_departure * pairs, (sst_departure**2 + SLOPE_RIDGE) * pairs
            columns = pairs.sum(dim=(-2, -1), keepdim=True)
            prior = SLOPE_PRIOR_COLUMNS / columns.clamp(min=1.0)  # the overall sums, scaled to that weight
            slope = (gaussian_sum(products, self.slope_scale) + prior * products.sum(dim=(-2, -1), keepdim=True)) / (
                gaussian_sum(squares, self.slope_scale) + prior * squares.sum(dim=(-2, -1), keepdim=True)
            ).clamp(min=1e-6)
            trend = torch.where(columns >= MIN_SLOPE_COLUMNS, slope, 0.0) * sst_departure
            guess = guess + trend
            departure = torch.where(observed, departure - trend, 0.0)
        return guess, departure, observed

    def temperature_guess(self, x: torch.Tensor, x_mask: torch.Tensor, background: torch.Tensor,
                          surface: torch.Tensor | None = None, latitude: torch.Tensor | None = None,
                          longitude: torch.Tensor | None = None, with_variance: bool = True) -> TemperatureGuess:
        """The temperature-space guess of a model with a background, and its error variance.

        The guess is the :meth:`anchor` background plus the observations' departures from it spread over
        the grid level by level in degC: by the model's optimal interpolation (:attr:`analysis`) if it has
        one, else by the first guess's successive corrections (else not at all). It conditions the network
        (:meth:`condition`), and :meth:`decoded_offset` anchors the decoded samples to it.

        Parameters
        ----------
        x, x_mask, background, surface
            As given to :meth:`anchor`.
        latitude, longitude
            Cell coordinates (degrees) of each item, (batch, H) and (batch, W); needed with an analysis.
        with_variance
            False skips the analysis's error variance (training needs only the guess).
        """
        with torch.no_grad():
            guess, departure, observed = self.anchor(x, x_mask, background, surface)
            variance = None
            if self.analysis is not None:
                if latitude is None or longitude is None:
                    raise ValueError("this model analyses departures by optimal interpolation: pass the cells' "
                                     "latitude and longitude")
                analysed, variance = self.analysis(departure, observed, latitude, longitude, with_variance)
                guess = guess + analysed
            elif self.first_guess:
                levels = x.shape[1]
                guess = guess + _first_guess(departure, observed, self.first_guess)[:, -2 * levels:-levels]
        return TemperatureGuess(guess, variance)

    def decoded_offset(self, guess: torch.Tensor | None, condition: torch.Tensor) -> torch.Tensor | None:
        """What to add to a decoded sample so that the base decodes to the temperature ``guess`` exactly
        (``guess - decode_latent(base)``, the autoencoder's error on it); None without a guess."""
        return None if guess is None else guess - self.decode_latent(self.base(condition))
