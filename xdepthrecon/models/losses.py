"""Training losses of the models, in normalised units and over the valid values only."""

from __future__ import annotations

import torch

__all__ = ["reconstruction_loss"]


def reconstruction_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    l1_weight: float = 1.0,
    l2_weight: float = 0.5,
) -> torch.Tensor:
    """``l1_weight * L1 + l2_weight * MSE``, each a mean over the valid values.

    Parameters
    ----------
    pred, target
        Tensors of the same shape (e.g. normalised ``(..., level, H, W)``). NaN in ``target`` is never valid.
    mask
        Optional validity mask broadcastable to ``target`` (True: valid), per level and pixel.
    l1_weight, l2_weight
        Weights of the mean absolute and the mean squared error.

    Returns
    -------
    torch.Tensor
        Scalar loss; 0 when nothing is valid.
    """
    valid = ~torch.isnan(target)
    if mask is not None:
        valid = valid & torch.as_tensor(mask, device=target.device).bool()
    error = torch.where(valid, pred - target, 0.0)
    count = valid.expand_as(error).sum().clamp_min(1)
    return (l1_weight * error.abs().sum() + l2_weight * error.square().sum()) / count
