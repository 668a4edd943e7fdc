"""Scores of several methods as one series per method over depth, for the score plots."""

from __future__ import annotations

import pandas as pd
import xarray as xr


def score_lines(scores: xr.Dataset | dict[str, xr.Dataset] | pd.DataFrame, metric: str,
                columns: str) -> dict[str, pd.Series]:
    """One depth-indexed series of ``metric`` per method, from scores (:func:`~xdepthrecon.evaluate`) or an OSSE
    table."""
    if isinstance(scores, pd.DataFrame):
        return _table_lines(scores, metric, columns)
    if isinstance(scores, xr.Dataset):
        scores = {scores.attrs.get("method", "prediction"): scores}
    lines = {}
    for name, table in scores.items():
        if metric not in table:
            raise ValueError(f"the scores of {name!r} have no {metric!r}; they have {list(map(str, table.data_vars))}.")
        values = table[metric]
        if "columns" in values.dims:
            values = values.sel(columns=columns)
        extra = [str(d) for d in values.dims if d != "depth"]
        if extra:
            raise ValueError(f"the {metric!r} scores of {name!r} have dims {extra} besides depth; "
                             f"select one value of each, e.g. scores.sel({extra[0]}=...).")
        lines[str(name)] = values.to_series()
    return lines


def _table_lines(table: pd.DataFrame, metric: str, columns: str) -> dict[str, pd.Series]:
    missing = [c for c in ("method", "depth") if c not in table.columns]
    if missing:
        raise ValueError(f"a score table needs the columns {missing}; it has {list(table.columns)}.")
    if "columns" in table.columns:
        table = table[table["columns"] == columns]
    if "metric" in table.columns and "value" in table.columns:
        table = table[table["metric"] == metric]
        value = "value"
    elif metric in table.columns:
        value = metric
    else:
        raise ValueError(f"the score table has no {metric!r}: give a 'metric' + 'value' pair or a {metric!r} column.")
    if table.duplicated(["method", "depth"]).any():
        raise ValueError("the score table has several rows per method and depth; filter it to one (e.g. one region).")
    groups = table.groupby("method", sort=False)
    return {str(name): rows.set_index("depth")[value].sort_index() for name, rows in groups}
