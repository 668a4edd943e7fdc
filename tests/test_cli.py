"""The command line: complete --help, clear errors, and train -> reconstruct -> evaluate on files."""

from __future__ import annotations

import pytest

import xdepthrecon
from xdepthrecon.cli import main

from tests.conftest import glorys_like


@pytest.mark.parametrize("command", ["demo", "train-ae", "train-diffusion", "reconstruct", "evaluate"])
def test_every_command_has_a_complete_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: xdepthrecon " + command in text and "--out" in text


def test_missing_files_and_bad_suffixes_are_one_line_errors(tmp_path, capsys):
    assert main(["train-ae", str(tmp_path / "nope.nc"), "--out", str(tmp_path / "ae.safetensors")]) == 2
    assert "nope.nc: no such file or store" in capsys.readouterr().err
    cube = tmp_path / "cube.nc"
    glorys_like().to_netcdf(cube)
    assert main(["reconstruct", str(cube), str(cube), str(cube), "--model", str(tmp_path / "m.safetensors"),
                 "--out", str(tmp_path / "out.nc")]) == 2
    assert "no such model file" in capsys.readouterr().err


def test_train_reconstruct_evaluate_from_files(tmp_path, capsys):
    truth = glorys_like(times=2, depths=5, lats=24, lons=32, seed=4)
    truth.to_netcdf(tmp_path / "truth.nc")
    sst = truth.thetao.isel(depth=0).rename("sst") + 273.15
    sst.attrs = {"units": "K", "standard_name": "sea_surface_temperature"}
    sst.to_dataset().to_netcdf(tmp_path / "sst.nc")
    profiles = truth.depthrecon.sample_profiles(per_tile=400, seed=1)
    profiles.to_netcdf(tmp_path / "profiles.nc")
    ae, model = tmp_path / "ae.safetensors", tmp_path / "model.safetensors"
    small = ["--epochs", "1", "--patch-size", "16", "--batch-size", "4"]
    assert main(["train-ae", str(tmp_path / "truth.nc"), "--out", str(ae), "--latent-channels", "3",
                 "--encoder-channels", "8", "8", "--no-linear-path", *small]) == 0
    assert xdepthrecon.load(ae).config["encoder_channels"] == [8, 8]
    assert main(["train-diffusion", str(tmp_path / "truth.nc"), str(tmp_path / "sst.nc"), "--autoencoder", str(ae),
                 "--out", str(model), "--dim", "8", "--slope-scale-km", "500", "--density", "0.05", "0.2",
                 *small]) == 0
    trained = xdepthrecon.load(model)
    assert trained.denoiser.config["dim"] == 8 and trained.analysis.settings.slope_scale_km == 500.0
    assert trained.error_model is not None and trained.analysis.error_model is not None
    out = tmp_path / "rec.nc"
    assert main(["reconstruct", str(tmp_path / "truth.nc"), str(tmp_path / "profiles.nc"), str(tmp_path / "sst.nc"),
                 "--model", str(model), "--out", str(out), "--members", "2", "--steps", "3", "--tile", "16",
                 "--overlap", "4"]) == 0
    assert main(["evaluate", str(out), str(tmp_path / "truth.nc"), "--out", str(tmp_path / "scores.csv")]) == 0
    table = (tmp_path / "scores.csv").read_text()
    assert table.startswith("depth") and "rmse" in table and "crps" in table


def test_every_setting_of_the_library_is_an_option(capsys):
    from dataclasses import fields

    from xdepthrecon import AnalysisConfig, AutoencoderConfig, DiffusionConfig, ObservationConfig, TrainingConfig

    for command, settings in (("train-ae", (AutoencoderConfig, TrainingConfig)),
                              ("train-diffusion", (DiffusionConfig, TrainingConfig, ObservationConfig,
                                                   AnalysisConfig))):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        for kind in settings:
            for field in fields(kind):
                assert "--" + field.name.replace("_", "-") in text, (command, field.name)
