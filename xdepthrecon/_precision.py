"""Reduced precision inside the networks only: bfloat16 autocast where it pays, fp32 everywhere else; and the
memory layout convolutions run fastest in on each device.

``fast=None`` (the default everywhere) chooses by the device the network runs on: bfloat16 autocast on CUDA GPUs
that support it and on CPUs with bfloat16 matrix units (AMX or AVX-512 BF16), where it is faster; fp32 elsewhere,
where bfloat16 is emulated and slower (0.3-0.4x fp32 on a 2-core AVX2 CPU, see docs/performance.md). The
environment variable ``XDEPTHRECON_PRECISION=fp32`` makes ``fast=None`` mean fp32 everywhere (results that do not
depend on the machine, in every process a job starts); ``auto`` or unset: by the device.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

#: Layout of the networks' activations on a CPU: channels-last convolutions run 1.5x (training step) to 1.9x
#: (inference) faster there than the default layout (2-core AVX2 CPU, fp32; docs/performance.md).
CPU_MEMORY_FORMAT = torch.channels_last

#: CPU features with native bfloat16 matrix arithmetic (names of :func:`torch.cpu.get_capabilities`).
BF16_CPU_FEATURES = ("amx_bf16", "avx512_bf16")
#: Environment variable for the default precision: ``fp32``, or ``auto`` (by the device; also when unset).
PRECISION_VARIABLE = "XDEPTHRECON_PRECISION"


@functools.cache
def _cpu_has_bf16_units() -> bool:
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        found = capabilities()
        return any(bool(found.get(name)) for name in BF16_CPU_FEATURES)
    checks = (getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
    return any(check() for check in checks if check is not None)  # torch before get_capabilities


def bf16_pays(device: torch.device) -> bool:
    """Whether bfloat16 autocast runs the networks faster than fp32 on ``device`` (never with
    :data:`PRECISION_VARIABLE` set to ``fp32``)."""
    chosen = os.environ.get(PRECISION_VARIABLE, "auto").strip().lower()
    if chosen not in ("auto", "fp32"):
        raise ValueError(f"{PRECISION_VARIABLE}={chosen!r}: use 'fp32' (networks in fp32 unless fast=True) or "
                         "'auto' (bf16 where the device has bfloat16 units)")
    if chosen == "fp32":
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_has_bf16_units()


def resolve_fast(fast: bool | None, device: torch.device) -> bool:
    """``fast`` as given, or (None) whether reduced precision pays on ``device``."""
    return bf16_pays(device) if fast is None else bool(fast)


def network_precision(device: torch.device, fast: bool | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bfloat16 on ``device`` when ``fast`` (None: where it pays), else a no-op context."""
    if resolve_fast(fast, device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def convolution_layout(h: torch.Tensor) -> torch.Tensor:
    """``h`` in the memory layout the networks' convolutions run fastest in on its device (:data:`CPU_MEMORY_FORMAT`
    on a CPU; as it is elsewhere). Values are unchanged."""
    return h.contiguous(memory_format=CPU_MEMORY_FORMAT) if h.device.type == "cpu" else h
