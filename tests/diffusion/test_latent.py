"""The denoising loss: its second draw of each item at the noisiest level, at its weight; decoding residuals onto
the guess."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import toy_diffusion, toy_inputs


def _truth() -> torch.Tensor:
    """A full cube for :func:`toy_inputs`' grid (1, 4, 12, 20) in degC, with a land column."""
    y = 10.0 + torch.randn(1, 4, 12, 20, generator=torch.Generator().manual_seed(3))
    y[..., 0, 0] = torch.nan
    return y


@pytest.mark.parametrize("weight", [0.0, 0.5, 2.0])
def test_the_mean_draw_adds_the_noisiest_level_at_its_weight(weight):
    model, y = toy_diffusion(), _truth()
    prepared = model.prepare(toy_inputs())
    seen = []
    model.denoiser.register_forward_hook(lambda module, arguments, output: seen.append((arguments[1], output)))
    with torch.no_grad():
        value = model.loss(y, prepared, {}, generator=torch.Generator().manual_seed(0), mean_weight=weight)
        r0 = model.residual(y, prepared)  # the x0 target
    (t, output), = seen
    assert len(t) == (2 if weight > 0 else 1)
    ocean = ~torch.isnan(y).all(dim=1, keepdim=True).expand_as(r0)
    squares = [((draw - r0)[ocean] ** 2).mean() for draw in output]
    if weight > 0:
        assert int(t[1]) == model.schedule.steps - 1
        torch.testing.assert_close(value, squares[0] + weight * squares[1])
    else:
        torch.testing.assert_close(value, squares[0])


def test_a_residual_decodes_onto_the_guess_with_or_without_the_decoded_base():
    model = toy_diffusion()
    prepared = model.prepare(toy_inputs())
    with torch.no_grad():
        zero = model.decode_residual(torch.zeros_like(prepared.base), prepared)
        r = torch.randn(3, *prepared.base.shape[1:], generator=torch.Generator().manual_seed(1))
        plain = model.decode_residual(r, prepared)
        given = model.decode_residual(r, prepared, model.decode_latent(prepared.base))
    torch.testing.assert_close(zero, prepared.guess.mean)  # no residual: the guess exactly
    torch.testing.assert_close(given, plain)
    assert given.shape == (3, *prepared.guess.mean.shape[1:]) and (plain - zero).abs().amax() > 1e-3
