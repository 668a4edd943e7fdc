"""The sampler's parts: the conditioned network over tiles equals it on the whole grid; replacement keeps
the observed values."""

from __future__ import annotations

import torch

from xdepthrecon.diffusion.guidance import ConditionedDenoiser, Replacement
from xdepthrecon.tiling import Tiling

from tests.conftest import toy_diffusion, toy_inputs


def test_one_tile_covering_the_grid_is_the_network_itself_and_chunks_do_not_matter():
    model, inputs = toy_diffusion(), toy_inputs()
    prepared = model.prepare(inputs)
    condition = prepared.condition.expand(3, -1, -1, -1)
    r_t = torch.randn(3, 2, 12, 20, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([40, 20, 5])
    whole = ConditionedDenoiser(model, condition, {}, fast=False)(r_t, t)  # fp32, as the network alone
    with torch.no_grad():
        direct = model.denoiser(r_t, t, condition)
    torch.testing.assert_close(whole, direct)
    tiling = Tiling(12, 20, 32, 8)  # one tile larger than the grid
    tiled = ConditionedDenoiser(model, condition, {}, tiling=tiling, batch_size=1, fast=False)
    torch.testing.assert_close(tiled(r_t, t), direct)


def test_replacement_puts_the_observations_back_where_observed_only():
    model, inputs = toy_diffusion(), toy_inputs()
    prepared = model.prepare(inputs)
    replacement = Replacement(model, prepared, inputs.x, inputs.mask)
    r0 = 0.3 * torch.randn(2, 2, 12, 20, generator=torch.Generator().manual_seed(2))
    projected = replacement(r0, torch.tensor([10, 10]))
    columns = inputs.mask.any(dim=1, keepdim=True).expand_as(r0)
    torch.testing.assert_close(projected[~columns], r0[~columns])  # unobserved columns keep the estimate
    # in observed columns the latent is that of the decoded estimate with the observations put in
    decoded = model.decode_latent(prepared.base + r0)
    corrected = torch.where(inputs.mask, inputs.x, decoded)
    expected = model.encode_target(corrected) - prepared.base
    torch.testing.assert_close(projected[columns], expected[columns])


def test_a_patch_within_its_halo_is_conditioned_on_the_analysis_of_the_whole_field():
    """``prepare(interior=)``, as in training: the guess and the density class from every profile of the field (the
    profile at (3, 5) lies outside the patch), the SST, observed fraction and gaps of the patch."""
    model, inputs = toy_diffusion(), toy_inputs()
    inputs.sst[..., 10:, :] = torch.nan  # a cloud over the last rows (no gap covariances: analysed as the rest)
    whole = model.prepare(inputs)
    patch = model.prepare(inputs, interior=torch.tensor([[4, 8, 8, 8]]))
    cut = (..., slice(4, 12), slice(8, 16))
    torch.testing.assert_close(patch.guess.mean, whole.guess.mean[cut])
    assert (patch.guess.mean - model.prepare(inputs._replace(x=inputs.x[cut], mask=inputs.mask[cut],
                                                             sst=inputs.sst[cut], background=inputs.background[cut],
                                                             latitude=inputs.latitude[:, 4:12],
                                                             longitude=inputs.longitude[:, 8:16])).guess.mean
            ).abs().max() > 1e-3  # the patch alone does not see the profile at (3, 5)
    torch.testing.assert_close(patch.condition[:, :2], whole.condition[:, :2][cut])  # SST and where it is valid
    torch.testing.assert_close(patch.condition[:, 4], whole.condition[:, 4][cut])  # the observed fraction
    assert torch.equal(patch.gaps, whole.gaps[cut]) and patch.gaps.any()
    assert torch.equal(patch.density_class, whole.density_class)
    assert patch.condition.shape[-2:] == patch.base.shape[-2:] == (8, 8)
