"""Settings of the models and of their training, as small frozen dataclasses.

The defaults are the recipe that works on the bundled data (the demo uses them as they are, apart from the
number of epochs and the observation density); every length is in km or grid-independent units, so they
hold on any grid. The command line builds its options from the same classes
(:func:`xdepthrecon.cli.config_arguments`), so nothing is copied by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from xdepthrecon.diffusion.schedule import LEVEL_DRAWS

LR_SCHEDULES = ("constant", "cosine")
FINETUNE = (None, "decoder", "all")


@dataclass(frozen=True)
class AutoencoderConfig:
    """The depth-band autoencoder's architecture and loss.

    Parameters
    ----------
    latent_channels
        Latent size per column.
    encoder_channels, decoder_channels
        Widths of the 3x3 convolutions. With the linear path and no encoder widths (the default) the latent
        is the column's EOF amplitudes and only the decoder learns: a correction of the EOF truncation from
        the latent of the cell and its neighbours. The reference architecture is
        ``AutoencoderConfig(encoder_channels=(64, 96, 128), decoder_channels=(128, 96, 64), linear_path=False)``.
    linear_path
        A fixed linear path set to the training cube's EOFs, so training starts from PCA truncation and
        learns the nonlinear correction on top.
    gate
        Gate the correction per level by its worst case on regions held out from training
        (:mod:`xdepthrecon.training.correction_gate`), so that it never makes unseen water worse than the
        EOFs alone; only with the linear path and ``val_fraction > 0`` (otherwise the correction is ungated).
    l1_weight, l2_weight
        Loss weights of the L1 and L2 terms, in normalised units.
    masked_only
        The loss covers only valid values (else NaN positions count with the level mean as target).
    """

    latent_channels: int = 8
    encoder_channels: tuple[int, ...] = ()
    decoder_channels: tuple[int, ...] = (64, 48, 32)
    linear_path: bool = True
    gate: bool = True
    l1_weight: float = 1.0
    l2_weight: float = 0.5
    masked_only: bool = True


@dataclass(frozen=True)
class DiffusionConfig:
    """The denoiser and the noise process.

    Parameters
    ----------
    dim, mults, attention, context
        Denoiser width, width multipliers per resolution, linear attention, and FiLM conditioning on position
        and season (:class:`~xdepthrecon.models.unet.ConditionalUNet`).
    schedule, target, diffusion_steps
        Noise schedule kind, prediction target and number of noise levels.
    noise_levels
        How training draws the noise levels: ``"uniform"``, or ``"noisy"``: with probability rising linearly
        to the noisiest (:meth:`~xdepthrecon.diffusion.schedule.NoiseSchedule.draw_levels`).
    mean_weight
        Weight of a second draw of each training patch at the noisiest level, where the denoiser's output is its
        estimate of the residual's conditional mean from the condition alone: the ensemble's mean and the
        correction gates rest on it (:meth:`~xdepthrecon.LatentDiffusion.loss`). It costs one more pass of the
        network per batch (about a third more time per epoch on a CPU) and no more analysis. 0: no second draw.
    finetune
        None: the autoencoder stays frozen; ``"decoder"``: its decoder keeps learning the reconstruction.
    """

    dim: int = 32
    mults: tuple[int, ...] = (1, 2, 2)
    attention: bool = True
    context: bool = True
    schedule: str = "cosine"
    target: str = "x0"
    diffusion_steps: int = 1000
    noise_levels: str = "uniform"
    mean_weight: float = 2.0
    finetune: str | None = None

    def __post_init__(self) -> None:
        if self.noise_levels not in LEVEL_DRAWS:
            raise ValueError(f"noise_levels must be one of {LEVEL_DRAWS}, got {self.noise_levels!r}")
        if not self.mean_weight >= 0.0:
            raise ValueError(f"mean_weight must be >= 0 (0: no second draw at the noisiest level), got "
                             f"{self.mean_weight}")
        if self.finetune not in (None, "decoder"):
            raise ValueError(f"finetune must be None or 'decoder', got {self.finetune!r}: the analysis's guess is "
                             "encoded with the autoencoder, so its encoder stays fixed")


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation, shared by both trainers (:func:`xdepthrecon.training.loop.fit`).

    Parameters
    ----------
    epochs
        Total epochs; when resuming from a checkpoint, training continues up to this count.
    batch_size, lr, weight_decay
        Patches per step, AdamW learning rate and weight decay.
    lr_schedule
        ``"constant"``, or ``"cosine"``: ``lr * (1 + cos(pi * epoch / epochs)) / 2`` in each epoch.
    ema
        Decay of the exponential moving average of the weights (with the warm-up ``min(ema, (1 + n) /
        (10 + n))``); the returned model carries the averaged weights. None: no average.
    keep_best
        The returned (and checkpointed) model carries the weights, averaged where there is an average, of the
        epoch with the lowest validation loss, not of the last epoch (training still runs every epoch). Needs
        ``val_fraction > 0``; otherwise the last epoch's weights.
    patch_size
        Patch height and width in grid cells.
    val_fraction
        Fraction of the cube's windows held out for validation: for the diffusion model, on a record of at least
        ``1 / val_fraction`` time steps, that fraction of them in up to 4 stretches of time, the time step on
        each side of a stretch trained on by neither (:func:`~xdepthrecon.training.splits.split_windows`); for
        the autoencoder, regions at every time step.
    patches_per_window, max_land_fraction, augment
        Passed to :class:`~xdepthrecon.training.batches.PatchDataset`.
    halo
        Cells around each patch that the classical analysis sees in the diffusion model's training and
        calibration and in :func:`~xdepthrecon.fit_analysis` (its guess near a patch's edges then uses the
        profiles beyond them, as :func:`~xdepthrecon.reconstruct`'s analysis of the whole field does); the
        network and the scores see the patch alone. The autoencoder ignores it.
    seed
        Seeds weights, patch order, crops and noise: the same seed gives the same model on the CPU.
    fast
        Train in bfloat16 autocast; weights and optimizer stay fp32. None (default): where that is faster, on
        GPUs and on CPUs with AMX or AVX-512 BF16, else fp32.
    """

    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    lr_schedule: str = "constant"
    ema: float | None = 0.999
    keep_best: bool = False
    patch_size: int = 32
    val_fraction: float = 0.1
    patches_per_window: int | None = None
    max_land_fraction: float = 0.9
    augment: bool = True
    halo: int = 0
    seed: int = 0
    fast: bool | None = None

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.ema is not None and not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1) or None, got {self.ema}")
        if self.epochs < 0 or self.batch_size < 1 or self.patch_size < 1 or self.halo < 0:
            raise ValueError(f"epochs and halo must be >= 0, batch_size and patch_size >= 1, got {self.epochs}, "
                             f"{self.halo}, {self.batch_size}, {self.patch_size}")


