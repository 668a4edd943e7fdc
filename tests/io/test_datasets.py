"""Tests of the packaged samples (open_sample) and of the pooch registry of larger files (fetch_asset)."""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import cftime
import numpy as np
import pytest
import xarray as xr

import xdepthrecon
from xdepthrecon.io import datasets

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
PACKAGED = REPO / "xdepthrecon" / "data"

#: sample name -> (packaged file, shared source file, how the source is standardised)
SOURCES = {
    "ocean_atlas": ("ocean_atlas.nc", "ocean_atlas_subset.nc", lambda raw: xdepthrecon.standardize(raw, units="degC")),
    "coads_sst": (
        "coads_sst.nc", "coads_climatology.cdf", lambda raw: xdepthrecon.standardize_surface(raw, variable="SST")
    ),
}


def _shared(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{path} is not here (the real data lives in <repo>/../shared/data)")
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _packing_step(file_name: str) -> float:
    with xr.open_dataset(PACKAGED / file_name, decode_times=False) as stored:
        (variable,) = stored.data_vars
        return float(stored[variable].encoding["scale_factor"])


# --- open_sample ------------------------------------------------------------------------------------------


def test_available_samples() -> None:
    assert datasets.available_samples() == ["coads_sst", "ocean_atlas"]


@pytest.mark.parametrize(
    ("name", "variable", "dims"),
    [
        ("ocean_atlas", "thetao", ("time", "depth", "latitude", "longitude")),
        ("coads_sst", "sst", ("time", "latitude", "longitude")),
    ],
)
def test_open_sample_is_canonical(name: str, variable: str, dims: tuple[str, ...]) -> None:
    ds = datasets.open_sample(name)
    da = ds[variable]
    assert list(ds.data_vars) == [variable]
    assert da.dims == dims
    assert da.shape == tuple({"time": 12, "depth": 19, "latitude": 90, "longitude": 180}[dim] for dim in dims)
    assert da.attrs["units"] == "degC"
    assert da.dtype == np.float32
    lon = ds.longitude.values
    assert np.all(np.diff(lon) > 0) and lon.min() >= -180 and lon.max() < 180
    assert np.all(np.diff(ds.latitude.values) > 0)
    assert isinstance(ds.time.values[0], cftime.datetime)
    assert [t.month for t in ds.time.values] == list(range(1, 13))
    assert ds.attrs["history"].splitlines()[0].endswith(
        f"xdepthrecon.open_sample(name={name!r}) (xdepthrecon {xdepthrecon.__version__})")
    assert "scripts/make_sample_data.py" in ds.attrs["history"]
    values = da.values
    assert np.isnan(values).any() and -3 <= np.nanmin(values) and np.nanmax(values) < 36


def test_ocean_atlas_depths_and_land() -> None:
    cube = datasets.open_sample("ocean_atlas")
    assert cube.depth.values[0] == 0 and cube.depth.values[-1] == 1000 and np.all(np.diff(cube.depth.values) > 0)
    surface = cube.thetao.isel(time=0, depth=0)
    assert np.isnan(surface.sel(latitude=0.5, longitude=24.5).item())  # the Congo basin is land
    assert 25 < surface.sel(latitude=0.5, longitude=-151.5).item() < 31  # the warm equatorial Pacific
    ocean_surface = np.isfinite(cube.thetao.isel(depth=0)).sum().item()
    ocean_deep = np.isfinite(cube.thetao.isel(depth=-1)).sum().item()
    assert ocean_deep < ocean_surface  # land grows with depth


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_sample_equals_standardised_source(name: str) -> None:
    packaged, source, canonical = SOURCES[name]
    with xr.open_dataset(_shared(source), decode_times=False) as raw:
        expected = canonical(raw).load()
    sample = datasets.open_sample(name)
    (variable,) = sample.data_vars
    step = _packing_step(packaged)
    got, want = sample[variable].values, expected[variable].values
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ocean = np.isfinite(want)
    assert np.max(np.abs(got[ocean] - want[ocean])) <= step / 2 + 1e-5  # half a step, up to float32 rounding
    for coord in expected.coords:
        np.testing.assert_array_equal(sample[coord].values, expected[coord].values)
        assert sample[coord].attrs == expected[coord].attrs
    assert sample[variable].attrs == expected[variable].attrs


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_packaged_time_axis_decodes_to_year_zero_climatology(name: str) -> None:
    file_name = SOURCES[name][0]
    with xr.open_dataset(PACKAGED / file_name, decode_times=False) as stored:
        assert stored.time.attrs["calendar"] == "proleptic_gregorian"
        assert stored.time.attrs["units"].startswith("hours since 0000-01-01")
        (variable,) = stored.data_vars
        assert stored[variable].encoding["dtype"] == np.int16
        assert stored[variable].encoding["zlib"]
        assert stored.attrs["source"] and stored.attrs["license"] and stored.attrs["references"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xr.SerializationWarning)  # pandas cannot hold year 0; cftime is used
        with xr.open_dataset(PACKAGED / file_name) as plain:
            decoded = plain.time.values
    first = decoded[0]
    assert (first.year, first.month, first.day, first.hour) == (0, 1, 16, 6)
    np.testing.assert_array_equal(decoded, datasets.open_sample(name).time.values)


def test_open_sample_unknown_name_lists_the_names() -> None:
    with pytest.raises(ValueError, match=r"unknown sample 'glorys'.*coads_sst, ocean_atlas"):
        datasets.open_sample("glorys")


def test_readme_states_source_licence_and_sha256_of_every_file() -> None:
    readme = (PACKAGED / "README.md").read_text(encoding="utf-8")
    for packaged, source, _ in SOURCES.values():
        assert f"## {packaged}" in readme
        assert f"sha256 `{_sha256((PACKAGED / packaged).read_bytes())}`" in readme
        assert source in readme and datasets._ASSETS[source] in readme
    assert "ferret-datasets 7.6.0" in readme and "MIT License" in readme and "Open Government Licence" in readme
    assert "scripts/make_sample_data.py" in readme


def test_make_sample_data_is_deterministic_and_matches_the_packaged_file(tmp_path, monkeypatch) -> None:
    _shared("coads_climatology.cdf")
    spec = importlib.util.spec_from_file_location("make_sample_data", REPO / "scripts" / "make_sample_data.py")
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)  # dataclasses look their module up there
    spec.loader.exec_module(script)
    (coads,) = [sample for sample in script.SAMPLES if sample.output == "coads_sst.nc"]
    for attempt in ("a", "b"):
        script.write(script.derive(coads, SHARED), coads.chunks, tmp_path / f"{attempt}.nc")
    assert (tmp_path / "a.nc").read_bytes() == (tmp_path / "b.nc").read_bytes()
    with xr.open_dataset(tmp_path / "a.nc", decode_times=False) as fresh, xr.open_dataset(
        PACKAGED / "coads_sst.nc", decode_times=False
    ) as packaged:
        xr.testing.assert_identical(fresh.load(), packaged.load())


