"""Tests of xdepthrecon.models.autoencoder: shapes, gaps, normalisation, configs and reference weights."""

from __future__ import annotations

import importlib
import textwrap

import numpy as np
import pytest
import safetensors.torch
import torch

from xdepthrecon.models import DepthBandAutoencoder, level_statistics, load_reference_state_dict, reconstruction_loss

LEVELS = np.array([0.5, 10.0, 50.0, 200.0, 1000.0])
WIDTHS = dict(latent_channels=3, encoder_channels=(8, 8, 8), decoder_channels=(8, 8, 8))

AE_SECTION = """\
  model_type: depth_band_ae
  in_channels: 5
  latent_channels: 3
  spatial_downsample: 2
  encoder:
    hidden_channels: [8, 6]
  decoder:
    hidden_channels: [6, 8]
  loss:
    recon_l1_weight: 1.0
    recon_l2_weight: 0.25
    masked_only: true
  training:
    lr: 3.0e-4
    batch_size: 4
    max_epochs: 7
"""


def _model(**kwargs) -> DepthBandAutoencoder:
    torch.manual_seed(0)
    options = dict(WIDTHS, depth=LEVELS, mean=np.linspace(20.0, 4.0, 5), std=np.linspace(3.0, 0.5, 5))
    options.update(kwargs)
    return DepthBandAutoencoder(5, **options)


def _field(*lead: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 15.0 + 5.0 * torch.randn(*lead, 5, size, size, generator=generator)


def test_encode_decode_shapes_keep_leading_dims():
    ae = _model()
    x = _field(2, 3)
    z = ae.encode(x)
    assert z.shape == (2, 3, 3, 16, 16)
    assert ae.decode(z).shape == x.shape
    assert ae(x[0, 0]).shape == (5, 16, 16)


def test_wrong_channel_count_is_refused():
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 5, H, W\)"):
        _model().encode(torch.zeros(1, 4, 16, 16))


def test_nan_never_reaches_the_network_nor_the_output():
    ae = _model()
    seen = []
    for layer in [*ae.encoder, ae.to_latent, *ae.decoder, ae.to_output]:
        if isinstance(layer, torch.nn.Conv2d):
            layer.register_forward_hook(lambda module, inputs, output: seen.append(torch.isnan(inputs[0]).any()))
    x = _field(2)
    x[:, :, :5, :7] = float("nan")
    x[0, 3:] = float("nan")
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[1, 0] = False
    out = ae(x, mask=mask)
    assert len(seen) == 8 and not any(seen)
    assert not torch.isnan(out).any()


def test_gap_is_filled_with_the_level_mean():
    ae = _model()
    x = _field(1)
    x[0, 2, 4, 4] = float("nan")
    filled = x.clone()
    filled[0, 2, 4, 4] = ae.mean[2]
    torch.testing.assert_close(ae.encode(x), ae.encode(filled))


def test_normalize_round_trip_and_per_level_scaling():
    ae = _model()
    x = _field(2)
    torch.testing.assert_close(ae.denormalize(ae.normalize(x)), x)
    level = ae.normalize(torch.full((5, 1, 1), 20.0))[:, 0, 0]
    torch.testing.assert_close(level, (20.0 - ae.mean) / ae.std)


def test_level_statistics_match_numpy_with_gaps():
    rng = np.random.default_rng(1)
    x = rng.normal(10.0, 2.0, size=(3, 5, 6, 7))
    x[rng.random(x.shape) < 0.3] = np.nan
    x[:, 4] = np.nan
    x[0, 4, 0, 0] = 3.0
    mean, std = level_statistics(torch.from_numpy(x))
    np.testing.assert_allclose(mean, np.nanmean(x, axis=(0, 2, 3)))
    np.testing.assert_allclose(std, np.nanstd(x, axis=(0, 2, 3)))

    mask = rng.random(x.shape) < 0.5
    masked = np.where(mask, x, np.nan)
    with pytest.warns(RuntimeWarning):
        expected = np.nanmean(masked, axis=(0, 2, 3))
    np.testing.assert_allclose(level_statistics(x, mask)[0], expected)


