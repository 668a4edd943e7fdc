"""xdepthrecon: reconstruct 3-D ocean temperature from sparse profiles and satellite SST.

``import xdepthrecon`` registers the ``depthrecon`` accessor on xarray Datasets and DataArrays.
"""

__version__ = "0.1.0"

from xdepthrecon import accessor as _accessor  # noqa: E402,F401  (registers ds.depthrecon)
from xdepthrecon.cube import CANONICAL_DIMS, SURFACE_DIMS, standardize, standardize_surface  # noqa: E402

__all__ = ["CANONICAL_DIMS", "SURFACE_DIMS", "__version__", "standardize", "standardize_surface"]