# --- fetch_asset ------------------------------------------------------------------------------------------

ASSET = "tiny_asset.nc"
CONTENT = b"a registered asset, served for the test\n" * 100


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """A folder holding the test asset."""
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / ASSET).write_bytes(CONTENT)
    return folder


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Register the test asset and point the cache at an empty folder."""
    folder = tmp_path / "cache"
    monkeypatch.setitem(datasets._ASSETS, ASSET, _sha256(CONTENT))
    monkeypatch.setenv(datasets.CACHE_VARIABLE, str(folder))
    monkeypatch.delenv(datasets.DATA_URL_VARIABLE, raising=False)
    return folder


@pytest.fixture
def server(served: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 serving ``served``; yields its URL and the paths requested."""
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(served), **kwargs)

        def do_GET(self) -> None:
            requested.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(variable, "127.0.0.1,localhost")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", requested
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_fetch_asset_downloads_over_http_then_uses_the_cache(cache, server, monkeypatch) -> None:
    url, requested = server
    monkeypatch.setenv(datasets.DATA_URL_VARIABLE, url.rstrip("/"))  # with or without the final slash
    path = datasets.fetch_asset(ASSET)
    assert path == cache / ASSET and path.read_bytes() == CONTENT
    assert requested == [f"/{ASSET}"]
    assert datasets.fetch_asset(ASSET) == path
    assert requested == [f"/{ASSET}"]  # the second call did not ask the server
    monkeypatch.delenv(datasets.DATA_URL_VARIABLE)
    assert datasets.fetch_asset(ASSET) == path  # offline once cached


def test_fetch_asset_replaces_a_corrupt_cached_file(cache, server, monkeypatch) -> None:
    url, requested = server
    cache.mkdir()
    (cache / ASSET).write_bytes(b"truncated")
    monkeypatch.setenv(datasets.DATA_URL_VARIABLE, url)
    assert datasets.fetch_asset(ASSET).read_bytes() == CONTENT
    assert requested == [f"/{ASSET}"]


def test_fetch_asset_checksum_mismatch_is_clear_and_keeps_nothing(cache, server, served, monkeypatch) -> None:
    url, _ = server
    (served / ASSET).write_bytes(b"not the registered file")
    monkeypatch.setenv(datasets.DATA_URL_VARIABLE, url)
    with pytest.raises(ValueError, match=rf"{ASSET}.*{_sha256(CONTENT)}.*Nothing was kept.*XDEPTHRECON_DATA_URL"):
        datasets.fetch_asset(ASSET)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_fetch_asset_without_url_says_what_to_set(cache) -> None:
    with pytest.raises(RuntimeError, match=r"XDEPTHRECON_DATA_URL.*file://"):
        datasets.fetch_asset(ASSET)
    assert not (cache / ASSET).exists()


def test_fetch_asset_from_a_file_url(cache, served, monkeypatch) -> None:
    monkeypatch.setenv(datasets.DATA_URL_VARIABLE, served.as_uri())
    assert datasets.fetch_asset(ASSET).read_bytes() == CONTENT


def test_fetch_asset_file_url_to_a_missing_folder(cache, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(datasets.DATA_URL_VARIABLE, (tmp_path / "nowhere").as_uri())
    with pytest.raises(FileNotFoundError, match="nowhere"):
        datasets.fetch_asset(ASSET)
    assert not (cache / ASSET).exists()


def test_fetch_asset_rejects_unknown_names_and_protocols(cache, monkeypatch) -> None:
    with pytest.raises(ValueError, match=r"unknown asset 'glorys.nc'.*atlantic_profiles.nc"):
        datasets.fetch_asset("glorys.nc")
    monkeypatch.setenv(datasets.DATA_URL_VARIABLE, "s3://bucket/xdepthrecon")
    with pytest.raises(ValueError, match=r"protocol.*'s3'.*https:"):
        datasets.fetch_asset(ASSET)


def test_registered_hashes_are_those_of_the_shared_files() -> None:
    for name, digest in datasets._ASSETS.items():
        assert _sha256(_shared(name).read_bytes()) == digest, name


def test_fetch_asset_real_file_from_shared_data(cache, monkeypatch) -> None:
    source = _shared("atlantic_profiles.nc")
    monkeypatch.setenv(datasets.DATA_URL_VARIABLE, SHARED.as_uri())
    path = datasets.fetch_asset("atlantic_profiles.nc")
    assert path.parent == cache and path.read_bytes() == source.read_bytes()
