"""Neural networks of xdepthrecon: the depth-band autoencoder (and, later, the denoiser)."""

from xdepthrecon.models.autoencoder import DepthBandAutoencoder
from xdepthrecon.models.levels import level_statistics
from xdepthrecon.models.losses import reconstruction_loss
from xdepthrecon.models.reference import load_reference_state_dict

__all__ = ["DepthBandAutoencoder", "level_statistics", "load_reference_state_dict", "reconstruction_loss"]
