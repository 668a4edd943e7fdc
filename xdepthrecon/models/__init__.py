"""Neural networks of xdepthrecon: the depth-band autoencoder (and, later, the denoiser)."""

from xdepthrecon.models.autoencoder import (
    DepthBandAutoencoder,
    level_statistics,
    load_reference_state_dict,
    reconstruction_loss,
)

__all__ = ["DepthBandAutoencoder", "level_statistics", "load_reference_state_dict", "reconstruction_loss"]
