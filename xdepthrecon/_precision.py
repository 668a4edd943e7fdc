"""Reduced precision inside the networks only: bfloat16 autocast on request, fp32 everywhere else."""

from __future__ import annotations

import contextlib

import torch


def network_precision(device: torch.device, fast: bool) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bfloat16 on ``device`` when ``fast``, else a no-op context.

    Fast on GPUs and on CPUs with AMX; slower on CPUs without (see the benchmarks).
    """
    return torch.autocast(device.type, dtype=torch.bfloat16) if fast else contextlib.nullcontext()
