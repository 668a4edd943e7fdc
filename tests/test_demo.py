"""The README's first command: the demo on the bundled sample data (quick size)."""

from __future__ import annotations

import json

import numpy as np

import pytest

from xdepthrecon.cli import main


def test_quick_demo_writes_the_report(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["demo", "--out", str(out), "--quick"]) == 0
    for name in ("maps.png", "section.png", "profiles.png", "scores.png"):
        assert (out / name).stat().st_size > 10_000
    summary = (out / "summary.md").read_text()
    assert "RMSE (degC) on the held-out regions" in summary and "| diffusion |" in summary
    assert "| sst_regression |" in summary and "QUICK RUN" in summary
    bands = json.loads((out / "scores.json").read_text())["bands"]
    methods = {row["method"] for row in bands}
    assert {"diffusion", "classical_analysis", "climatology", "nearest", "inverse_distance",
            "sst_regression"} <= methods
    assert (out / "index.html").read_text().startswith("<html>")
    assert "report written to" in capsys.readouterr().out


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "demo" in capsys.readouterr().out


def test_profile_sites_are_ocean_cells_inside_their_boxes_even_across_the_dateline():
    import xdepthrecon
    from xdepthrecon.demo import TEST_REGIONS, _ocean_site

    surface = xdepthrecon.open_sample("ocean_atlas").thetao.isel(time=1, depth=0)
    for south, north, west, east in TEST_REGIONS:
        latitude, longitude = _ocean_site(surface, (south, north, west, east))
        assert south <= latitude <= north
        assert (longitude - west) % 360 <= (east - west) % 360
        assert np.isfinite(float(surface.sel(latitude=latitude, longitude=longitude)))
