"""The main job on the bundled real data: ``python -m xdepthrecon demo``.

The whole story on the CPU in a few minutes: the bundled monthly atlas is the truth and COADS the
independent SST; profiles are sampled from the truth (an observing-system simulation); three regions
and four months are held out; a small autoencoder and diffusion model are trained on the rest; the
held-out months are reconstructed with an ensemble and scored beside the baselines a user would pick
instead. Everything lands in a report folder: figures, a score table (CSV and JSON) and a summary
(Markdown and HTML).
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from xdepthrecon.analysis.classical import AnalysisConfig
from xdepthrecon.diffusion.samplers import SamplingOptions
from xdepthrecon.training.config import (AUTOENCODER_TRAINING, DIFFUSION_TRAINING, AutoencoderConfig,
                                         DiffusionConfig, ObservationConfig, TrainingConfig)

#: Held-out boxes (south, north, west, east): North Atlantic, equatorial Pacific across the dateline,
#: South Indian Ocean; the same split as the baselines benchmark (benchmarks/bench_baselines.py).
TEST_REGIONS: tuple[tuple[float, float, float, float], ...] = (
    (20.0, 50.0, -60.0, -20.0), (-10.0, 10.0, 160.0, -120.0), (-45.0, -20.0, 60.0, 100.0))
#: Held-out calendar months.
TEST_TIMES: tuple[int, ...] = (2, 5, 8, 11)
#: Profiles per 10^6 km^2 of ocean per month: about 3 % of the atlas' ocean columns.
DENSITY = 0.9
#: Depths (m) of the report's maps.
MAP_DEPTHS = (0.0, 100.0, 300.0, 700.0)


@dataclass(frozen=True)
class DemoSettings:
    """The demo's settings: the library's defaults (the recipe that works); :meth:`quick` is the smoke-test
    size."""

    autoencoder: AutoencoderConfig = AutoencoderConfig()
    autoencoder_training: TrainingConfig = AUTOENCODER_TRAINING
    diffusion: DiffusionConfig = DiffusionConfig()
    diffusion_training: TrainingConfig = DIFFUSION_TRAINING
    analysis: AnalysisConfig = AnalysisConfig()
    sampling: SamplingOptions = SamplingOptions()

    @classmethod
    def quick(cls) -> DemoSettings:
        """Tiny models and ensemble: checks the pipeline in a minute, proves nothing."""
        return cls(autoencoder=AutoencoderConfig(latent_channels=4, encoder_channels=(8, 8), decoder_channels=(8, 8)),
                   autoencoder_training=replace(AUTOENCODER_TRAINING, epochs=1),
                   diffusion=DiffusionConfig(dim=8), diffusion_training=replace(DIFFUSION_TRAINING, epochs=1),
                   sampling=SamplingOptions(members=2, steps=3))


def _models(case, settings: DemoSettings, device: str | None, progress: bool):
    import xdepthrecon

    ae = xdepthrecon.train_autoencoder(case.training, config=settings.autoencoder,
                                       training=settings.autoencoder_training, device=device, progress=progress)
    fraction = case.info["observed_column_fraction"]
    observations = ObservationConfig(density=(fraction / 3, min(3 * fraction, 1.0)))
    model = xdepthrecon.train_diffusion(case.training, case.sst, ae, config=settings.diffusion,
                                        analysis=settings.analysis, observations=observations,
                                        training=settings.diffusion_training, device=device, progress=progress)
    return ae, model


def _reconstruct(model, case, settings: DemoSettings, device: str | None) -> xr.Dataset:
    """The ensemble reconstruction of the held-out months (NaN at the other months, which are not scored)."""
    import xdepthrecon
    from xdepthrecon.io.times import profile_windows

    grid = case.grid
    cube = grid.assign(thetao=xr.zeros_like(grid.ocean, dtype="float32").where(grid.ocean))
    months = cube.isel(time=np.flatnonzero(case.test_times.values))
    in_months = np.unique(np.concatenate(profile_windows(months.time.values, case.profiles.time.values, "7D")))
    result = xdepthrecon.reconstruct(months, case.profiles.isel(profile=in_months), case.sst, model,
                                     options=settings.sampling, device=device, window="7D").compute()
    return result.reindex(time=grid.time)


def _ocean_site(surface: xr.DataArray, box: tuple[float, float, float, float]) -> tuple[float, float]:
    """The ocean cell nearest the centre of a (south, north, west, east) box; the box may cross the dateline."""
    south, north, west, east = box
    centre_lon = (west + ((east - west) % 360.0) / 2 + 180.0) % 360.0 - 180.0
    lat, lon = np.meshgrid(surface.latitude.values, surface.longitude.values, indexing="ij")
    distance = (lat - (south + north) / 2) ** 2 + ((lon - centre_lon + 180.0) % 360.0 - 180.0) ** 2
    row, column = np.unravel_index(np.argmin(np.where(surface.notnull().values, distance, np.inf)), distance.shape)
    return float(lat[row, column]), float(lon[row, column])


def _markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join([str(frame.index.name or "")] + [str(c) for c in frame.columns]) + " |"
    rule = "|" + " --- |" * (len(frame.columns) + 1)
    rows = ["| " + " | ".join([str(index)] + [f"{v:.3f}" for v in values]) + " |"
            for index, values in zip(frame.index, frame.to_numpy())]
    return "\n".join([header, rule, *rows])


def _figures(out: Path, case, reconstruction: xr.Dataset, table: pd.DataFrame) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xdepthrecon.evaluation import plot

    month = int(np.flatnonzero(case.test_times.values)[0])
    truth = case.truth
    names = []
    fig, axes = plt.subplots(len(MAP_DEPTHS), 4, figsize=(22, 4.2 * len(MAP_DEPTHS)))
    for row, depth in zip(axes, MAP_DEPTHS):
        limits = truth.thetao.isel(time=month).sel(depth=depth, method="nearest")
        low, high = float(limits.min()), float(limits.max())
        plot.plot_map(truth, depth, time=month, ax=row[0], vmin=low, vmax=high)
        row[0].set_title(f"truth, {row[0].get_title()}")
        plot.plot_map(reconstruction, depth, time=month, ax=row[1], vmin=low, vmax=high,
                      observations=case.observations.x_mask)
        row[1].set_title(f"ensemble mean, {row[1].get_title()}")
        plot.plot_map(reconstruction, depth, time=month, ax=row[2], kind="error", truth=truth)
        plot.plot_map(reconstruction, depth, time=month, ax=row[3], kind="spread")
    fig.tight_layout()
    fig.savefig(out / "maps.png", dpi=80)
    plt.close(fig)
    names.append("maps.png")

    south, north, west, east = TEST_REGIONS[0]
    longitude = float(truth.longitude.sel(longitude=(west + east) / 2, method="nearest"))
    fig, axes = plt.subplots(1, 3, figsize=(20, 5))
    plot.plot_section(truth, longitude=longitude, time=month, ax=axes[0])
    axes[0].set_title(f"truth, {axes[0].get_title()}")
    plot.plot_section(reconstruction, longitude=longitude, time=month, ax=axes[1])
    axes[1].set_title(f"ensemble mean, {axes[1].get_title()}")
    plot.plot_section(reconstruction, longitude=longitude, time=month, ax=axes[2], kind="error", truth=truth)
    fig.tight_layout()
    fig.savefig(out / "section.png", dpi=80)
    plt.close(fig)
    names.append("section.png")

    fig, axes = plt.subplots(1, 3, figsize=(15, 6))
    for ax, box in zip(axes, TEST_REGIONS):
        latitude, longitude = _ocean_site(truth.thetao.isel(time=month, depth=0), box)
        plot.plot_profile(reconstruction, latitude=latitude, longitude=longitude, time=month, ax=ax, truth=truth,
                          observations=case.observations, label="diffusion ensemble")
    fig.tight_layout()
    fig.savefig(out / "profiles.png", dpi=80)
    plt.close(fig)
    names.append("profiles.png")

    held_out = table[table["region"] == "held_out"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 6))
    plot.plot_scores(held_out, metric="rmse", ax=axes[0])
    axes[0].set_title("RMSE on held-out regions and months")
    plot.plot_scores(held_out, metric="bias", ax=axes[1])
    axes[1].set_title("bias on held-out regions and months")
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=80)
    plt.close(fig)
    names.append("scores.png")
    return names


def _ceiling(case, ae) -> xr.Dataset:
    """The autoencoder's round trip on the held-out regions and months, beside EOFs of the training cube."""
    import xdepthrecon
    from xdepthrecon.stats.pca import PCACompressor

    eofs = PCACompressor.fit(case.training, ae.latent_channels)
    held_out = case.test_regions | case.test_times
    return xdepthrecon.compression_ceiling(case.truth, ae, eofs=eofs, mask=held_out)


