"""One network call at a time in a process: torch's intra-op threads already use every core.

dask's threaded scheduler runs as many tasks at once as there are cores, and a torch call made from each of them
starts its own team of intra-op threads, one per core: cores x cores threads then compete for the cores. The
network runners (:mod:`xdepthrecon.encoding`, :mod:`xdepthrecon.diffusion.guidance`) hold :data:`NETWORK_LOCK`
around each network call, so one call runs at a time on all the cores (or on the GPU) while the other tasks read,
grid, analyse and write.
"""

from __future__ import annotations

import threading

#: Held around every network call of the runners (re-entrant: a runner may call another).
NETWORK_LOCK = threading.RLock()