#: The autoencoder's training recipe: a cosine learning rate, no weight decay or average, a fifth of the
#: regions held out (to gate the correction).
AUTOENCODER_TRAINING = TrainingConfig(epochs=15, weight_decay=0.0, lr_schedule="cosine", ema=None, val_fraction=0.2)
#: The diffusion model's training recipe: patches of 64 cells (the size of reconstruct's tiles), 4 to a batch, not
#: flipped; the analysis sees 16 cells around each; the weights of the epoch with the lowest validation loss are
#: kept (the network overfits a few years of eddies: on the nature run the validation loss turns up after about
#: two thirds of the updates while the training loss keeps falling).
DIFFUSION_TRAINING = TrainingConfig(epochs=20, augment=False, halo=16, patch_size=64, batch_size=4, keep_best=True)


@dataclass(frozen=True)
class ObservationConfig:
    """Observations simulated from the truth in training (an observing-system simulation per patch).

    Parameters
    ----------
    density
        (low, high) fraction of ocean columns observed; each patch draws its own log-uniformly.
    depth_max
        Simulated profiles stop at this depth (m); None: full depth.
    noise
        Gaussian noise of the simulated values (degC std).
    window
        Time window for gridding real profiles.
    cloud_cover
        Simulated clouds on the SST in diffusion training, so that the model learns SST gaps: half the patches
        keep their SST whole, the others hide a fraction of their ocean cells drawn uniformly up to
        ``cloud_cover`` (:func:`~xdepthrecon.training.observations.simulate_clouds`). 0: no clouds (the model
        then expects gap-free SST). The calibration of the stated error (the classical analysis's and the
        network's) sees the same clouds; the analysis's covariances are fitted without them.
    cloud_scale_km
        Typical size of a simulated cloud: each patch's clouds are where white noise smoothed by a Gaussian of
        a length drawn log-uniformly from half to twice this is highest.
    """

    density: tuple[float, float] = (0.005, 0.05)
    depth_max: float | None = None
    noise: float = 0.01
    window: str = "7D"
    cloud_cover: float = 0.6
    cloud_scale_km: float = 100.0

    def __post_init__(self) -> None:
        low, high = self.density
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"density must be (low, high) with 0 < low <= high <= 1, got {self.density}")
        if not 0.0 <= self.cloud_cover < 1.0 or not self.cloud_scale_km > 0.0:
            raise ValueError(f"cloud_cover must be in [0, 1) and cloud_scale_km > 0, got {self.cloud_cover} and "
                             f"{self.cloud_scale_km}")


def with_epochs(training: TrainingConfig, epochs: int | None) -> TrainingConfig:
    """``training`` with ``epochs`` (when given) instead of its own."""
    return training if epochs is None else replace(training, epochs=int(epochs))


def as_record(config: Any) -> dict[str, Any]:
    """A dataclass as a JSON-comparable dict (tuples as lists)."""
    return {f.name: list(v) if isinstance(v := getattr(config, f.name), tuple) else v for f in fields(config)}


def resumable_record(training: TrainingConfig) -> dict[str, Any]:
    """What of ``training`` a resumed run must share with the checkpoint: all but the number of epochs, the
    precision and which weights are kept (a run may continue longer, or on other hardware)."""
    return {**as_record(training), "epochs": None, "fast": None, "keep_best": None}
