"""fit keeps the weights of the epoch with the lowest validation loss (``keep_best``), with and without a weight
average, and a resumed run keeps the same ones."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from xdepthrecon import TrainingConfig
from xdepthrecon.checkpoint import load_training_state
from xdepthrecon.training.config import DIFFUSION_TRAINING, resumable_record
from xdepthrecon.training.loop import fit, patches, split_for

#: A learning rate high enough that the validation loss goes up and down over a few epochs.
NOISY = TrainingConfig(epochs=5, batch_size=2, lr=0.3, weight_decay=0.0, patch_size=8, val_fraction=0.25, ema=None,
                       augment=False, seed=2)


class Scaler(nn.Module):
    """A per-channel affine map inside a submodule (``inner``), which fit may average and keep."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Conv2d(2, 2, 1)


def _fields() -> dict[str, xr.DataArray]:
    values = np.random.default_rng(0).normal(size=(12, 2, 8, 8)).astype("float32")
    return {"y": xr.DataArray(values, dims=("time", "channel", "latitude", "longitude"))}


def _fit(model: Scaler, training: TrainingConfig, average: str | None, state: dict | None = None) -> dict:
    fields = _fields()
    train_windows, val_windows = split_for(fields, training)
    datasets = patches(fields, training, train_windows), patches(fields, training, val_windows, seed=9)

    def loss(batch, _):
        return (model.inner(batch["y"]) - 0.5 * batch["y"] - 1.0).square().mean()

    return fit(model, loss, datasets, training, device=torch.device("cpu"), average=average, state=state,
               progress=False)


def _train(training: TrainingConfig, average: str | None) -> tuple[Scaler, dict]:
    torch.manual_seed(0)
    model = Scaler()
    return model, _fit(model, training, average)


def _weights(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


@pytest.mark.parametrize("ema", [None, 0.5])
def test_the_kept_weights_are_those_of_the_epoch_with_the_lowest_validation_loss(ema):
    training = replace(NOISY, ema=ema, keep_best=True)
    kept, saved = _train(training, "inner")
    losses = [r["val_loss"] for r in kept.history]
    best = int(np.argmin(losses))
    assert saved["best_epoch"] == best
    assert 0 < best < training.epochs - 1, f"the test wants a minimum inside the run, got losses {losses}"
    stopped, _ = _train(replace(training, epochs=best + 1, keep_best=False), "inner")
    last, _ = _train(replace(training, keep_best=False), "inner")
    for a, b, c in zip(_weights(kept), _weights(stopped), _weights(last)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert not torch.equal(a, c)


def test_without_a_named_submodule_the_whole_model_is_kept():
    kept, saved = _train(replace(NOISY, keep_best=True), None)
    stopped, _ = _train(replace(NOISY, epochs=saved["best_epoch"] + 1), None)
    for a, b in zip(_weights(kept), _weights(stopped)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_without_validation_the_last_weights_are_kept():
    training = replace(NOISY, keep_best=True, val_fraction=0.0)
    torch.manual_seed(0)
    model = Scaler()
    fields = _fields()
    dataset = patches(fields, training, split_for(fields, training)[0])
    saved = fit(model, lambda batch, _: model.inner(batch["y"]).square().mean(), (dataset, None), training,
                device=torch.device("cpu"), progress=False)
    assert saved["best_epoch"] is None and "live" not in saved


def test_a_resumed_run_with_an_average_keeps_the_best_weights_of_the_whole_run():
    training = replace(NOISY, ema=0.5, keep_best=True)
    straight, straight_state = _train(training, "inner")
    model, part = _train(replace(training, epochs=3), "inner")  # the model holds what its checkpoint would
    assert part["best_epoch"] is not None and "average" in part and "live" in part
    resumed_state = _fit(model, training, "inner", state=part)
    assert resumed_state["best_epoch"] == straight_state["best_epoch"]
    assert [r["val_loss"] for r in model.history] == [r["val_loss"] for r in straight.history]
    for a, b in zip(_weights(model), _weights(straight)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_diffusion_recipe_keeps_the_best_and_resuming_ignores_it():
    assert DIFFUSION_TRAINING.keep_best and not TrainingConfig().keep_best
    assert resumable_record(DIFFUSION_TRAINING) == resumable_record(replace(DIFFUSION_TRAINING, keep_best=False))


def test_a_checkpoint_holds_the_best_weights_and_the_state_to_go_on(tmp_path):
    from xdepthrecon import AutoencoderConfig, load, train_autoencoder
    from tests.conftest import glorys_like

    cube = glorys_like(times=4, depths=6, lats=32, lons=32, seed=11)
    config = AutoencoderConfig(latent_channels=3, encoder_channels=(8,), decoder_channels=(8,), linear_path=False,
                               gate=False)
    training = TrainingConfig(patch_size=16, batch_size=4, lr=0.05, weight_decay=0.0, ema=None, val_fraction=0.25,
                              keep_best=True, seed=1)
    path = tmp_path / "ae.safetensors"
    straight = train_autoencoder(cube, config=config, training=training, epochs=4, progress=False)
    train_autoencoder(cube, config=config, training=training, epochs=2, checkpoint=path, progress=False)
    state = load_training_state(path)
    saved = load(path)
    at_two = train_autoencoder(cube, config=config, training=training, epochs=2, progress=False)
    assert saved.identity == at_two.identity  # the checkpoint's model is the one returned
    assert "live" in state and state["best_epoch"] in (0, 1)
    resumed = train_autoencoder(cube, config=config, training=training, epochs=4, checkpoint=path, progress=False)
    assert resumed.identity == straight.identity
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in straight.history]
