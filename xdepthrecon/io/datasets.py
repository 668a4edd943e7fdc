"""Sample data that ships with the package, and larger real files fetched on demand with pooch.

:func:`open_sample` opens the small samples in ``xdepthrecon/data`` (no network needed);
:func:`fetch_asset` gets a registered larger file into a local cache, checking its sha256.
``xdepthrecon/data/README.md`` says where every file comes from and under which licence.
"""

from __future__ import annotations

import importlib.resources
import os
import pathlib
import shutil
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import IO, Any

import cftime
import pooch
import xarray as xr

from xdepthrecon._provenance import describe_call, with_history
from xdepthrecon.io.cube import standardize, standardize_surface

#: Environment variable holding the base URL (``https://``, ``ftp://``, ``file://``...) of the asset files.
DATA_URL_VARIABLE = "XDEPTHRECON_DATA_URL"
#: Environment variable overriding the cache folder of fetched assets.
CACHE_VARIABLE = "XDEPTHRECON_CACHE"

#: URL protocols pooch downloads itself; ``file://`` is handled by :func:`_copy_local_file`.
_POOCH_PROTOCOLS = ("https", "http", "ftp", "sftp", "doi")

#: Packaged samples: name -> (file in ``xdepthrecon/data``, function giving its canonical form).
_SAMPLES: dict[str, tuple[str, Callable[[xr.Dataset], xr.Dataset]]] = {
    "ocean_atlas": ("ocean_atlas.nc", standardize),
    "coads_sst": ("coads_sst.nc", standardize_surface),
}

#: Files too large to ship, fetched by :func:`fetch_asset`: file name -> sha256.
_ASSETS: dict[str, str] = {
    "ocean_atlas_subset.nc": "598e82c3689272fdd1eff7a9e9d5706f4c08b5841dc028fbbc5c49374c81c8ff",
    "coads_climatology.cdf": "b94f55034d13d63f33e2153afddc0c5e00347076c35ab3e34937aec38ce9c4c1",
    "ostia_monthly.nc": "e40d33fef22eabae985dae0fcee7643e127394195cef55a2e40e1f5416d57f98",
    "atlantic_profiles.nc": "252920313593de4e4c8786f4c2390c983017d272969d54813fdf44cfe4b11f04",
}


def available_samples() -> list[str]:
    """Return the names :func:`open_sample` accepts."""
    return sorted(_SAMPLES)


def open_sample(name: str) -> xr.Dataset:
    """Open a sample dataset shipped with the package, in canonical form, without any download.

    Parameters
    ----------
    name
        ``"ocean_atlas"``: monthly climatological temperature, 12 months x 19 levels (0-1000 m)
        on a global 2 degree grid, as ``thetao(time, depth, latitude, longitude)``.
        ``"coads_sst"``: the COADS monthly climatological SST on a global 2 degree grid, as
        ``sst(time, latitude, longitude)``; an SST independent of the atlas.

    Returns
    -------
    xarray.Dataset
        The sample, loaded into memory (call ``.chunk()`` for dask), in degC, with land as NaN,
        climatological times as year-0 ``cftime`` dates and a ``history`` line for this call. Values
        were packed to int16 at 0.01 degC, so they are within 0.005 degC of the source files.

    Raises
    ------
    ValueError
        When ``name`` is not one of :func:`available_samples`.

    Examples
    --------
    >>> import xdepthrecon
    >>> cube = xdepthrecon.open_sample("ocean_atlas")
    >>> cube.thetao.dims
    ('time', 'depth', 'latitude', 'longitude')
    """
    if name not in _SAMPLES:
        raise ValueError(f"unknown sample {name!r}; available samples are: {', '.join(available_samples())}.")
    file_name, canonical = _SAMPLES[name]
    resource = importlib.resources.files("xdepthrecon") / "data" / file_name
    with importlib.resources.as_file(resource) as path, xr.open_dataset(path, decode_times=False) as stored:
        sample = canonical(_decode_year_zero_time(stored)).load()
    sample.attrs = with_history(sample.attrs, describe_call("xdepthrecon.open_sample", name=name))
    return sample


def _decode_year_zero_time(ds: xr.Dataset) -> xr.Dataset:
    """Decode a climatological time axis dated from year 0 with cftime (pandas cannot represent it)."""
    time = ds["time"]
    dates = cftime.num2date(time.values, time.attrs["units"], calendar=time.attrs["calendar"], has_year_zero=True)
    return ds.assign_coords(time=("time", dates))


