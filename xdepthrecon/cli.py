"""Command line: ``xdepthrecon <command>`` or ``python -m xdepthrecon <command>``.

Commands read netCDF files or zarr stores (GLORYS-like cubes, EN4/Argo profile files or tables, OSTIA-like
SST) and write netCDF (``.nc``) or zarr (``.zarr``); models are single ``.safetensors`` files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import xarray as xr

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
    from xdepthrecon import DepthBandAutoencoder, LatentDiffusion, load

    if not Path(path).is_file():
        raise CommandError(f"{path}: no such model file; train one first (xdepthrecon train-ae / train-diffusion).")
    model = load(path)
    wanted = DepthBandAutoencoder if kind == "autoencoder" else LatentDiffusion
    if not isinstance(model, wanted):
        raise CommandError(f"{path} holds a {type(model).__name__}, not a {wanted.__name__}.")
    return model


def _cube_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variable", help="name of the temperature variable, when metadata cannot find it")
    parser.add_argument("--units", choices=["degC", "K"], help="temperature units, when the file has none")


def _training_arguments(parser: argparse.ArgumentParser, epochs: int, batch_size: int, lr: float) -> None:
    parser.add_argument("--out", required=True, help="model file to write (.safetensors); saved after every epoch")
    parser.add_argument("--epochs", type=int, default=epochs, help="number of epochs (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=batch_size, help="patches per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=lr, help="learning rate (default: %(default)s)")
    parser.add_argument("--patch-size", type=int, default=64, help="patch size in grid cells (default: %(default)s)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")


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
    _training_arguments(train_ae, epochs=10, batch_size=16, lr=1e-4)
    train_ae.add_argument("--latent", type=int, default=12, help="latent channels (default: %(default)s)")
    train_ae.add_argument("--linear-path", action="store_true",
                          help="start from the EOFs of the cube and learn the nonlinear correction (beats PCA at the "
                          "same latent size; use with --lr 1e-3)")

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
    _training_arguments(train_dm, epochs=10, batch_size=8, lr=5e-5)
    train_dm.add_argument("--dim", type=int, default=32, help="denoiser base width (default: %(default)s)")
    train_dm.add_argument("--first-guess", type=float, nargs="*", default=[], metavar="CELLS",
                          help="length scales (grid cells) of a first guess spread from the observed columns, "
                          "e.g. --first-guess 2 6 (default: none)")
    train_dm.add_argument("--background", action="store_true",
                          help="fit a seasonal background of the latent with an SST regression to CUBE and "
                          "reconstruct as departures from it (saved with the model)")

    rec = commands.add_parser(
        "reconstruct", help="reconstruct temperature from profiles and SST",
        description="Reconstruct the full-depth temperature on GRID (a cube, or any file with time, latitude "
        "and longitude) from PROFILES and SST, with an ensemble mean and spread.")
    rec.add_argument("grid", help="target grid: a cube or a file with time, latitude and longitude coordinates")
    rec.add_argument("profiles", help="observed profiles (EN4/Argo netCDF, CSV or parquet table)")
    rec.add_argument("sst", help="sea surface temperature (Kelvin or degC, any grid)")
    rec.add_argument("--model", required=True, help="trained latent diffusion model (.safetensors)")
    rec.add_argument("--out", required=True, help="output (.nc or .zarr)")
    rec.add_argument("--members", type=int, default=8, help="ensemble size (default: %(default)s)")
    rec.add_argument("--steps", type=int, default=50, help="DDIM steps (default: %(default)s)")
    rec.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    rec.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    rec.add_argument("--replace", action="store_true", help="keep observed values in the samples")

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
        model = xdepthrecon.train_autoencoder(cube, latent_channels=args.latent, epochs=args.epochs,
                                              batch_size=args.batch_size, lr=args.lr, patch_size=args.patch_size,
                                              device=args.device, seed=args.seed, checkpoint=args.out,
                                              linear_path=args.linear_path)
    elif args.command == "train-diffusion":
        cube = xdepthrecon.standardize(open_data(args.cube), **cube_options)
        profiles = xdepthrecon.read_profiles(open_data(args.profiles)) if args.profiles else None
        model = xdepthrecon.train_diffusion(cube, open_data(args.sst), _load_model(args.autoencoder, "autoencoder"),
                                            profiles=profiles, epochs=args.epochs, batch_size=args.batch_size,
                                            lr=args.lr, patch_size=args.patch_size, device=args.device,
                                            seed=args.seed, checkpoint=args.out, dim=args.dim,
                                            first_guess=tuple(args.first_guess), background=args.background)
    else:
        model = _load_model(args.model, "diffusion")
        result = xdepthrecon.reconstruct(open_data(args.grid), xdepthrecon.read_profiles(open_data(args.profiles)),
                                         open_data(args.sst), model,
                                         members=args.members, steps=args.steps, seed=args.seed, device=args.device,
                                         replace=args.replace)
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
