"""``python -m xdepthrecon``: the command line."""

from xdepthrecon.cli import main

raise SystemExit(main())