def _summary(out: Path, case, scores: tuple[pd.DataFrame, xr.Dataset], figures: list[str],
             seconds: dict[str, float], settings: DemoSettings, quick: bool) -> str:
    bands, ceiling = scores
    held_out = bands[(bands["region"] == "held_out") & (bands["columns"] == "all")]
    wide = held_out.pivot_table(index="method", columns=["band", "metric"], values="value")
    rmse = wide.xs("rmse", axis=1, level="metric").round(3) if not wide.empty else pd.DataFrame()
    rmse = rmse.sort_values(rmse.columns[-1]) if not rmse.empty else rmse
    lines = [
        "# xdepthrecon demo: reconstructing the ocean interior from sparse profiles and SST",
        "",
        "Truth: the bundled monthly temperature atlas (19 levels, 0-1000 m, 2 degrees). SST: COADS, an independent "
        "climatology. Profiles sampled from the truth with 0.01 degC noise: "
        f"{case.info['profiles_per_time_step']} per month ({100 * case.info['observed_column_fraction']:.1f} % of "
        f"ocean columns). Held out from training: {len(TEST_REGIONS)} regions "
        f"({100 * case.info['test_region_ocean_fraction']:.0f} % of the ocean) and months {list(TEST_TIMES)}.",
        "",
        f"Models: the classical analysis (seasonal background, local SST regression, optimal interpolation of the "
        f"profiles, calibrated error) alone, and corrected by latent diffusion: autoencoder latent "
        f"{settings.autoencoder.latent_channels} (EOF path, learned correction of widths "
        f"{list(settings.autoencoder.decoder_channels)}, {settings.autoencoder_training.epochs} epochs"
        f"{', gated on held-out regions' if settings.autoencoder.gate else ''}); "
        f"denoiser width {settings.diffusion.dim}, "
        f"{settings.diffusion_training.epochs} epochs; ensemble of {settings.sampling.members} members, "
        f"{settings.sampling.steps} DDIM steps."
        + (" QUICK RUN: tiny models, the scores mean nothing." if quick else ""),
        "",
        "## RMSE (degC) on the held-out regions and months, by depth band",
        "",
        _markdown_table(rmse) if not rmse.empty else "(no scores)",
        "",
        "## The autoencoder's ceiling: round-trip RMSE (degC) on the held-out water, beside EOFs of the training "
        "cube",
        "",
        "No reconstruction decoded by the autoencoder can be better than its round trip "
        "(`xdepthrecon.compression_ceiling`).",
        "",
        _markdown_table(ceiling[["autoencoder_rmse", "eof_rmse", "ratio"]].to_dataframe().round(3).T),
        "",
        "## Time (s)",
        "",
        ", ".join(f"{k}: {v:.0f}" for k, v in seconds.items()),
        "",
        "## Figures",
        "",
        *[f"![{name}]({name})" for name in figures],
        "",
    ]
    text = "\n".join(lines)
    (out / "summary.md").write_text(text)
    body = "".join(f"<h2>{html.escape(n)}</h2><img src='{n}' style='max-width:100%'>" for n in figures)
    table_html = rmse.to_html() if not rmse.empty else ""
    (out / "index.html").write_text(
        f"<html><head><meta charset='utf-8'><title>xdepthrecon demo</title></head><body>"
        f"<h1>xdepthrecon demo</h1><p>{html.escape(lines[2])}</p><h2>RMSE (degC), held out</h2>{table_html}"
        f"{body}</body></html>")
    return text


