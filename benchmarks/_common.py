"""Shared helpers of the benchmark scripts: machine facts and JSON results under benchmarks/results/."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import numpy
    import torch

    import xdepthrecon

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": numpy.__version__,
        "xdepthrecon": xdepthrecon.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` with the date and machine facts to ``benchmarks/results/<name>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {"benchmark": name, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "machine": machine(), **payload}
    path.write_text(json.dumps(document, indent=2, default=float) + "\n")
    print(json.dumps(document, indent=2, default=float))
    return path
