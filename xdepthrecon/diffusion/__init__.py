"""Diffusion process and samplers, separate from any network (see STYLE.md: the sampler is not the network)."""

from xdepthrecon.diffusion.samplers import sample
from xdepthrecon.diffusion.schedule import NoiseSchedule

__all__ = ["NoiseSchedule", "sample"]