def test_fit_normalization_sets_statistics_and_refuses_empty_levels():
    x = _field(4).numpy().astype(np.float64)
    x[:, :, :3] = np.nan
    ae = _model().fit_normalization(x)
    np.testing.assert_allclose(ae.mean.numpy(), np.nanmean(x, axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(ae.std.numpy(), np.nanstd(x, axis=(0, 2, 3)), rtol=1e-6)
    x[:, 4] = np.nan
    with pytest.raises(ValueError, match=r"levels \['1000 m'\] have no valid values"):
        ae.fit_normalization(x)


def test_check_levels_accepts_float32_depths_and_names_differences():
    ae = _model()
    ae.check_levels(LEVELS.astype(np.float32))
    with pytest.raises(ValueError, match=r"data has 4 depth levels .* trained on 5 \(0.5 \.\.\. 1000 m\)"):
        ae.check_levels(LEVELS[:4])
    changed = LEVELS.copy()
    changed[3] = 250.0
    with pytest.raises(ValueError, match=r"1 of 5 .* level 3: data 250 m, trained 200 m; interpolate"):
        ae.check_levels(changed)
    with pytest.raises(ValueError, match="records no depth levels"):
        _model(depth=None).check_levels(LEVELS)


def test_spatial_downsample_shapes_and_pooled_mask():
    ae = _model(spatial_downsample=2)
    z = ae.encode(_field(2))
    assert z.shape == (2, 3, 8, 8)
    assert ae.decode(z).shape == (2, 5, 16, 16)
    mask = torch.zeros(2, 5, 16, 16, dtype=torch.bool)
    mask[0, 4, 3, 5] = True
    pooled = ae.latent_mask(mask)
    assert pooled.shape == (2, 1, 8, 8)
    assert pooled.sum() == 1 and pooled[0, 0, 1, 2]
    with pytest.raises(ValueError, match="17x16 pixels, not a multiple of spatial_downsample=2"):
        ae.encode(torch.zeros(1, 5, 17, 16))


def test_latent_mask_without_downsampling_collapses_levels():
    mask = torch.zeros(5, 4, 4, dtype=torch.bool)
    mask[2, 1, 1] = True
    assert _model().latent_mask(mask).shape == (1, 4, 4)
    assert _model().latent_mask(mask).sum() == 1


def test_reconstruction_loss_masks_and_ignores_nan_targets():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[0.0, 0.0], [float("nan"), 2.0]])
    mask = torch.tensor([[True, False], [True, True]])
    loss = reconstruction_loss(pred, target, mask)
    assert loss.item() == pytest.approx(((1 + 2) + 0.5 * (1 + 4)) / 2)
    assert reconstruction_loss(pred, torch.zeros(2, 2)).item() == pytest.approx((10 + 0.5 * 30) / 4)
    assert reconstruction_loss(pred, target, torch.zeros(2, 2, dtype=torch.bool)).item() == 0.0
    pred.requires_grad_(True)
    reconstruction_loss(pred, target).backward()
    assert not torch.isnan(pred.grad).any()


@pytest.mark.parametrize("wrapped", [False, True])
def test_from_config_reads_the_reference_layout(tmp_path, wrapped):
    text = "ae:\n" + AE_SECTION
    text = "data:\n" + textwrap.indent(text, "  ") if wrapped else "data:\n  dataset: glorys\n" + text
    path = tmp_path / "ae_config.yaml"
    path.write_text(text)
    ae = DepthBandAutoencoder.from_config(path, depth=LEVELS)
    assert ae.config == {
        "in_channels": 5, "latent_channels": 3, "encoder_channels": [8, 6], "decoder_channels": [6, 8],
        "spatial_downsample": 2, "linear_path": False,
    }
    assert ae.training_config == {
        "loss": {"recon_l1_weight": 1.0, "recon_l2_weight": 0.25, "masked_only": True},
        "training": {"lr": 3e-4, "batch_size": 4, "max_epochs": 7},
    }
    assert ae.depth.tolist() == LEVELS.tolist()


def test_from_config_refuses_unknown_keys_and_missing_section():
    with pytest.raises(ValueError, match=r"unknown keys \['latent_chanels'\]"):
        DepthBandAutoencoder.from_config({"ae": {"in_channels": 5, "latent_chanels": 3}})
    with pytest.raises(ValueError, match="no 'ae' section"):
        DepthBandAutoencoder.from_config({"data": {"dataset": "glorys"}})


def test_reference_state_dict_with_model_prefix_gives_identical_outputs(tmp_path):
    source, target = _model(), _model()
    torch.manual_seed(5)
    for parameter in source.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    reference = {f"model.{key}": value.clone() for key, value in source.state_dict().items()}
    x = _field(2)
    assert not torch.equal(target(x), source(x))
    load_reference_state_dict(target, reference)
    assert torch.equal(target(x), source(x))

    path = tmp_path / "reference.ckpt"
    torch.save({"state_dict": {f"autoencoder.{k}": v for k, v in source.state_dict().items()}, "epoch": 3}, path)
    assert load_reference_state_dict(_model(), path).identity == source.identity
    safetensors.torch.save_file(reference, tmp_path / "reference.safetensors")
    assert load_reference_state_dict(_model(), tmp_path / "reference.safetensors").identity == source.identity


