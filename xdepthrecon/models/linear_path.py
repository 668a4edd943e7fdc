"""The EOF linear path of the depth-band autoencoder: the network starts at PCA truncation.

With ``linear_path=True`` each side of :class:`~xdepthrecon.models.autoencoder.DepthBandAutoencoder`
has a linear 1x1 path added to its convolution stack: ``encode_linear`` (levels to latent) beside the
encoder and ``decode_linear`` (latent to levels) beside the decoder. :func:`set_eof_path` sets them to
the EOFs of the training columns (the per-column PCA of :mod:`xdepthrecon.stats.pca`) and zeroes
``to_latent`` and ``to_output``, so the model starts exactly at PCA truncation and training learns the
nonlinear, spatially aware correction on top. The linear path is not trained (its parameters have
``requires_grad=False``): training it as well measured worse than keeping it fixed. Below-bottom gaps of
a column are filled, on the way in, by :func:`fill_gaps`: the EOFs' least-squares fit to the column's
valid levels, regularised by the EOF variances (``gap_penalty``, a buffer saved with the weights; see
:mod:`xdepthrecon.stats.pca`), and the linear path projects the filled column. For a complete column that
is the PCA baseline's projection; for a cut one it stays close to the baseline's exact gappy fit, without
the exact fit's latents of hundreds of standard deviations on shelf columns (which break diffusion
training on the latents). Why it is worth it: on held-out regions and months of the sample atlas
(``benchmarks/bench_autoencoder_quality.py``) the reference architecture, trained on a CPU budget, stays
far behind PCA at the same latent size, while the model with the linear path beats PCA in every depth
band. The reference architecture has no such path; it is off by default, so reference weights and
configs load unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from xdepthrecon.stats.pca import PCACompressor, gappy_amplitudes

if TYPE_CHECKING:
    from xdepthrecon.models.autoencoder import DepthBandAutoencoder

__all__ = ["fill_gaps", "full_precision", "set_eof_path"]


def set_eof_path(model: DepthBandAutoencoder, eofs: PCACompressor) -> None:
    """Set ``model``'s linear path to ``eofs`` and silence its convolution stacks (see the module docstring).

    ``encode_linear`` becomes ``z = V.T @ (x_n - offset)`` and ``decode_linear`` ``x_n = offset + V @ z``
    (``V`` the EOFs, ``x_n`` the per-level normalised column); ``gap_penalty`` becomes the EOFs'
    :attr:`~xdepthrecon.stats.pca.PCACompressor.prior_penalty`; the weights and biases of ``to_latent``
    and ``to_output`` become 0.

    Raises
    ------
    ValueError
        When the model has no linear path, or the EOFs do not match its levels, latent size or normalisation.
    """
    if not model.linear_path:
        raise ValueError("this autoencoder has no linear path; build it with linear_path=True")
    if eofs.components.shape != (model.in_channels, model.latent_channels):
        raise ValueError(f"the EOFs are shaped {eofs.components.shape} (levels, components); this autoencoder "
                         f"needs ({model.in_channels}, {model.latent_channels})")
    mean, std = model.mean.cpu().numpy(), model.std.cpu().numpy()
    if not (np.allclose(eofs.mean, mean, rtol=1e-5, atol=1e-6) and np.allclose(eofs.std, std, rtol=1e-5)):
        raise ValueError("the EOFs were fitted with other normalisation statistics than this autoencoder's; "
                         "fit them with PCACompressor.fit(cube, k, mean=ae.mean, std=ae.std)")
    basis = torch.as_tensor(eofs.components, dtype=torch.float32)
    centre = torch.as_tensor(eofs.offset, dtype=torch.float32)
    with torch.no_grad():
        for layer, weight, bias in ((model.encode_linear, basis.T, -basis.T @ centre),
                                    (model.decode_linear, basis, centre)):
            layer.weight.copy_(weight[:, :, None, None])
            layer.bias.copy_(bias)
        model.gap_penalty.copy_(torch.as_tensor(eofs.prior_penalty))
        for layer in (model.to_latent, model.to_output):
            if layer is not None:
                layer.weight.zero_()
                layer.bias.zero_()
        model.correction_gate.fill_(1.0)


def fill_gaps(h: torch.Tensor, invalid: torch.Tensor, decoder: nn.Conv2d, penalty: torch.Tensor) -> torch.Tensor:
    """Fill the gaps of partly valid columns with the linear decoder's regularised fit to their valid levels.

    Parameters
    ----------
    h, invalid
        Normalised field and where it has no value, both ``(N, C, H, W)``.
    decoder
        The linear decoder (``decode_linear``): latent to normalised levels.
    penalty
        Weight of each latent amplitude's square in the fit (``gap_penalty``).

    Returns
    -------
    torch.Tensor
        ``h`` with the gaps of columns that have some valid levels filled; wholly valid or wholly
        invalid columns unchanged.
    """
    partial = invalid.any(1) & ~invalid.all(1)
    if not bool(partial.any()):
        return h
    columns = h.permute(0, 2, 3, 1)
    valid = ~invalid.permute(0, 2, 3, 1)[partial]
    with torch.no_grad(), torch.autocast(h.device.type, enabled=False):
        basis = decoder.weight[:, :, 0, 0].double()
        centre = decoder.bias.double()
        amplitudes = gappy_amplitudes(columns[partial].double() - centre, valid, basis, penalty.double())
        fit = centre + amplitudes @ basis.T
    filled = columns.clone()
    filled[partial] = torch.where(valid, columns[partial], fit.to(h.dtype))
    return filled.permute(0, 3, 1, 2)


def full_precision(layer: nn.Conv2d, h: torch.Tensor) -> torch.Tensor:
    """``layer(h)`` in the layer's own dtype even under autocast: the linear path carries most of the signal."""
    with torch.autocast(h.device.type, enabled=False):
        return layer(h.to(layer.weight.dtype))
