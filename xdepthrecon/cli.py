"""Command line: ``xdepthrecon <command>`` or ``python -m xdepthrecon <command>``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xdepthrecon",
        description="Reconstruct 3-D ocean temperature from sparse profiles and satellite SST.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run the demo on the bundled real sample data and write a report folder",
        description="Open the bundled monthly temperature atlas and COADS SST, compare them and write "
        "summary.png and summary.md into the report folder.",
    )
    demo.add_argument("--out", default="report", help="report folder to write (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xdepthrecon`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from xdepthrecon.demo import run_demo

        folder = run_demo(args.out)
        print(f"report written to {folder.resolve()}")
    return 0