def test_reference_state_dict_lists_unexpected_and_missing_keys():
    reference = {f"model.{key}": value for key, value in _model().state_dict().items()}
    reference["model.loss_scale"] = torch.ones(1)
    del reference["model.to_output.bias"]
    with pytest.raises(ValueError, match=r"missing keys to_output\.bias, unexpected keys loss_scale"):
        load_reference_state_dict(_model(), reference)
    denoiser = {"model.encoder.0.weight": torch.zeros(1)}
    selected = {**denoiser, **{f"autoencoder.{key}": value for key, value in _model().state_dict().items()}}
    load_reference_state_dict(_model(), selected, prefix="autoencoder.")


def test_identity_is_stable_and_tracks_weights_and_statistics():
    assert _model().identity == _model().identity
    assert len(_model().identity) == 16
    assert _model(std=2.0).identity != _model().identity
    changed = _model()
    with torch.no_grad():
        changed.to_latent.bias.add_(1e-3)
    assert changed.identity != _model().identity


def _eof_pair(k: int = 3):
    """A small cube with cut columns, its EOFs, and an autoencoder whose linear path starts at them."""
    from xdepthrecon.baselines import PCACompressor

    from tests.conftest import glorys_like

    cube = glorys_like(times=3, depths=5, lats=16, lons=16).assign_coords(depth=LEVELS)
    cube.depth.attrs.update(standard_name="depth", positive="down", units="m")
    pca = PCACompressor.fit(cube, k)
    ae = _model(linear_path=True, mean=pca.mean, std=pca.std, latent_channels=k).init_linear_path(pca)
    return cube, pca, ae


def test_linear_path_starts_at_the_eof_truncation():
    cube, pca, ae = _eof_pair()
    x = torch.from_numpy(cube.thetao.values)
    count = (~torch.isnan(x)).sum(dim=1, keepdim=True).numpy()
    cut = (count > 0) & (count < 5)
    assert cut.any()
    got = ae(x).detach().numpy()
    exact = pca.decode(pca.encode(cube)).thetao.values
    np.testing.assert_allclose(np.where(count == 5, got, 0.0), np.where(count == 5, exact, 0.0), atol=1e-4)
    truth = cube.thetao.values
    on_cut = ~np.isnan(truth) & cut
    error, baseline = (np.sqrt(np.mean((values - truth)[on_cut] ** 2)) for values in (got, exact))
    assert error < 1.5 * baseline + 1e-3


def test_regularised_gap_fill_keeps_latents_of_shallow_columns_in_range():
    cube, pca, ae = _eof_pair()
    scale = np.sqrt(pca.explained_variance)[:, None, None]
    exact = np.nanmax(np.abs(pca.encode(cube).latent.values) / scale)
    filled = np.abs(ae.encode(torch.from_numpy(cube.thetao.values)).detach().numpy()) / scale
    assert exact > 100 and filled.max() < 10


def test_linear_path_is_in_config_and_checkpoint_and_keeps_the_reference_layout(tmp_path):
    import xdepthrecon
    from xdepthrecon.baselines import PCACompressor

    cube, pca, linear = _eof_pair()
    plain = _model()
    assert plain.config["linear_path"] is False and linear.config["linear_path"] is True
    assert set(linear.state_dict()) - set(plain.state_dict()) == {
        "encode_linear.weight", "encode_linear.bias", "decode_linear.weight", "decode_linear.bias", "gap_penalty",
        "correction_gate"}
    loaded = xdepthrecon.load(linear.save(tmp_path / "ae.safetensors"))
    assert loaded.linear_path and loaded.identity == linear.identity
    torch.testing.assert_close(loaded.gap_penalty, torch.as_tensor(pca.prior_penalty, dtype=torch.float32))
    x = torch.from_numpy(cube.thetao.values)
    torch.testing.assert_close(loaded(x), linear(x))
    with pytest.raises(ValueError, match="no linear path; build it with linear_path=True"):
        plain.init_linear_path(pca)
    with pytest.raises(ValueError, match=r"the EOFs are shaped \(5, 2\) .* needs \(5, 3\)"):
        linear.init_linear_path(PCACompressor.fit(cube, 2))
    with pytest.raises(ValueError, match="other normalisation statistics .* mean=ae.mean, std=ae.std"):
        _model(linear_path=True).init_linear_path(pca)


