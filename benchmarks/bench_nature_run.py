"""Issue 17: does the learned model earn its place? The eddying nature run, split by time, at three densities.

Truth: ``shared/data/qg_nature_run.nc`` (64 x 64 cells of 15.6 km, 16 levels 0.5-2000 m, a snapshot every
10 days; see its README). Split by time: training 2001-2010 and 2016-2025, validation 2011-2013 (reserved: no
tuning is done here, so nothing reads it), test 2026-2028. Only the training snapshots reach the autoencoder,
the diffusion model, the classical analysis's fit and calibration and the baselines' climatologies and
regressions; the test snapshots are scored. Training and test snapshots are subsampled (``Plan``) to fit a CPU
budget; the JSON records which.

Observations, simulated with the project's OSSE tools (:func:`~xdepthrecon.evaluation.osse.osse_case`):
profiles in a fraction of the columns of every snapshot (0.25 %, 1 %, 4 %), full depth, 0.01 degC noise; the
SST is ``tos`` plus 0.2 degC Gaussian noise; in the cloud variant (``--cloud-cover``) a fraction of each test
snapshot's SST is hidden under clouds (cells where a random field smoothed over ``CLOUD_SCALE_KM`` is highest;
the training SST stays complete, as a gap-free product would be). Every method gets the same test-time profiles and SST:
climatology, OI about it, SST regression (alone and + OI), the classical analysis fitted for the density, the
diffusion model trained through the public API with its defaults (one model for all densities, its simulated
observations spanning them) and its ablation without the network: the guess it corrects, its own analysis
(a silenced network returns that guess exactly; tests/evaluation/test_nature_run.py checks it).

Scores at unobserved columns of the test snapshots, per band: RMSE, bias, CRPS (fair for ensembles), spread/skill,
effective resolution (ensemble mean), and horizontal spectra of single members against the truth's. The domain
is treated as a regional grid: spectra are detrended and windowed, nothing wraps.
Run: python benchmarks/bench_nature_run.py [--quick] [--train-every 1 --test-every 5 --members 16 ...]
[--cloud-cover 0.3 --models DIR (score models kept by --keep-models instead of training)]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
from scipy.ndimage import gaussian_filter

import xdepthrecon
from xdepthrecon.baselines.analysis import classical_analysis
from xdepthrecon.diffusion.samplers import SamplingOptions
from xdepthrecon.evaluation.bands import in_band
from xdepthrecon.evaluation.osse import OSSECase, Method, band_scores, osse_case, score_case, standard_baselines
from xdepthrecon.evaluation.spectra import wavenumber_spectra
from xdepthrecon.stats.smoothing import cells_per_scale
from xdepthrecon.training.config import AUTOENCODER_TRAINING, DIFFUSION_TRAINING, ObservationConfig

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "qg_nature_run.nc"
TRAIN_YEARS = ((2001, 2010), (2016, 2025))
VALIDATION_YEARS = ((2011, 2013),)
TEST_YEARS = ((2026, 2028),)
BANDS = ((0.0, 100.0), (100.0, 300.0), (300.0, 1000.0), (1000.0, 2000.0))
#: The classical methods the diffusion model must beat.
CLASSICAL = ("optimal_interpolation", "sst_regression_oi", "classical_analysis")
#: Gridding window of the profiles: shorter than the 10-day snapshot spacing, so each profile is its snapshot's.
WINDOW = "7D"
#: Spectra are compared at wavelengths of at least this many cells.
SPECTRUM_CELLS = 4
#: Gaussian length scale (km) of the random field whose highest cells are clouds; the grid's cells are 15.6 km.
CLOUD_SCALE_KM = 100.0


@dataclass(frozen=True)
class Plan:
    """What is run: densities (fraction of columns per snapshot), subsampling, ensemble and training sizes
    (None: the public defaults)."""

    densities: tuple[float, ...] = (0.0025, 0.01, 0.04)
    train_every: int = 1
    test_every: int = 5
    members: int = 16
    steps: int | None = None
    autoencoder_epochs: int | None = None
    diffusion_epochs: int | None = None
    profile_noise: float = 0.01
    sst_noise: float = 0.2
    cloud_cover: float = 0.0
    training_cloud_cover: float | None = None
    fast: bool | None = None
    seed: int = 0

    @classmethod
    def quick(cls) -> Plan:
        """CI size: a few snapshots, one density, one epoch each, four members; the scores mean nothing."""
        return cls(densities=(0.01,), train_every=40, test_every=30, members=4, steps=5, autoencoder_epochs=1,
                   diffusion_epochs=1)


def split(times: np.ndarray, plan: Plan) -> dict[str, np.ndarray]:
    """Indices of the training snapshots (every ``train_every``-th of the training years), the validation
    snapshots (all) and the test snapshots (every ``test_every``-th of the test years)."""
    years = pd.DatetimeIndex(times).year

    def within(spans: tuple[tuple[int, int], ...]) -> np.ndarray:
        return np.flatnonzero(np.any([(years >= a) & (years <= b) for a, b in spans], axis=0))

    return {"train": within(TRAIN_YEARS)[::plan.train_every], "validation": within(VALIDATION_YEARS),
            "test": within(TEST_YEARS)[::plan.test_every]}


def load(path: Path, plan: Plan) -> tuple[xr.Dataset, xr.Dataset, xr.DataArray, dict[str, Any]]:
    """The truth at the training then test snapshots, its SST (``tos`` + noise), the test mask and the split."""
    raw = xr.open_dataset(path)
    index, every = split(raw.time.values, plan), split(raw.time.values, Plan(train_every=1, test_every=1))
    raw = raw.isel(time=np.concatenate([index["train"], index["test"]])).load()
    truth = xdepthrecon.standardize(raw[["thetao"]])
    noise = np.random.default_rng(plan.seed).normal(0.0, plan.sst_noise, raw.tos.shape)
    test = xr.DataArray(np.arange(truth.sizes["time"]) >= index["train"].size, dims="time",
                        coords={"time": truth.time})
    hidden = clouds(raw.tos.shape, plan.cloud_cover, plan.seed, raw.latitude.values,
                    raw.longitude.values) & test.values[:, None, None]
    sst = (raw.tos + noise.astype("float32")).where(~hidden).assign_attrs(raw.tos.attrs).rename("sst").to_dataset()
    record = {name: {"years": years, "snapshots_available": int(every[name].size),
                     "snapshots_used": int(index[name].size) if name != "validation" else 0,
                     "every": {"train": plan.train_every, "test": plan.test_every}.get(name)}
              for name, years in (("train", TRAIN_YEARS), ("validation", VALIDATION_YEARS), ("test", TEST_YEARS))}
    record["test"]["dates"] = [str(t)[:10] for t in truth.time.values[test.values]]
    return truth, sst, test, record


def clouds(shape: tuple[int, int, int], cover: float, seed: int, latitude: np.ndarray,
           longitude: np.ndarray) -> np.ndarray:
    """Cloud masks ``(time, lat, lon)`` on the grid of ``latitude`` and ``longitude`` (degrees): in each snapshot the
    ``cover`` fraction of cells where white noise smoothed by a Gaussian of :data:`CLOUD_SCALE_KM` (not wrapped at
    the edges) is highest; none with ``cover=0``."""
    if cover <= 0:
        return np.zeros(shape, dtype=bool)
    field = np.random.default_rng(seed + 1).standard_normal(shape)
    sigma = cells_per_scale(CLOUD_SCALE_KM, torch.tensor(np.asarray(latitude, np.float64)),
                            torch.tensor(np.asarray(longitude, np.float64)))
    field = gaussian_filter(field, (0, *sigma), mode="nearest")
    return field > np.quantile(field, 1.0 - cover, axis=(1, 2), keepdims=True)


def observe(truth: xr.Dataset, sst: xr.Dataset, test: xr.DataArray, fraction: float, plan: Plan) -> OSSECase:
    """Profiles in ``fraction`` of the columns of every snapshot (full depth, ``plan.profile_noise``), the SST,
    and the split: the test snapshots are held out of ``case.training``."""
    return osse_case(truth, sst, fraction=fraction, test_times=test, noise=plan.profile_noise,
                     seed=plan.seed + round(1e4 * fraction), window=WINDOW)


def training_cube(case: OSSECase) -> xr.Dataset:
    """The truth at the training snapshots only (the test snapshots, NaN in ``case.training``, dropped)."""
    return case.training.isel(time=np.flatnonzero(~case.test_times.values))


def profiles_at_test_times(case: OSSECase) -> xr.Dataset:
    """The profiles of the test snapshots: all that any method is given to reconstruct them."""
    times = case.truth.time.values[case.test_times.values]
    return case.profiles.isel(profile=np.flatnonzero(np.isin(case.profiles.time.values, times)))


def bracket(fractions: tuple[float, ...]) -> tuple[float, float]:
    """Simulated training densities: a third of the lowest to three times the highest (the demo's rule)."""
    return min(fractions) / 3.0, min(3.0 * max(fractions), 1.0)


def train_models(case: OSSECase, plan: Plan, progress: bool = False):
    """The autoencoder and the diffusion model, trained through the public API with its defaults on the
    training snapshots; one model for every density of the plan."""
    cube = training_cube(case)
    sst = case.sst.sel(time=cube.time)
    ae = xdepthrecon.train_autoencoder(cube, epochs=plan.autoencoder_epochs, progress=progress,
                                       training=replace(AUTOENCODER_TRAINING, fast=plan.fast))
    cover = {} if plan.training_cloud_cover is None else {"cloud_cover": plan.training_cloud_cover}
    observations = ObservationConfig(density=bracket(plan.densities), noise=plan.profile_noise, **cover)
    model = xdepthrecon.train_diffusion(cube, sst, ae, observations=observations, epochs=plan.diffusion_epochs,
                                        training=replace(DIFFUSION_TRAINING, fast=plan.fast), progress=progress)
    return ae, model


def at_test_times(case: OSSECase) -> OSSECase:
    """``case`` cut to its test snapshots: what is scored. Scoring on the whole time axis held every prediction, the
    ensemble's members too, at the training snapshots as NaN (6 GB of members with every training snapshot)."""
    test = np.flatnonzero(case.test_times.values)
    return replace(case, **{name: getattr(case, name).isel(time=test)
                            for name in ("truth", "observations", "sst", "grid", "training", "test_times")})


def on_test_times(method: Method, case: OSSECase) -> Method:
    """``method`` run on the test snapshots only, with the test profiles, the training snapshots and the SST of
    both (the fits read the training snapshots'), its result on the time axis of the grid it is given (NaN at any
    training snapshot there, which is not scored)."""
    times = case.truth.time.values[case.test_times.values]
    profiles, training, sst = profiles_at_test_times(case), training_cube(case), case.sst

    def run(*, grid: xr.Dataset, **_: Any) -> xr.Dataset:
        out = method(profiles=profiles, sst=sst, grid=grid.sel(time=times), training=training)
        return out.reindex(time=grid.time)

    return run


def diffusion_ensemble(case: OSSECase, model, plan: Plan) -> xr.Dataset:
    """The diffusion model's ensemble at the test snapshots (mean, stated std and members), on their time axis."""
    grid = case.grid.isel(time=np.flatnonzero(case.test_times.values))
    options = SamplingOptions(members=plan.members, keep_members=True, fast=plan.fast,
                              **({} if plan.steps is None else {"steps": plan.steps}))
    return xdepthrecon.reconstruct(grid, profiles_at_test_times(case), case.sst, model, options=options,
                                   seed=plan.seed, window=WINDOW).compute()


def methods(case: OSSECase, model, ensemble: xr.Dataset, fraction: float, plan: Plan) -> dict[str, Method]:
    """Every method of the experiment on the case (see the module description)."""
    baselines = standard_baselines(window=WINDOW)
    fitted = partial(classical_analysis, window=WINDOW, observations=ObservationConfig(
        density=bracket((fraction,)), noise=plan.profile_noise, window=WINDOW))
    chosen: dict[str, Method] = {name: on_test_times(baselines[name], case) for name in (
        "climatology", "optimal_interpolation", "sst_regression", "sst_regression_oi")}
    chosen["classical_analysis"] = on_test_times(fitted, case)
    chosen["diffusion_guess"] = on_test_times(partial(classical_analysis, window=WINDOW, analysis=model.analysis),
                                              case)
    chosen["diffusion"] = lambda **_: ensemble[["thetao", "thetao_members"]]
    chosen["diffusion_stated_std"] = lambda **_: ensemble[["thetao", "thetao_std"]]
    return chosen


def recorded(chosen: dict[str, Method], store: dict[str, xr.Dataset]) -> dict[str, Method]:
    """The methods, each keeping its prediction in ``store``."""

    def keep(name: str, method: Method) -> Method:
        def run(**arguments: Any) -> xr.Dataset:
            store[name] = method(**arguments)
            return store[name]

        return run

    return {name: keep(name, method) for name, method in chosen.items()}


def score_density(case: OSSECase, model, ensemble: xr.Dataset, fraction: float, plan: Plan,
                  names: tuple[str, ...] | None = None) -> tuple[pd.DataFrame, dict[str, xr.Dataset]]:
    """The scores on the case's test snapshots (fair CRPS, effective resolution) of every method (or of ``names``)
    and their predictions there."""
    store: dict[str, xr.Dataset] = {}
    every = methods(case, model, ensemble, fraction, plan)
    chosen = recorded({name: every[name] for name in (names or every)}, store)
    return score_case(at_test_times(case), chosen, resolution=True, fair=True), store


def power(field: xr.DataArray) -> xr.Dataset:
    """Zonal power spectra of a field, per depth (rows detrended and Hann-windowed: a regional grid)."""
    return wavenumber_spectra(field, field)


def spectra(case: OSSECase, predictions: dict[str, xr.Dataset]) -> dict[str, Any]:
    """Spectra of single members, the ensemble mean and the classical methods against the truth's, per band:
    the ratio PSD / PSD_truth (geometric mean over the band's levels) at every wavelength, and its summary at
    wavelengths of at least :data:`SPECTRUM_CELLS` cells; ``predictions`` on the case's test snapshots."""
    test = np.flatnonzero(case.test_times.values)
    members = predictions["diffusion"]["thetao_members"]
    fields = {"diffusion_member_0": members.isel(member=0), "diffusion_member_1": members.isel(member=1),
              "diffusion_mean": predictions["diffusion"]["thetao"],
              **{name: predictions[name]["thetao"] for name in ("diffusion_guess", *CLASSICAL) if name in predictions}}
    truth = power(case.truth.thetao.isel(time=test))
    spacing = float(np.median(np.diff(case.truth.longitude.values)))
    cells = 1.0 / (truth.wavenumber.values * spacing)
    long = cells >= SPECTRUM_CELLS
    mesoscale = long & (cells <= 2 * SPECTRUM_CELLS)
    out: dict[str, Any] = {"wavelength_km": (truth.km_per_degree.mean().item() / truth.wavenumber).values.tolist(),
                           "wavelength_cells": cells.tolist(), "bands": {}}
    ratios = {name: power(field).psd_truth / truth.psd_truth for name, field in fields.items()}
    for top, bottom in BANDS:
        inside = truth.depth.copy(data=in_band(truth.depth, (top, bottom), bottom == BANDS[-1][1]))
        band: dict[str, Any] = {"truth_psd": truth.psd_truth.where(inside).mean("depth").values.tolist()}
        for name, ratio in ratios.items():
            values = np.exp(np.log(ratio.where(inside)).mean("depth").values)
            worst = values[long][np.argmax(np.abs(np.log(values[long])))]
            band[name] = {"ratio": values.tolist(),
                          "ratio_4_to_8_cells": float(np.exp(np.log(values[mesoscale]).mean())),
                          "worst_ratio_from_4_cells": float(worst),
                          "within_20_percent_from_4_cells": bool(np.all(np.abs(values[long] - 1.0) <= 0.2))}
        out["bands"][f"{top:g}-{bottom:g} m"] = band
    return out


def resolution(table: pd.DataFrame) -> dict[str, Any]:
    """Effective resolution (km) of each method's point estimate per depth, and its mean over each band."""
    rows = table[table.metric == "effective_resolution"].drop_duplicates(["method", "depth"])
    per_depth = rows.pivot_table(index="depth", columns="method", values="value")
    bands = {}
    for top, bottom in BANDS:
        inside = in_band(per_depth.index, (top, bottom), bottom == BANDS[-1][1])
        bands[f"{top:g}-{bottom:g} m"] = per_depth[inside].mean().round(1).to_dict()
    return {"bands": bands, "per_depth": {f"{d:g}": v for d, v in per_depth.round(1).to_dict("index").items()}}


def summarise(bands: pd.DataFrame) -> dict[str, Any]:
    """Per band at unobserved columns: each method's RMSE, bias, CRPS, spread/skill; what the network adds over
    its guess (%); the diffusion model against the best classical method and the classical analysis.

    The diffusion model's CRPS compared here is its stated one (its mean and ``thetao_std`` as a Gaussian). Its
    members' fair CRPS is optimistic: ``reconstruct`` centres them on the gated mean and scales them to the
    calibrated spread, so they are not independent draws, and the fair estimator's correction then flatters a
    16-member ensemble by about 4 % (``*_members`` keys)."""
    part = bands[bands["columns"] == "unobserved"]
    wide = part.pivot_table(index=["band", "method"], columns="metric", values="value")
    out = {}
    present = set(wide.index.get_level_values("band"))
    for band in [name for top, bottom in BANDS if (name := f"{top:g}-{bottom:g} m") in present]:
        scores = wide.loc[band]
        diffusion, guess = scores.loc["diffusion"], scores.loc["diffusion_guess"]
        stated, classical = scores.loc["diffusion_stated_std", "crps"], scores.loc["classical_analysis", "crps"]
        best = scores.loc[[name for name in CLASSICAL if name in scores.index], "rmse"].idxmin()
        out[band] = {
            "scores": {method: {m: round(float(v), 5) for m, v in row.items() if m != "mae" and pd.notna(v)}
                       for method, row in scores.iterrows()},
            "network_gain_percent": {"rmse": round(100.0 * (1.0 - diffusion["rmse"] / guess["rmse"]), 2),
                                     "crps": round(100.0 * (1.0 - stated / guess["crps"]), 2),
                                     "crps_members": round(100.0 * (1.0 - diffusion["crps"] / guess["crps"]), 2)},
            "best_classical": best,
            "rmse_over_best_classical": round(float(diffusion["rmse"] / scores.loc[best, "rmse"]), 4),
            "crps_over_classical_analysis": round(float(stated / classical), 4),
            "crps_members_over_classical_analysis": round(float(diffusion["crps"] / classical), 4),
        }
    return out


def run(path: Path, plan: Plan, progress: bool = False, log: Callable[[str], None] = print,
        keep: Path | None = None, models: Path | None = None) -> dict[str, Any]:
    """The whole experiment; returns the JSON payload. ``keep``: a folder to save the trained models in
    (``autoencoder.safetensors``, ``diffusion.safetensors``), to score them again without retraining; ``models``:
    such a folder, whose models are scored instead of training new ones (trained with the same plan's split)."""
    began = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        seconds[name] = round(time.perf_counter() - since, 1)
        log(f"[{time.perf_counter() - began:7.0f} s] {name}: {seconds[name]} s")
        return time.perf_counter()

    truth, sst, test, record = load(path, plan)
    cases = {fraction: observe(truth, sst, test, fraction, plan) for fraction in plan.densities}
    now = lap("load_and_observe", began)
    if models is None:
        ae, model = train_models(next(iter(cases.values())), plan, progress)
    else:
        ae, model = (xdepthrecon.load(models / name) for name in ("autoencoder.safetensors", "diffusion.safetensors"))
    now = lap("training" if models is None else "loading_models", now)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        ae.save(keep / "autoencoder.safetensors")
        model.save(keep / "diffusion.safetensors")
    results = {}
    for fraction, case in cases.items():
        label = f"{100 * fraction:g}%"
        ensemble = diffusion_ensemble(case, model, plan)
        now = lap(f"diffusion_reconstruction_{label}", now)
        table, predictions = score_density(case, model, ensemble, fraction, plan)
        bands = band_scores(table, BANDS)
        results[label] = {"case": case.info, "seconds": table.attrs["seconds"], "summary": summarise(bands),
                          "effective_resolution_km": resolution(table), "spectra": spectra(case, predictions),
                          "bands": bands.to_dict(orient="records")}
        now = lap(f"methods_and_scores_{label}", now)
    seconds["total"] = round(time.perf_counter() - began, 1)
    return {"plan": asdict(plan), "split": record, "models_from": None if models is None else str(models),
            "training": {"autoencoder": {"history": getattr(ae, "history", None),  # None: loaded, not trained here
                                         "correction_gate": ae.correction_gate.tolist()},
                         "diffusion": {"config": asdict(xdepthrecon.DiffusionConfig()),
                                       "history": getattr(model, "history", None),
                                       "observations": {"density": list(bracket(plan.densities))},
                                       "density_edges": model.analysis.departures.density_edges.tolist(),
                                       "correction_gate": model.correction_gate.tolist()}},
            "seconds": seconds, "densities": results,
            "notes": ["validation years are reserved: nothing is tuned here, so nothing reads them",
                      "OI baselines fit their covariances to the test snapshots' observations (the observations a "
                      "user has, never the truth); the classical analysis and the diffusion model fit theirs on "
                      "the training snapshots",
                      "diffusion: scored as its members (fair CRPS, members' spread; reconstruct scales the members' "
                      "departures to the calibrated error); diffusion_stated_std: its mean with reconstruct's "
                      "thetao_std (the calibrated error), as a Gaussian",
                      "the summary's CRPS gains and ratios are the stated CRPS's: the members, centred on the gated "
                      "mean and scaled to the calibrated spread, are not independent draws, and their fair CRPS is "
                      "about 4 % optimistic at 16 members (the *_members keys)",
                      "diffusion_guess: the diffusion model's own classical analysis (the guess its network corrects)",
                      "one diffusion model serves every density: its simulated observations span them"]}


def table_text(payload: dict[str, Any]) -> str:
    """The score table: per density and band, each method's RMSE / CRPS / spread-skill, and the network's gain."""
    lines = []
    for label, result in payload["densities"].items():
        for band, summary in result["summary"].items():
            cells = [f"{m}: {s['rmse']:.3f}/{s.get('crps', np.nan):.3f}/{s.get('spread_skill', np.nan):.2f}"
                     for m, s in summary["scores"].items()]
            gain = summary["network_gain_percent"]
            lines.append(f"{label} {band}: " + "; ".join(cells) + f" | network gain rmse {gain['rmse']:+.1f} %, crps "
                         f"{gain['crps']:+.1f} %; rmse / best classical ({summary['best_classical']}) "
                         f"{summary['rmse_over_best_classical']:.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI size (Plan.quick); writes nature_run_quick.json")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--densities", type=float, nargs="+", help="fractions of columns observed per snapshot")
    for name in ("train-every", "test-every", "members", "steps", "autoencoder-epochs", "diffusion-epochs"):
        parser.add_argument(f"--{name}", type=int)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--keep-models", type=Path, help="folder to save the trained models in")
    parser.add_argument("--models", type=Path, help="score the models --keep-models saved instead of training")
    parser.add_argument("--cloud-cover", type=float, help="fraction of each test snapshot's SST under clouds")
    parser.add_argument("--training-cloud-cover", type=float,
                        help="ObservationConfig.cloud_cover of the diffusion training (default: the library's)")
    parser.add_argument("--fast", choices=("on", "off"), help="bf16 training (default: where the device pays)")
    parser.add_argument("--label", help="write nature_run_LABEL.json (an ablation), not nature_run.json")
    args = parser.parse_args()
    args.fast = None if args.fast is None else args.fast == "on"
    plan = Plan.quick() if args.quick else Plan()
    given = {k: v for k, v in vars(args).items() if k in Plan.__dataclass_fields__ and v is not None}
    plan = Plan(**{**asdict(plan), **given, **({"densities": tuple(args.densities)} if args.densities else {})})
    payload = run(args.data, plan, progress=args.progress, log=lambda text: print(text, file=sys.stderr),
                  keep=args.keep_models, models=args.models)
    print(table_text(payload), file=sys.stderr)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import write_result

    write_result("nature_run" + (f"_{args.label}" if args.label else "") + ("_clouds" if plan.cloud_cover > 0 else "")
                 + ("_quick" if args.quick else ""), payload)


if __name__ == "__main__":
    main()
