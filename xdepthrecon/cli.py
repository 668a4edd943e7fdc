"""Command line: ``xdepthrecon <command>`` or ``python -m xdepthrecon <command>``.

Commands read netCDF files or zarr stores (GLORYS-like cubes, EN4/Argo profile files or tables, OSTIA-like
SST) and write netCDF (``.nc``) or zarr (``.zarr``); models are single ``.safetensors`` files.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import xarray as xr

from xdepthrecon.analysis.classical import AnalysisConfig
from xdepthrecon.diffusion.samplers import SamplingOptions
from xdepthrecon.training.config import (AUTOENCODER_TRAINING, DIFFUSION_TRAINING, AutoencoderConfig,
                                         DiffusionConfig, ObservationConfig)

_EPILOG = "Run 'xdepthrecon COMMAND --help' for the options of one command."


class CommandError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


def open_data(path: str) -> xr.Dataset:
    """Open a netCDF file or zarr store, decoding times where the calendar allows it."""
    location = Path(path)
    if not location.exists():
        raise CommandError(f"{path}: no such file or store; check the path.")
    if location.is_dir() or location.suffix == ".zarr":
        return xr.open_zarr(location)
    try:
        return xr.open_dataset(location)
    except ValueError as error:
        if "decode" not in str(error):
            raise CommandError(f"{path}: cannot be read as netCDF ({error}).") from None
        return xr.open_dataset(location, decode_times=False)
    except OSError as error:
        raise CommandError(f"{path}: cannot be read as netCDF ({error}).") from None


def _write(ds: xr.Dataset, path: str) -> None:
    if path.endswith(".zarr"):
        ds.to_zarr(path, mode="w")
    elif path.endswith((".nc", ".nc4")):
        ds.to_netcdf(path)
    else:
        raise CommandError(f"{path}: give the output a .nc (netCDF) or .zarr suffix.")
    print(f"wrote {path}")


def _load_model(path: str, kind: str):
    from xdepthrecon import Analysis, DepthBandAutoencoder, LatentDiffusion, load

    if not Path(path).is_file():
        raise CommandError(f"{path}: no such model file; train one first (xdepthrecon train-ae / train-diffusion).")
    model = load(path)
    wanted = (DepthBandAutoencoder,) if kind == "autoencoder" else (LatentDiffusion, Analysis)
    if not isinstance(model, wanted):
        raise CommandError(f"{path} holds a {type(model).__name__}, not a {' or '.join(w.__name__ for w in wanted)}.")
    return model


def _cube_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variable", help="name of the temperature variable, when metadata cannot find it")
    parser.add_argument("--units", choices=["degC", "K"], help="temperature units, when the file has none")


def config_arguments(parser: argparse.ArgumentParser, defaults: Any) -> None:
    """One option per field of the settings dataclass instance ``defaults`` (``--field-name``), with its
    value as the default: the command line offers exactly what the library's settings hold."""
    group = parser.add_argument_group(f"{type(defaults).__name__} (see its documentation)")
    hints = typing.get_type_hints(type(defaults))
    for field in fields(defaults):
        default, kind = getattr(defaults, field.name), _plain_type(hints[field.name])
        flag = "--" + field.name.replace("_", "-")
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                               help="(default: %(default)s)")
        elif kind is tuple:
            item = typing.get_args(hints[field.name])[0]
            group.add_argument(flag, type=item, nargs="+", default=default, help="(default: %(default)s)")
        else:
            group.add_argument(flag, type=kind, default=default, help="(default: %(default)s)")


def config_from_arguments(defaults: Any, args: argparse.Namespace) -> Any:
    """The settings ``defaults`` with the values given on the command line."""
    return replace(defaults, **{f.name: tuple(v) if isinstance(v := getattr(args, f.name), list) else v
                                for f in fields(defaults)})


