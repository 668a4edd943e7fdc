"""Scale-out properties: bounded memory when streaming a global cube to zarr (runs the benchmark script)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scale_memory.py"


@pytest.mark.skipif(not BENCHMARK.exists(), reason="benchmarks/ is not part of this checkout")
def test_streaming_a_global_cube_to_zarr_keeps_peak_memory_flat(tmp_path):
    pytest.importorskip("zarr")
    command = [sys.executable, str(BENCHMARK), "--child", "--shape", "20", "360", "720", "--chunks", "120", "240"]
    runs = [json.loads(subprocess.run([*command, "--times", str(times)], check=True, capture_output=True,
                                      text=True).stdout.strip().splitlines()[-1]) for times in (1, 8)]
    one, eight = runs
    assert eight["cube_mb"] - one["cube_mb"] > 130  # 139 MB more data streamed through ...
    # ... while the peak grows by at most a few chunks (and allocator noise), not with the data
    assert eight["peak_growth_mb"] < one["peak_growth_mb"] + 4 * eight["chunk_mb"] + 30