def fetch_asset(name: str) -> pathlib.Path:
    """Return the local path of a registered data file, downloading it into the cache if needed.

    The files have no public host yet: set the environment variable ``XDEPTHRECON_DATA_URL``
    to the folder that holds them, as a URL (``https://mirror.example/xdepthrecon/``) or a
    local folder (``file:///path/to/shared/data``). A file already in the cache with the right
    sha256 is used without any download, so no URL is needed once it is there.

    Parameters
    ----------
    name
        One of ``"ocean_atlas_subset.nc"`` (the full monthly atlas, 15 MB),
        ``"coads_climatology.cdf"`` (COADS surface climatology, all variables),
        ``"ostia_monthly.nc"`` (OSTIA monthly SST, equatorial band) and
        ``"atlantic_profiles.nc"`` (tropical Atlantic potential temperature on 40 levels).

    Returns
    -------
    pathlib.Path
        The file in the cache folder: ``$XDEPTHRECON_CACHE`` when set, otherwise
        ``pooch.os_cache("xdepthrecon")``.

    Raises
    ------
    ValueError
        When ``name`` is not registered, the URL's protocol is not supported, or the downloaded
        file does not have the registered sha256 (it is then not kept in the cache).
    RuntimeError
        When the file must be downloaded but ``XDEPTHRECON_DATA_URL`` is not set.
    FileNotFoundError
        When a ``file://`` URL names a file that does not exist.

    Examples
    --------
    >>> import os, xdepthrecon
    >>> os.environ["XDEPTHRECON_DATA_URL"] = "file:///path/to/shared/data"  # doctest: +SKIP
    >>> path = xdepthrecon.fetch_asset("ostia_monthly.nc")  # doctest: +SKIP
    """
    if name not in _ASSETS:
        raise ValueError(f"unknown asset {name!r}; registered assets are: {', '.join(sorted(_ASSETS))}.")
    base_url = os.environ.get(DATA_URL_VARIABLE, "")
    if base_url and not base_url.endswith("/"):
        base_url += "/"
    registry = pooch.create(
        path=pooch.os_cache("xdepthrecon"),
        base_url=base_url,
        registry={file: f"sha256:{digest}" for file, digest in _ASSETS.items()},
        env=CACHE_VARIABLE,
    )
    if not base_url:
        return _cached_or_raise(pathlib.Path(registry.abspath) / name, _ASSETS[name])
    downloader = _downloader(base_url)
    try:
        return pathlib.Path(registry.fetch(name, downloader=downloader))
    except ValueError as error:
        (pathlib.Path(registry.abspath) / name).unlink(missing_ok=True)
        raise ValueError(
            f"could not fetch {name!r} from {registry.get_url(name)} with the registered sha256 {_ASSETS[name]}: "
            f"{error} Nothing was kept in {registry.abspath}. Point {DATA_URL_VARIABLE} to a folder holding the "
            "original file (xdepthrecon/data/README.md says where it comes from) and try again."
        ) from error


def _cached_or_raise(path: pathlib.Path, digest: str) -> pathlib.Path:
    """Return ``path`` if it holds the registered file, else explain how to tell us where to download it."""
    if path.is_file() and pooch.file_hash(str(path)) == digest:
        return path
    raise RuntimeError(
        f"{path.name!r} is not in the cache {path.parent} and there is no public host for xdepthrecon's data "
        f"files yet: set the environment variable {DATA_URL_VARIABLE} to a mirror URL of the folder holding them, "
        f"or to a local copy such as {DATA_URL_VARIABLE}=file:///path/to/shared/data"
    )


def _downloader(base_url: str) -> Callable[[str, str | IO[bytes], Any], None] | None:
    """Choose how to download from ``base_url``: ``None`` lets pooch pick its own downloader."""
    scheme = urllib.parse.urlparse(base_url).scheme
    if scheme == "file":
        return _copy_local_file
    if scheme in _POOCH_PROTOCOLS:
        return None
    raise ValueError(
        f"{DATA_URL_VARIABLE}={base_url!r} uses a protocol we cannot download from ({scheme or 'none'!r}); "
        f"use a URL starting with one of {', '.join(p + ':' for p in ('file', *_POOCH_PROTOCOLS))}."
    )


def _copy_local_file(url: str, output_file: str | IO[bytes], pooch_instance: Any) -> None:
    """A pooch downloader for ``file://`` URLs: copy the file."""
    parsed = urllib.parse.urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise FileNotFoundError(
            f"{url!r} names a host ({parsed.netloc!r}); a file URL needs an absolute path, e.g. file:///data/"
        )
    source = pathlib.Path(urllib.request.url2pathname(parsed.path))
    if not source.is_file():
        raise FileNotFoundError(f"{source} (from {url}) does not exist; check {DATA_URL_VARIABLE}.")
    if isinstance(output_file, str):
        shutil.copyfile(source, output_file)
    else:
        with source.open("rb") as stream:
            shutil.copyfileobj(stream, output_file)
