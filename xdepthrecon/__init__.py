"""xdepthrecon: reconstruct 3-D ocean temperature from sparse profiles and satellite SST.

``import xdepthrecon`` registers the ``depthrecon`` accessor on xarray Datasets and DataArrays.
"""

__version__ = "0.2.0"

from xdepthrecon import accessor as _accessor  # noqa: E402,F401  (registers ds.depthrecon)
from xdepthrecon.analysis.classical import Analysis, AnalysisConfig  # noqa: E402
from xdepthrecon.checkpoint import load  # noqa: E402
from xdepthrecon.io.cube import CANONICAL_DIMS, SURFACE_DIMS, standardize, standardize_surface  # noqa: E402
from xdepthrecon.io.datasets import available_samples, fetch_asset, open_sample  # noqa: E402
from xdepthrecon.diffusion.latent import LatentDiffusion  # noqa: E402
from xdepthrecon.diffusion.samplers import SamplingOptions  # noqa: E402
from xdepthrecon.training.analysis import fit_analysis  # noqa: E402
from xdepthrecon.training.config import (AutoencoderConfig, DiffusionConfig, ObservationConfig,  # noqa: E402
                                         TrainingConfig)
from xdepthrecon.training.diffusion import train_diffusion  # noqa: E402
from xdepthrecon.encoding import decode, encode  # noqa: E402
from xdepthrecon.gridding import grid_profiles  # noqa: E402
from xdepthrecon.evaluation.ceiling import compression_ceiling  # noqa: E402
from xdepthrecon.evaluation.metrics import evaluate  # noqa: E402
from xdepthrecon.models.autoencoder import DepthBandAutoencoder  # noqa: E402
from xdepthrecon.evaluation.osse import osse  # noqa: E402
from xdepthrecon.io.profiles import PROFILE_DIMS, pressure_to_depth, read_profiles  # noqa: E402
from xdepthrecon.reconstruct import reconstruct  # noqa: E402
from xdepthrecon.sampling import sample_profiles  # noqa: E402
from xdepthrecon.io.sst import align_sst  # noqa: E402
from xdepthrecon.training.autoencoder import train_autoencoder  # noqa: E402

__all__ = [
    "Analysis",
    "AnalysisConfig",
    "AutoencoderConfig",
    "CANONICAL_DIMS",
    "DiffusionConfig",
    "ObservationConfig",
    "SamplingOptions",
    "TrainingConfig",
    "SURFACE_DIMS",
    "DepthBandAutoencoder",
    "LatentDiffusion",
    "PROFILE_DIMS",
    "__version__",
    "align_sst",
    "available_samples",
    "compression_ceiling",
    "decode",
    "encode",
    "evaluate",
    "fetch_asset",
    "fit_analysis",
    "grid_profiles",
    "load",
    "open_sample",
    "osse",
    "pressure_to_depth",
    "read_profiles",
    "reconstruct",
    "sample_profiles",
    "standardize",
    "standardize_surface",
    "train_autoencoder",
    "train_diffusion",
]
