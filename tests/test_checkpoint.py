"""Tests of xdepthrecon.checkpoint: round trips, atomic writes, corrupt files and training state."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch

import xdepthrecon
from xdepthrecon import checkpoint
from xdepthrecon.models import DepthBandAutoencoder

LEVELS = np.array([0.494025, 10.0, 50.0, 200.0, 1000.0])


def _model(seed: int = 0, **kwargs) -> DepthBandAutoencoder:
    torch.manual_seed(seed)
    options = dict(latent_channels=3, encoder_channels=(8, 8, 8), decoder_channels=(8, 8, 8), depth=LEVELS,
                   mean=np.linspace(20.0, 4.0, 5), std=np.linspace(3.0, 0.5, 5))
    options.update(kwargs)
    return DepthBandAutoencoder(5, **options)


def _field() -> torch.Tensor:
    return 15.0 + 5.0 * torch.randn(2, 5, 16, 16, generator=torch.Generator().manual_seed(1))


def _header(path) -> dict:
    with safetensors.safe_open(path, framework="pt") as file:
        return json.loads(file.metadata()["xdepthrecon"])


def test_round_trip_is_bit_identical(tmp_path):
    ae = _model(spatial_downsample=2)
    path = ae.save(tmp_path / "ae.safetensors")
    loaded = checkpoint.load(path)
    assert type(loaded) is DepthBandAutoencoder and not loaded.training
    assert loaded.config == ae.config
    assert loaded.identity == ae.identity
    np.testing.assert_array_equal(loaded.depth, LEVELS)
    x = _field()
    assert torch.equal(loaded(x), ae(x))
    header = _header(path)
    assert header["model_class"] == "DepthBandAutoencoder"
    assert header["library_version"] == xdepthrecon.__version__
    assert header["arrays"]["depth"] == LEVELS.tolist()
    assert len(header["sha256"]) == 64


def test_save_replaces_an_existing_checkpoint(tmp_path):
    path = tmp_path / "ae.safetensors"
    _model(seed=0).save(path)
    _model(seed=1).save(path)
    assert checkpoint.load(path).identity == _model(seed=1).identity
    assert os.listdir(tmp_path) == ["ae.safetensors"]


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ae.safetensors"
    old = _model(seed=0)
    old.save(path)

    def crash(descriptor):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        _model(seed=1).save(path)
    monkeypatch.undo()
    assert checkpoint.load(path).identity == old.identity
    assert os.listdir(tmp_path) == ["ae.safetensors"]


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*nothing.safetensors"):
        checkpoint.load(tmp_path / "nothing.safetensors")
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        _model().save(tmp_path / "missing" / "ae.safetensors")


def test_truncated_file_is_reported(tmp_path):
    path = _model().save(tmp_path / "ae.safetensors")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="ae.safetensors is truncated or corrupt"):
        checkpoint.load(path)


def test_changed_weight_bytes_fail_the_hash(tmp_path):
    path = _model().save(tmp_path / "ae.safetensors")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match the sha256"):
        checkpoint.load(path)


def test_changed_depth_levels_fail_the_hash(tmp_path):
    path = _model().save(tmp_path / "ae.safetensors")
    with safetensors.safe_open(path, framework="pt") as file:
        tensors = {key: file.get_tensor(key) for key in file.keys()}
        header = json.loads(file.metadata()["xdepthrecon"])
    header["arrays"]["depth"][0] = 0.5
    safetensors.torch.save_file(tensors, path, metadata={"xdepthrecon": json.dumps(header)})
    with pytest.raises(ValueError, match="does not match the sha256"):
        checkpoint.load(path)


def test_unknown_model_class_is_reported(tmp_path, monkeypatch):
    path = _model().save(tmp_path / "ae.safetensors")
    monkeypatch.setattr(checkpoint, "_MODEL_CLASSES", {"PixelUNet": "xdepthrecon.models.unet"})
    with pytest.raises(ValueError, match="class 'DepthBandAutoencoder', which xdepthrecon .* does not know"):
        checkpoint.load(path)


def test_foreign_files_are_refused(tmp_path):
    plain = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, plain)
    with pytest.raises(ValueError, match="not an xdepthrecon checkpoint"):
        checkpoint.load(plain)
    pickled = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pickled)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        checkpoint.load(pickled)
    with pytest.raises(ValueError, match="cannot be saved"):
        checkpoint.save(torch.nn.Linear(2, 2), tmp_path / "linear.safetensors")


def test_training_state_round_trip(tmp_path):
    ae = _model()
    optimizer = torch.optim.AdamW(ae.parameters(), lr=1e-3)
    ae(_field()).square().mean().backward()
    optimizer.step()
    state = {
        "optimizer": optimizer.state_dict(),
        "epoch": 3,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        "history": {"loss": [0.5, 0.25, float("nan")], "lr": (1e-3, 5e-4)},
        "__tensor__": "a key that looks like a tag",
    }
    path = ae.save(tmp_path / "ae.safetensors", training_state=state)
    restored = checkpoint.load_training_state(path)
    assert restored["epoch"] == 3 and restored["__tensor__"] == state["__tensor__"]
    assert restored["history"]["lr"] == (1e-3, 5e-4) and np.isnan(restored["history"]["loss"][2])
    assert torch.equal(restored["rng"]["torch"], state["rng"]["torch"])
    assert restored["rng"]["python"] == state["rng"]["python"]
    random.setstate(restored["rng"]["python"])
    numpy_state = restored["rng"]["numpy"]
    assert numpy_state[0] == "MT19937" and np.array_equal(numpy_state[1], state["rng"]["numpy"][1])
    np.random.set_state(numpy_state)

    resumed = checkpoint.load(path).train()
    resumed_optimizer = torch.optim.AdamW(resumed.parameters(), lr=1e-3)
    resumed_optimizer.load_state_dict(restored["optimizer"])
    for before, after in zip(optimizer.state.values(), resumed_optimizer.state.values()):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(before[key], after[key])
    assert resumed_optimizer.param_groups[0]["betas"] == optimizer.param_groups[0]["betas"]


def test_training_state_is_optional_and_never_pickled(tmp_path):
    path = _model().save(tmp_path / "ae.safetensors")
    with pytest.raises(ValueError, match="holds no training state"):
        checkpoint.load_training_state(path)
    with pytest.raises(TypeError, match=r"training_state\['sampler'\] is a object, which a checkpoint cannot store"):
        _model().save(path, training_state={"sampler": object()})
    assert checkpoint.load(path).identity == _model().identity


def _diffusion_model() -> xdepthrecon.LatentDiffusion:
    from xdepthrecon.analysis.background import SeasonalBackground
    from xdepthrecon.analysis.departures import DepartureAnalysis
    from xdepthrecon.diffusion import NoiseSchedule
    from xdepthrecon.models.unet import ConditionalUNet
    from xdepthrecon.stats.covariance import Covariance

    ae = _model()
    departures = DepartureAnalysis.from_covariances([Covariance("matern32", 300.0, 1.0, 0.1)] * 5)
    analysis = xdepthrecon.Analysis(SeasonalBackground(1, 5, 4, 6), departures)
    statistics = {"latent_mean": np.zeros(3), "latent_std": np.ones(3), "residual_std": np.full(3, 0.5),
                  "surface_departure_std": [0.2]}
    denoiser = ConditionalUNet(3, xdepthrecon.LatentDiffusion.condition_channels(3), dim=8, mults=(1,))
    return xdepthrecon.LatentDiffusion(ae, denoiser, NoiseSchedule("cosine", 50), analysis, statistics)


def test_a_diffusion_model_and_its_analysis_round_trip(tmp_path):
    model = _diffusion_model()
    loaded = xdepthrecon.load(model.save(tmp_path / "m.safetensors"))
    assert checkpoint.digest(loaded.state_dict()) == checkpoint.digest(model.state_dict())
    analysis = xdepthrecon.load(model.analysis.save(tmp_path / "a.safetensors"))
    assert isinstance(analysis, xdepthrecon.Analysis) and analysis.config == model.analysis.config


def _saved_without(model, name: str, path, monkeypatch):
    """``model`` saved to ``path`` as a version without the array ``name`` would have saved it."""
    arrays = type(model).arrays
    monkeypatch.setattr(type(model), "arrays", property(lambda self: {k: v for k, v in arrays.fget(self).items()
                                                                      if k != name}))
    model.save(path)
    monkeypatch.undo()
    return path


def test_a_diffusion_model_conditioned_on_absolute_fields_is_refused_with_the_fix(tmp_path, monkeypatch):
    path = _saved_without(_diffusion_model(), "residual_std", tmp_path / "older.safetensors", monkeypatch)
    with pytest.raises(ValueError, match=r"conditioned on the absolute SST and observations.*Retrain it with "
                                         r"xdepthrecon.train_diffusion"):
        xdepthrecon.load(path)


def test_a_diffusion_model_saved_with_one_gate_per_level_loads_it_for_every_density_class(tmp_path, monkeypatch):
    model = _diffusion_model()
    gate = torch.linspace(0.0, 1.0, 5)
    arrays = type(model).arrays
    monkeypatch.setattr(type(model), "arrays", property(lambda self: {**arrays.fget(self),
                                                                      "correction_gate": gate.numpy()}))
    path = model.save(tmp_path / "per_level.safetensors")
    monkeypatch.undo()
    torch.testing.assert_close(xdepthrecon.load(path).correction_gate,
                               gate.expand(model.analysis.departures.classes, 5))


def test_a_diffusion_model_saved_by_0_1_is_refused_with_the_fix_and_left_intact(tmp_path):
    path = _diffusion_model().save(tmp_path / "old.safetensors")
    header = _header(path)
    with safetensors.safe_open(path, framework="pt") as file:
        tensors = {key: file.get_tensor(key) for key in file.keys()}
    config = {key: value for key, value in header["config"].items() if key != "analysis"}
    header.update(library_version="0.1.0", config={**config, "surface_names": ["sst"], "first_guess": [4.0, 1.5]})
    header["sha256"] = checkpoint._checksum(header, tensors)
    safetensors.torch.save_file(tensors, path, metadata={"xdepthrecon": json.dumps(header)})
    before = path.read_bytes()
    with pytest.raises(ValueError, match="saved by xdepthrecon 0.1.0.*Retrain it with xdepthrecon.train_diffusion"):
        xdepthrecon.load(path)
    assert path.read_bytes() == before