def run_demo(out: str | Path = "report", *, device: str | None = None, quick: bool = False,
             progress: bool = True, settings: DemoSettings | None = None) -> Path:
    """Run the demo on the bundled samples and write the report folder.

    Parameters
    ----------
    out
        Report folder (created if missing).
    device
        Where the models run; default CUDA when available.
    quick
        Tiny models and ensemble and only the fast baselines: a smoke test of the pipeline, not a result.
    progress
        Show progress bars.
    settings
        Model and ensemble sizes (default :class:`DemoSettings`, or its ``quick`` size with ``quick``).

    Returns
    -------
    pathlib.Path
        The report folder, holding ``maps.png``, ``section.png``, ``profiles.png``, ``scores.png``,
        ``scores.csv``, ``scores.json``, ``bands.csv``, ``summary.md`` and ``index.html``.
    """
    import xdepthrecon
    from xdepthrecon.evaluation.osse import band_scores, osse_case, score_case, standard_baselines

    settings = settings or (DemoSettings.quick() if quick else DemoSettings())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    case = osse_case(xdepthrecon.open_sample("ocean_atlas"), xdepthrecon.open_sample("coads_sst"),
                     density=DENSITY, test_regions=TEST_REGIONS, test_times=TEST_TIMES, noise=0.01, seed=0,
                     window="7D")
    seconds["observations"] = time.perf_counter() - began
    began = time.perf_counter()
    ae, model = _models(case, settings, device, progress)
    seconds["training"] = time.perf_counter() - began
    ceiling = _ceiling(case, ae)
    began = time.perf_counter()
    reconstruction = _reconstruct(model, case, settings, device)
    seconds["reconstruction"] = time.perf_counter() - began
    began = time.perf_counter()
    table = score_case(case, {"diffusion": lambda **_: reconstruction,
                              **standard_baselines(window="7D", analysis=model.analysis)})
    seconds["baselines and scores"] = time.perf_counter() - began
    bands = band_scores(table)
    table.to_csv(out / "scores.csv", index=False)
    bands.to_csv(out / "bands.csv", index=False)
    (out / "scores.json").write_text(json.dumps(
        {"info": _jsonable(case.info), "settings": asdict(settings), "seconds": seconds,
         "history": {"diffusion": model.history}, "bands": bands.to_dict(orient="records"),
         "autoencoder_ceiling": ceiling.to_dataframe().reset_index().to_dict(orient="records")},
        indent=1, default=float))
    figures = _figures(out, case, reconstruction, table)
    print(_summary(out, case, (bands, ceiling), figures, seconds, settings, quick))
    return out


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in info.items()}
