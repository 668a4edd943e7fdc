"""Heap thresholds inside dask workers: raised only where dask's trimming variable is set."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = "from xdepthrecon._allocator import relax_heap_trimming; print(relax_heap_trimming(), relax_heap_trimming())"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_thresholds_change_once_and_only_under_dask_trimming():
    def run(environment):
        return subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True,
                              env=environment).stdout.split()

    import os

    plain = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    assert run(plain) == ["False", "False"]
    assert run({**plain, "MALLOC_TRIM_THRESHOLD_": "65536"}) == ["True", "False"]
