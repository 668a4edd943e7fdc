"""Derive the sample files shipped in ``xdepthrecon/data`` from the real files in ``shared/data``.

    python scripts/make_sample_data.py [--source ../shared/data] [--output xdepthrecon/data]

Each sample is the source run through ``xdepthrecon.standardize`` (or ``standardize_surface``),
packed to int16 at 0.01 degC (decoded values are within 0.005 degC of the source; finer steps
barely shrink the files below 3 MB, since the atlas varies by ~0.1 degC between neighbours) and
written as zlib-compressed netCDF4 with its time axis as hours since 0000-01-01 in the
proleptic Gregorian calendar. The script also writes ``README.md`` beside the files, with their
sources, licences and sha256.

The output is deterministic: the history line carries no timestamp (it names the source's
sha256 and our version instead), so the same sources and libraries give byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

import xdepthrecon
from xdepthrecon._provenance import describe_call
from xdepthrecon.io.datasets import _ASSETS

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data"
DEFAULT_OUTPUT = REPO / "xdepthrecon" / "data"

#: Packing step (degC) of the int16 values.
PACKING_STEP = 0.01
_FILL = np.int16(-32768)
_TIME_ENCODING = {"units": "hours since 0000-01-01 00:00:00", "calendar": "proleptic_gregorian", "dtype": "float64"}

_FERRET_PACKAGE = "Debian package ferret-datasets 7.6.0 (NOAA/PMEL Ferret example data)"
_FERRET_LICENCE = (
    "Public domain (NOAA/PMEL), distributed with the Ferret licence notice (as recorded for the "
    "ferret-datasets package); see xdepthrecon/data/README.md for the notice."
)
_FERRET_REFERENCES = "https://github.com/NOAA-PMEL/FerretDatasets; https://ferret.pmel.noaa.gov/Ferret/"


@dataclass(frozen=True)
class _Sample:
    output: str
    source: str
    function: Callable[..., xr.Dataset]
    arguments: dict[str, Any]
    chunks: tuple[int, ...]
    title: str
    contents: str
    origin: str = _FERRET_PACKAGE
    licence: str = _FERRET_LICENCE
    references: str = _FERRET_REFERENCES
    notes: tuple[str, ...] = field(default_factory=tuple)


SAMPLES = (
    _Sample(
        output="ocean_atlas.nc",
        source="ocean_atlas_subset.nc",
        function=xdepthrecon.standardize,
        arguments={"units": "degC"},
        chunks=(12, 1, 90, 180),
        title="Monthly climatological ocean temperature, global 2 degree grid, 0-1000 m",
        contents="thetao(time=12, depth=19, latitude=90, longitude=180), degC, 19 levels 0-1000 m",
        notes=("The source's TEMP has no units attribute; its values are degC (units='degC' is passed).",),
    ),
    _Sample(
        output="coads_sst.nc",
        source="coads_climatology.cdf",
        function=xdepthrecon.standardize_surface,
        arguments={"variable": "SST"},
        chunks=(12, 90, 180),
        title="COADS monthly climatological sea surface temperature, global 2 degree grid",
        contents="sst(time=12, latitude=90, longitude=180), degC; only SST is kept of the COADS variables",
        notes=("Cell centres are offset by 1 degree from the atlas grid; it is an SST independent of the atlas.",),
    ),
)


def sha256(path: pathlib.Path) -> str:
    """Return the hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def derive(sample: _Sample, source_dir: pathlib.Path) -> xr.Dataset:
    """Return the standardised sample with its attributes, ready to write, checking the source's sha256."""
    path = source_dir / sample.source
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; pass --source with the folder holding {sample.source}.")
    found, expected = sha256(path), _ASSETS[sample.source]
    if found != expected:
        raise ValueError(f"{path} has sha256 {found}, expected {expected}: it is not the documented source file.")
    with xr.open_dataset(path, decode_times=False) as raw:
        out = sample.function(raw, **sample.arguments).load()
        previous = raw.attrs.get("history")
    name = "xdepthrecon." + sample.function.__name__
    line = (
        f"{describe_call(name, **sample.arguments)} of {sample.source} (sha256 {expected}), packed to int16 at "
        f"{PACKING_STEP} degC by scripts/make_sample_data.py (xdepthrecon {xdepthrecon.__version__})"
    )
    out.attrs = {
        "title": sample.title,
        "source": f"{sample.source} from the {sample.origin}",
        "license": sample.licence,
        "references": sample.references,
        "comment": f"Packed to int16 with scale_factor {PACKING_STEP} degC; land is the fill value (NaN decoded). "
        "Open with xdepthrecon.open_sample.",
        "Conventions": "CF-1.8",
        "history": f"{line}\n{previous}" if previous else line,
    }
    return out


