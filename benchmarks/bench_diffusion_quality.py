"""The quality bar of the latent diffusion model: the demo's OSSE, beside every baseline.

Truth: the bundled monthly atlas; SST: the independent COADS climatology; profiles sampled from the
truth (0.9 per 10^6 km^2 per month, ~3 % of ocean columns, 0.01 degC noise); three regions and four
months held out from training (the split of benchmarks/bench_baselines.py). The autoencoder and the
diffusion model train on the rest; every method is scored on the held-out regions at the held-out
months, per band (0-100, 100-300, 300-1000 m). Writes benchmarks/results/diffusion_quality.json and
the demo's report folder. Run: python benchmarks/bench_diffusion_quality.py [--dim 32 --epochs 40 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from xdepthrecon.demo import DemoSettings, run_demo  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for field in fields(DemoSettings):
        if field.type in ("int", int):
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=int, default=field.default)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "diffusion_report"))
    args = parser.parse_args()
    settings = DemoSettings(**{f.name: getattr(args, f.name) for f in fields(DemoSettings) if hasattr(args, f.name)})
    out = run_demo(args.out, settings=settings, progress=False)
    report = json.loads((out / "scores.json").read_text())
    bands = pd.DataFrame(report["bands"])
    held_out = bands[(bands["region"] == "held_out") & (bands["metric"].isin(["rmse", "crps", "spread_skill"]))]
    table = held_out.pivot_table(index=["columns", "method"], columns=["metric", "band"], values="value").round(4)
    print(table.to_string())
    write_result("diffusion_quality", {"settings": report["settings"], "case": report["info"],
                                       "seconds": report["seconds"], "history": report["history"],
                                       "held_out": held_out.to_dict(orient="records")})


if __name__ == "__main__":
    main()