def test_linear_path_under_autocast_keeps_full_precision():
    cube, _, ae = _eof_pair()
    x = torch.from_numpy(cube.thetao.values)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast = ae.decode(ae.encode(x))
    torch.testing.assert_close(fast, ae(x).detach(), atol=1e-4, rtol=0)


def test_nan_never_reaches_the_linear_path():
    ae = _model(linear_path=True)
    seen = []
    for layer in (ae.encode_linear, ae.decode_linear, ae.encoder[0]):
        layer.register_forward_hook(lambda module, inputs, output: seen.append(torch.isnan(inputs[0]).any()))
    x = _field(2)
    x[:, 3:, :5] = float("nan")
    x[1, :, 7:] = float("nan")
    assert not torch.isnan(ae(x)).any() and len(seen) == 3 and not any(seen)


def test_weights_saved_without_a_gate_load_with_the_gate_open():
    _, _, linear = _eof_pair()
    with torch.no_grad():
        linear.correction_gate.fill_(0.5)
    older = {key: value for key, value in linear.state_dict().items() if key != "correction_gate"}
    linear.load_state_dict(older)
    torch.testing.assert_close(linear.correction_gate, torch.ones(linear.in_channels))


def test_a_closed_gate_and_no_encoder_widths_give_exactly_the_eofs():
    from xdepthrecon.baselines import PCACompressor

    cube, _, _ = _eof_pair()
    thetao = cube.thetao
    complete = thetao.notnull().all("depth").values[:, None]
    mean, std = np.linspace(20.0, 4.0, 5), np.linspace(3.0, 0.5, 5)
    torch.manual_seed(0)
    ae = DepthBandAutoencoder(5, 3, (), (8,), linear_path=True, depth=LEVELS, mean=mean, std=std)
    assert ae.to_latent is None and not list(ae.encoder.parameters())
    pca = PCACompressor.fit(cube, 3, mean=mean, std=std)
    ae.init_linear_path(pca)
    with torch.no_grad():
        ae.to_output.bias.fill_(1.0)  # a correction that the closed gate must hide
        ae.correction_gate[:] = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0])
    x = torch.from_numpy(thetao.values)
    latent = ae.encode(x).detach().numpy()
    expected = pca.encode(cube).latent.values
    np.testing.assert_allclose(np.where(complete, latent, np.nan), np.where(complete, expected, np.nan), atol=1e-4)
    rebuilt = ae.decode(ae.encode(x)).detach().numpy()
    truncated = pca.decode(pca.encode(cube)).thetao.values
    shown = (rebuilt - truncated).transpose(1, 0, 2, 3)[:, complete[:, 0]]  # (level, complete column)
    np.testing.assert_allclose(shown[:4], 0.0, atol=1e-4)
    np.testing.assert_allclose(shown[4], std[4], rtol=1e-4)


def test_a_gate_closed_at_every_level_decodes_through_the_linear_path_alone(monkeypatch):
    """The nonlinear decoder is skipped when its correction is weighed 0 everywhere; the result is unchanged."""
    cube, _, ae = _eof_pair()
    z = ae.encode(torch.from_numpy(cube.thetao.values))
    with torch.no_grad():
        ae.to_output.bias.fill_(1.0)  # a correction the closed gate hides
        ae.correction_gate.zero_()
        computed = ae.to_output(ae.decoder(z)) * 0.0 + ae.decode_linear(z)
        expected = ae.denormalize(computed)
        monkeypatch.setattr(ae.decoder, "forward", lambda h: pytest.fail("the closed correction was computed"))
        torch.testing.assert_close(ae.decode(z), expected, rtol=1e-6, atol=1e-5)


def test_the_channels_last_layout_on_a_cpu_gives_the_default_layouts_round_trip(monkeypatch):
    precision = importlib.import_module("xdepthrecon._precision")
    ae = _model(latent_channels=3, linear_path=True)
    assert ae.to_latent is not None and len(ae.decoder) > 0
    x = _field(2, size=12)
    with torch.no_grad():
        ae.correction_gate.fill_(0.5)
        fast_latent = ae.encode(x)
        fast = ae.decode(fast_latent)
        monkeypatch.setattr(precision, "CPU_MEMORY_FORMAT", torch.contiguous_format)
        plain_latent = ae.encode(x)
        plain = ae.decode(plain_latent)
    assert fast.is_contiguous() and fast_latent.is_contiguous()
    torch.testing.assert_close(fast_latent, plain_latent, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-4)
