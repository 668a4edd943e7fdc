"""Tests of xdepthrecon.training.correction_gate: the worst case over held-out groups sets each level's gate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from xdepthrecon.models.autoencoder import DepthBandAutoencoder
from xdepthrecon.training.splits import Window
from xdepthrecon.training.correction_gate import fit_correction_gate


def _model_with_constant_correction(shift: list[float]) -> DepthBandAutoencoder:
    """Levels 0 and 1 are the latent, exactly; the correction adds ``shift`` per level everywhere."""
    model = DepthBandAutoencoder(4, 2, (), (4,), linear_path=True, depth=[0.0, 10.0, 20.0, 30.0])
    basis = torch.zeros(4, 2)
    basis[0, 0] = basis[1, 1] = 1.0
    with torch.no_grad():
        model.encode_linear.weight.copy_(basis.T[:, :, None, None])
        model.decode_linear.weight.copy_(basis[:, :, None, None])
        for layer in (model.encode_linear, model.decode_linear):
            layer.bias.zero_()
        model.to_output.weight.zero_()
        model.to_output.bias.copy_(torch.tensor(shift))
    return model.eval()


def _field(right_sign: float, seed: int = 0) -> xr.DataArray:
    """Levels 2 and 3 hold what the latent misses: +1 and +0.5 on the left half, ``right_sign`` times that on
    the right half, plus noise."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 1.0, (2, 4, 16, 16))
    sign = np.where(np.arange(16) < 8, 1.0, right_sign)
    values[:, 2] = sign + rng.normal(0.0, 0.1, (2, 16, 16))
    values[:, 3] = 0.5 * sign + rng.normal(0.0, 0.1, (2, 16, 16))
    return xr.DataArray(values.astype("float32"), dims=("time", "depth", "latitude", "longitude"))


WINDOWS = [Window(t, (0, 16), (0, 16)) for t in range(2)]


def test_a_correction_that_helps_everywhere_stays_open():
    gate = fit_correction_gate(_model_with_constant_correction([0.0, 0.0, 1.0, 0.5]), _field(1.0), WINDOWS, 8)
    np.testing.assert_allclose(gate[2:], 1.0)


def test_a_correction_that_hurts_in_one_region_closes():
    gate = fit_correction_gate(_model_with_constant_correction([0.0, 0.0, 1.0, 0.5]), _field(-1.0), WINDOWS, 8)
    np.testing.assert_allclose(gate[2:], 0.0)


def test_an_overshooting_correction_is_scaled_back():
    gate = fit_correction_gate(_model_with_constant_correction([0.0, 0.0, 2.0, 0.5]), _field(1.0), WINDOWS, 8)
    assert gate[2] == pytest.approx(0.5, abs=0.05) and gate[3] == pytest.approx(1.0)


def test_levels_without_anything_to_judge_are_closed():
    gate = fit_correction_gate(_model_with_constant_correction([0.0, 0.0, 1.0, 0.5]), _field(1.0), WINDOWS, 8)
    np.testing.assert_allclose(gate[:2], 0.0)  # the latent holds levels 0 and 1 exactly: nothing to correct
    assert not fit_correction_gate(_model_with_constant_correction([0.0, 0.0, 1.0, 0.5]), _field(1.0), [], 8).any()


def test_trained_model_carries_its_gate_and_a_closed_gate_is_the_eof_truncation(tmp_path):
    import xdepthrecon
    from tests.conftest import glorys_like
    from xdepthrecon.stats.pca import PCACompressor

    cube = glorys_like(times=3, depths=6, lats=32, lons=64, seed=4)
    config = xdepthrecon.AutoencoderConfig(latent_channels=2, decoder_channels=(8,))
    training = xdepthrecon.TrainingConfig(epochs=2, patch_size=16, val_fraction=0.25, ema=None)
    ae = xdepthrecon.train_autoencoder(cube, config=config, training=training, progress=False,
                                       checkpoint=tmp_path / "ae.safetensors")
    gate = ae.correction_gate.numpy()
    assert gate.shape == (6,) and ((gate >= 0) & (gate <= 1)).all()
    torch.testing.assert_close(xdepthrecon.load(tmp_path / "ae.safetensors").correction_gate, ae.correction_gate)
    with torch.no_grad():
        ae.correction_gate.zero_()
    pca = PCACompressor.fit(cube, 2, mean=ae.mean.numpy(), std=ae.std.numpy())
    complete = cube.thetao.notnull().all("depth")
    ceiling = xdepthrecon.compression_ceiling(cube, ae, eofs=pca, mask=complete)
    np.testing.assert_allclose(ceiling.ratio.values, 1.0, atol=1e-4)
