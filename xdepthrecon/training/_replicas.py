"""Data-parallel training under ``torchrun``: the process group, DDP wrapping and the few reductions.

Started with ``torchrun --nproc_per_node N script.py``, the training functions find torchrun's
environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), join the process group (NCCL on GPUs, gloo on
CPUs), wrap the trainable module in :class:`torch.nn.parallel.DistributedDataParallel`, draw distinct
patches on each rank, and let rank 0 alone write checkpoints and show progress. Run as a plain
process, all of this reduces to the single-process path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Replicas:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """True on the process that writes checkpoints and shows progress."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1


def join(device: torch.device) -> Replicas:
    """The training processes: torchrun's process group (started here if needed), else this process alone."""
    if not dist.is_available():
        return Replicas()
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return Replicas()
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Replicas(dist.get_rank(), dist.get_world_size())


class LossModule(nn.Module):
    """``loss(*inputs)`` as the forward of a module holding ``model``, so that DDP can wrap the whole step."""

    def __init__(self, model: nn.Module, loss: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, *inputs) -> torch.Tensor:
        return self.loss(*inputs)


def wrap(module: nn.Module, replicas: Replicas, device: torch.device) -> nn.Module:
    """``module`` in DistributedDataParallel when training on several processes (weights from rank 0)."""
    if not replicas.parallel:
        return module
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def _on_backend(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.cuda() if dist.get_backend() == "nccl" else tensor


def together(batches: Iterable, replicas: Replicas) -> Iterator:
    """Yield batches while every process still has one, so all ranks take the same number of steps."""
    iterator = iter(batches)
    while True:
        batch = next(iterator, None)
        if replicas.parallel:
            have = _on_backend(torch.tensor([0 if batch is None else 1]))
            dist.all_reduce(have, op=dist.ReduceOp.MIN)
            if not int(have.item()):
                return
        elif batch is None:
            return
        yield batch


def sums(values: list[float], replicas: Replicas) -> list[float]:
    """Element-wise sums of ``values`` over all processes."""
    if not replicas.parallel:
        return values
    tensor = _on_backend(torch.tensor(values, dtype=torch.float64))
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def barrier(replicas: Replicas) -> None:
    """Wait for every process (e.g. until rank 0 has written a checkpoint)."""
    if replicas.parallel:
        dist.barrier()