def _plain_type(hint: Any) -> type:
    """``X`` of a hint ``X``, ``X | None`` or ``tuple[X, ...]`` (the kinds of field the settings use)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    origin = typing.get_origin(hint)
    return origin if origin is not None else hint


def _training_arguments(parser: argparse.ArgumentParser, training: Any) -> None:
    parser.add_argument("--out", required=True, help="model file to write (.safetensors); saved after every epoch")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    config_arguments(parser, training)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xdepthrecon", epilog=_EPILOG,
        description="Reconstruct 3-D ocean temperature from sparse profiles and satellite SST with latent diffusion.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="run the whole story on the bundled real data and write a report",
        description="On the bundled monthly atlas (truth) and COADS SST: sample profiles, hold out regions and "
        "months, train a small autoencoder and diffusion model, reconstruct the held-out months with an ensemble, "
        "score it beside the baselines and write figures, score tables and a summary into the report folder.")
    demo.add_argument("--out", default="report", help="report folder to write (default: %(default)s)")
    demo.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    demo.add_argument("--quick", action="store_true", help="tiny models: checks the pipeline in a minute")

    train_ae = commands.add_parser(
        "train-ae", help="train the depth-band autoencoder on a temperature cube",
        description="Train a depth-band autoencoder on CUBE (netCDF or zarr, e.g. GLORYS thetao). Interrupted "
        "training resumes when the same command is run again with the same --out. On several GPUs or "
        "processes: torchrun --nproc_per_node N -m xdepthrecon train-ae ... (rank 0 writes --out).")
    train_ae.add_argument("cube", help="temperature cube (netCDF file or zarr store)")
    _cube_arguments(train_ae)
    _training_arguments(train_ae, AUTOENCODER_TRAINING)
    config_arguments(train_ae, AutoencoderConfig())

    train_dm = commands.add_parser(
        "train-diffusion", help="train the conditional latent diffusion model",
        description="Train the latent diffusion model on CUBE with SST as condition. Without --profiles, "
        "observations are simulated from CUBE at random densities (observing-system simulation). Resumes "
        "from --out; runs data-parallel under torchrun --nproc_per_node N -m xdepthrecon train-diffusion ...")
    train_dm.add_argument("cube", help="truth temperature cube (netCDF file or zarr store)")
    train_dm.add_argument("sst", help="sea surface temperature (e.g. OSTIA; Kelvin or degC, any grid)")
    train_dm.add_argument("--autoencoder", required=True, help="trained autoencoder (.safetensors)")
    train_dm.add_argument("--profiles", help="real profiles (EN4/Argo netCDF, CSV or parquet table)")
    _cube_arguments(train_dm)
    _training_arguments(train_dm, DIFFUSION_TRAINING)
    for defaults in (DiffusionConfig(), ObservationConfig(), AnalysisConfig()):
        config_arguments(train_dm, defaults)

    rec = commands.add_parser(
        "reconstruct", help="reconstruct temperature from profiles and SST",
        description="Reconstruct the full-depth temperature on GRID (a cube, or any file with time, latitude "
        "and longitude) from PROFILES and SST, with an ensemble mean and spread.")
    rec.add_argument("grid", help="target grid: a cube or a file with time, latitude and longitude coordinates")
    rec.add_argument("profiles", help="observed profiles (EN4/Argo netCDF, CSV or parquet table)")
    rec.add_argument("sst", help="sea surface temperature (Kelvin or degC, any grid)")
    rec.add_argument("--model", required=True, help="trained latent diffusion model (.safetensors)")
    rec.add_argument("--out", required=True, help="output (.nc or .zarr)")
    rec.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    rec.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    rec.add_argument("--window", default="7D", help="time window for gridding the profiles (default: %(default)s)")
    config_arguments(rec, SamplingOptions())

    ev = commands.add_parser(
        "evaluate", help="score a reconstruction against a truth cube, per depth",
        description="Score PREDICTION against TRUTH per depth (RMSE, MAE, bias, correlation, and CRPS and "
        "spread/skill for ensembles) and write the table as CSV, or print it.")
    ev.add_argument("prediction", help="reconstruction (.nc or .zarr) with thetao (and thetao_std)")
    ev.add_argument("truth", help="truth cube (netCDF or zarr)")
    ev.add_argument("--out", help="CSV file to write (default: print the table)")
    return parser


def _run(args: argparse.Namespace) -> None:
    import xdepthrecon

    if args.command == "demo":
        from xdepthrecon.demo import run_demo

        print(f"report written to {run_demo(args.out, device=args.device, quick=args.quick).resolve()}")
        return
    if args.command == "evaluate":
        prediction = open_data(args.prediction)
        truth = xdepthrecon.standardize(open_data(args.truth))
        table = xdepthrecon.evaluate(prediction, truth).to_dataframe()
        if args.out:
            table.to_csv(args.out)
            print(f"wrote {args.out}")
        else:
            print(table.to_string())
        return
    cube_options = {"temperature": getattr(args, "variable", None), "units": getattr(args, "units", None)}
    if args.command == "train-ae":
        cube = xdepthrecon.standardize(open_data(args.cube), **cube_options)
        model = xdepthrecon.train_autoencoder(cube, config=config_from_arguments(AutoencoderConfig(), args),
                                              training=config_from_arguments(AUTOENCODER_TRAINING, args),
                                              device=args.device, checkpoint=args.out)
    elif args.command == "train-diffusion":
        cube = xdepthrecon.standardize(open_data(args.cube), **cube_options)
        profiles = xdepthrecon.read_profiles(open_data(args.profiles)) if args.profiles else None
        model = xdepthrecon.train_diffusion(cube, open_data(args.sst), _load_model(args.autoencoder, "autoencoder"),
                                            config=config_from_arguments(DiffusionConfig(), args),
                                            analysis=config_from_arguments(AnalysisConfig(), args), profiles=profiles,
                                            observations=config_from_arguments(ObservationConfig(), args),
                                            training=config_from_arguments(DIFFUSION_TRAINING, args),
                                            device=args.device, checkpoint=args.out)
    else:
        model = _load_model(args.model, "reconstruction")
        result = xdepthrecon.reconstruct(open_data(args.grid), xdepthrecon.read_profiles(open_data(args.profiles)),
                                         open_data(args.sst), model,
                                         options=config_from_arguments(SamplingOptions(), args),
                                         seed=args.seed, device=args.device, window=args.window)
        _write(result, args.out)
        return
    # the checkpoint at --out already holds the trained model (and its training state, for resuming)
    print(f"wrote {args.out} ({len(model.history)} epochs)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xdepthrecon`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except (CommandError, ValueError, FileNotFoundError) as error:
        print(f"xdepthrecon {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0
