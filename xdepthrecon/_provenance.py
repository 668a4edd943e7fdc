"""Provenance: the ``history`` line every output of the library carries."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any


def with_history(attrs: Mapping[str, Any], call: str) -> dict[str, Any]:
    """Return a copy of ``attrs`` with a new first line in ``history`` naming ``call`` and our version.

    Parameters
    ----------
    attrs
        The attributes of the object the call produced (left unchanged).
    call
        What was called, e.g. ``"xdepthrecon.standardize(units='degC')"``.
    """
    from xdepthrecon import __version__

    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{stamp} {call} (xdepthrecon {__version__})"
    previous = attrs.get("history")
    out = dict(attrs)
    out["history"] = f"{line}\n{previous}" if previous else line
    return out


def describe_call(function: str, **arguments: Any) -> str:
    """Format a call for a history line, showing only the arguments that were given."""
    given = ", ".join(f"{key}={value!r}" for key, value in arguments.items() if value is not None)
    return f"{function}({given})"