def write(ds: xr.Dataset, chunks: tuple[int, ...], path: pathlib.Path) -> None:
    """Write ``ds`` packed to int16, zlib-compressed, with a year-0 proleptic Gregorian time axis."""
    (variable,) = ds.data_vars
    largest = float(np.nanmax(np.abs(ds[variable].values)))
    if largest / PACKING_STEP >= np.iinfo(np.int16).max:
        raise ValueError(f"{variable} reaches {largest} degC, beyond int16 at step {PACKING_STEP}.")
    encoding = {
        variable: {
            "dtype": "int16",
            "scale_factor": np.float32(PACKING_STEP),
            "_FillValue": _FILL,
            "zlib": True,
            "complevel": 9,
            "shuffle": True,
            "chunksizes": chunks,
        },
        "time": _TIME_ENCODING,
    }
    path.unlink(missing_ok=True)
    ds.to_netcdf(path, format="NETCDF4", engine="netcdf4", encoding=encoding)


def write_readme(output_dir: pathlib.Path) -> None:
    """Write ``README.md`` describing every packaged file and the registered assets."""
    sections = []
    for sample in SAMPLES:
        path = output_dir / sample.output
        notes = "".join(f"- {note}\n" for note in sample.notes)
        sections.append(
            f"## {sample.output}\n\n"
            f"- Contents: {sample.contents}. {sample.title}.\n"
            f"- Source file: `{sample.source}` (sha256 `{_ASSETS[sample.source]}`), from the {sample.origin}.\n"
            f"- Licence: {sample.licence}\n"
            f"- Derived by `scripts/make_sample_data.py`: "
            f"`{describe_call('xdepthrecon.' + sample.function.__name__, **sample.arguments)}`, "
            f"packed to int16 (scale_factor {PACKING_STEP} degC, decoded values within {PACKING_STEP / 2} degC "
            "of the source), zlib level 9 with shuffle; time as hours since 0000-01-01, proleptic_gregorian.\n"
            f"{notes}"
            f"- Size: {path.stat().st_size} bytes; sha256 `{sha256(path)}`\n"
        )
    assets = "".join(f"| `{name}` | `{digest}` |\n" for name, digest in sorted(_ASSETS.items()))
    text = (
        "# Sample data shipped with xdepthrecon\n\n"
        "Generated by `python scripts/make_sample_data.py` from the real files in `shared/data` (see its\n"
        "README); do not edit by hand. Open the samples with `xdepthrecon.open_sample(name)`: `ocean_atlas`\n"
        "(`ocean_atlas.nc`) and `coads_sst` (`coads_sst.nc`).\n\n"
        + "\n".join(sections)
        + "\n## Licence notices\n\n"
        "`ocean_atlas_subset.nc` and `coads_climatology.cdf` come from the Debian package ferret-datasets 7.6.0,\n"
        "recorded as public domain (NOAA/PMEL) with the Ferret licence notice. The upstream repository,\n"
        "https://github.com/NOAA-PMEL/FerretDatasets, carries this notice, reproduced so that it travels with\n"
        "the files derived from them:\n\n"
        "> MIT License\n>\n"
        "> Copyright (c) 2016 Pacific Marine Environmental Laboratory\n>\n"
        "> Permission is hereby granted, free of charge, to any person obtaining a copy of this software and\n"
        "> associated documentation files (the \"Software\"), to deal in the Software without restriction,\n"
        "> including without limitation the rights to use, copy, modify, merge, publish, distribute,\n"
        "> sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is\n"
        "> furnished to do so, subject to the following conditions:\n>\n"
        "> The above copyright notice and this permission notice shall be included in all copies or\n"
        "> substantial portions of the Software.\n>\n"
        "> THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT\n"
        "> NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND\n"
        "> NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,\n"
        "> DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT\n"
        "> OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.\n\n"
        "## Larger files, fetched on demand\n\n"
        "`xdepthrecon.fetch_asset(name)` downloads these (not shipped) into a cache, checking the sha256. They\n"
        "have no public host yet: set `XDEPTHRECON_DATA_URL` to a mirror, or to `file:///path/to/shared/data`;\n"
        "`XDEPTHRECON_CACHE` overrides the cache folder. `ocean_atlas_subset.nc` and `coads_climatology.cdf`:\n"
        "ferret-datasets 7.6.0, licence above. `ostia_monthly.nc` and `atlantic_profiles.nc`: PyPI\n"
        "iris-sample-data 2.5.2, UK Open Government Licence.\n\n"
        "| file | sha256 |\n| --- | --- |\n" + assets
    )
    (output_dir / "README.md").write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=pathlib.Path, default=DEFAULT_SOURCE, help="folder of the real files")
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT, help="folder to write the samples")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    for sample in SAMPLES:
        path = args.output / sample.output
        write(derive(sample, args.source), sample.chunks, path)
        print(f"{path}: {path.stat().st_size} bytes, sha256 {sha256(path)}")
    write_readme(args.output)


if __name__ == "__main__":
    main()
