"""The quality bar of the latent diffusion model: the demo's OSSE, beside every baseline.

Truth: the bundled monthly atlas; SST: the independent COADS climatology; profiles sampled from the
truth (0.9 per 10^6 km^2 per month, ~3 % of ocean columns, 0.01 degC noise); three regions and four
months held out from training (the split of benchmarks/bench_baselines.py). The classical analysis, the
autoencoder and the diffusion model are fitted on the rest with the library's default settings (the demo's);
every method is scored on the held-out regions at the held-out months, per band (0-100, 100-300,
300-1000 m). Writes benchmarks/results/diffusion_quality.json and the demo's report folder.
Run: python benchmarks/bench_diffusion_quality.py [--diffusion-epochs 40 --dim 32 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from xdepthrecon.demo import DemoSettings, run_demo  # noqa: E402


def main() -> None:
    defaults = DemoSettings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--diffusion-epochs", type=int, default=defaults.diffusion_training.epochs)
    parser.add_argument("--dim", type=int, default=defaults.diffusion.dim)
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "diffusion_report"))
    args = parser.parse_args()
    settings = replace(defaults, diffusion=replace(defaults.diffusion, dim=args.dim),
                       diffusion_training=replace(defaults.diffusion_training, epochs=args.diffusion_epochs))
    out = run_demo(args.out, device=args.device, settings=settings, progress=False)
    report = json.loads((out / "scores.json").read_text())
    bands = pd.DataFrame(report["bands"])
    held_out = bands[(bands["region"] == "held_out") & (bands["metric"].isin(["rmse", "crps", "spread_skill"]))]
    table = held_out.pivot_table(index=["columns", "method"], columns=["metric", "band"], values="value").round(4)
    print(table.to_string())
    write_result("diffusion_quality", {"settings": report["settings"], "case": report["info"],
                                       "seconds": report["seconds"], "history": report["history"],
                                       "autoencoder_ceiling": report["autoencoder_ceiling"],
                                       "held_out": held_out.to_dict(orient="records")})


if __name__ == "__main__":
    main()
