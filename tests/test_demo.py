"""The README's first command: the demo on the bundled sample data."""

from __future__ import annotations

import pytest

from xdepthrecon.cli import main


def test_demo_writes_the_report(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "report")]) == 0
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "COADS SST against the atlas surface" in summary
    rmse = float(summary.split("RMSE ")[1].split(" degC")[0])
    assert 0.2 < rmse < 1.5  # two independent climatologies agree to a fraction of a degree
    assert (tmp_path / "report" / "summary.png").stat().st_size > 10_000
    assert "report written to" in capsys.readouterr().out


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "demo" in capsys.readouterr().out
