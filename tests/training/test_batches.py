"""PatchDataset and PrefetchLoader: aligned patches, window reuse, reproducibility, land filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from xdepthrecon._halo import interior_of
from xdepthrecon.training.batches import PatchDataset, PrefetchLoader, collate

from tests.conftest import glorys_like


def _fields(chunked: bool = False):
    cube = glorys_like(times=3, depths=4, lats=40, lons=48, seed=3)
    if chunked:
        cube = cube.chunk({"time": 1, "latitude": 20, "longitude": 24})
    index = xr.zeros_like(cube.thetao.isel(depth=0)) + np.arange(48) + 1000 * np.arange(40)[:, None]
    return cube, {"y": cube.thetao, "index": index}


def test_patches_are_aligned_across_fields_and_carry_position():
    cube, fields = _fields()
    dataset = PatchDataset(fields, patch_size=8, max_land_fraction=1.0)
    for item in dataset:
        rows = (item["index"][0] // 1000).numpy()
        columns = (item["index"][0] % 1000).numpy()
        top, left = int(rows[0, 0]), int(columns[0, 0])
        assert np.all(np.diff(rows, axis=0) == 1) and np.all(np.diff(columns, axis=1) == 1)
        assert item["y"].shape == (4, 8, 8)
        expected = cube.thetao.values[:, :, top:top + 8, left:left + 8]
        assert any(np.array_equal(item["y"].numpy(), expected[t], equal_nan=True) for t in range(3))
        assert float(item["latitude"]) == pytest.approx(cube.latitude.values[top + 4])
        assert float(item["longitude"]) == pytest.approx(cube.longitude.values[left + 4])
        assert 1 <= float(item["day_of_year"]) <= 3
        np.testing.assert_allclose(item["cell_latitude"].numpy(), cube.latitude.values[top:top + 8], rtol=1e-6)
        np.testing.assert_allclose(item["cell_longitude"].numpy(), cube.longitude.values[left:left + 8], rtol=1e-6)


def test_cell_coordinates_are_flipped_with_the_patch():
    cube, fields = _fields()
    dataset = PatchDataset(fields, patch_size=8, max_land_fraction=1.0, augment=True, seed=2)
    flipped = set()
    for item in dataset:
        rows, columns = (item["index"][0] // 1000).long().numpy(), (item["index"][0] % 1000).long().numpy()
        np.testing.assert_allclose(item["cell_latitude"].numpy(), cube.latitude.values[rows[:, 0]], rtol=1e-6)
        np.testing.assert_allclose(item["cell_longitude"].numpy(), cube.longitude.values[columns[0]], rtol=1e-6)
        flipped |= {("rows", rows[0, 0] > rows[-1, 0]), ("columns", columns[0, 0] > columns[0, -1])}
    assert ("rows", True) in flipped and ("columns", True) in flipped


@pytest.mark.parametrize("augment", [False, True])
def test_a_halo_surrounds_the_patch_within_its_window(augment):
    cube, fields = _fields(chunked=True)  # windows of 20 x 24 cells: a box of 8 + 2 * 6 = 20 fits every window
    dataset = PatchDataset(fields, patch_size=8, max_land_fraction=1.0, halo=6, augment=augment, seed=4)
    items = list(dataset)
    offsets = set()
    for item in items:
        rows, columns = (item["index"][0] // 1000).long().numpy(), (item["index"][0] % 1000).long().numpy()
        assert item["y"].shape == (4, 20, 20) and item["cell_latitude"].shape == (20,)
        np.testing.assert_allclose(item["cell_latitude"].numpy(), cube.latitude.values[rows[:, 0]], rtol=1e-6)
        top, left, height, width = item["interior"].tolist()
        assert (height, width) == (8, 8) and 0 <= top <= 12 and 0 <= left <= 12
        offsets.add((top, left))
        patch_rows, patch_columns = rows[top:top + 8, 0], columns[0, left:left + 8]
        # the patch's centre is its own, and the box never crosses a window (chunk) edge
        assert float(item["latitude"]) == pytest.approx(cube.latitude.values[min(patch_rows) + 4])
        assert float(item["longitude"]) == pytest.approx(cube.longitude.values[min(patch_columns) + 4])
        assert len({r // 20 for r in rows[:, 0]}) == 1 and len({c // 24 for c in columns[0]}) == 1
        # the halo reaches 6 cells beyond the patch wherever the window lets it
        assert min(top, 12 - top) == min(6, min(patch_rows) % 20, 19 - max(patch_rows) % 20)
    assert len(offsets) > 1
    batch = collate(items[:5])
    cut = interior_of(batch["index"], batch["interior"])
    assert cut.shape == (5, 1, 8, 8)
    for box, patch, (top, left, _, _) in zip(batch["index"], cut, batch["interior"].tolist()):
        assert torch.equal(patch, box[:, top:top + 8, left:left + 8])


def test_without_a_halo_the_box_is_the_patch():
    _, fields = _fields()
    batch = collate(list(PatchDataset(fields, patch_size=8, max_land_fraction=1.0)))
    assert batch["y"].shape[-2:] == (8, 8) and torch.equal(interior_of(batch["index"], batch["interior"]), batch["index"])


def test_same_seed_and_epoch_give_the_same_batches_twice():
    _, fields = _fields(chunked=True)
    dataset = PatchDataset(fields, patch_size=8, augment=True, seed=7)
    loader = PrefetchLoader(dataset, batch_size=5)
    first = [b["y"] for b in loader]
    second = [b["y"] for b in loader]
    assert len(first) == len(loader) and all(torch.equal(a.nan_to_num(), b.nan_to_num()) for a, b in zip(first, second))
    dataset.set_epoch(1)
    third = [b["y"] for b in loader]
    assert not all(torch.equal(a.nan_to_num(), b.nan_to_num()) for a, b in zip(first, third))


def test_each_window_is_read_once_per_epoch(monkeypatch):
    _, fields = _fields(chunked=True)
    dataset = PatchDataset(fields, patch_size=8, patches_per_window=6, max_land_fraction=1.0)
    reads = []
    original = dataset.read
    monkeypatch.setattr(dataset, "read", lambda window: reads.append(window) or original(window))
    items = list(dataset)
    assert len(dataset.all_windows()) == 3 * 2 * 2
    assert len(reads) == 12 and len(set(reads)) == 12
    assert len(items) == 12 * 6


def test_land_patches_are_skipped():
    cube, _ = _fields()
    land = cube.thetao.where(cube.longitude > 0)
    dataset = PatchDataset({"y": land}, patch_size=8, max_land_fraction=0.2)
    for item in dataset:
        assert torch.isnan(item["y"][0]).float().mean() <= 0.2


def test_split_holds_out_whole_windows_of_a_short_record():
    _, fields = _fields(chunked=True)  # 3 time steps: too few to hold out a tenth of them
    dataset = PatchDataset(fields, patch_size=8)
    train, val = dataset.split(0.1)
    assert len(val) == 1 and len(train) == 11 and not set(train) & set(val)
    with pytest.raises(ValueError, match="leaves no training windows"):
        dataset.split(0.99)


def test_a_grid_smaller_than_the_patch_gives_patches_of_its_smaller_side():
    cube, fields = _fields()
    side = min(cube.sizes["latitude"], cube.sizes["longitude"])
    dataset = PatchDataset(fields, patch_size=side + 40)
    assert dataset.patch_size == side
    assert all(item["y"].shape[-2:] == (side, side) for item in dataset)
    one = {name: field.isel(time=[0]) for name, field in fields.items()}  # one window, too small to cut in patches
    train, val = PatchDataset(one, patch_size=side + 40).split(0.1)  # so: blocks of half a patch
    assert len(val) >= 1 and len(train) >= 2
    blocks = PatchDataset(one, patch_size=side + 40, windows=train)
    assert blocks.patch_size == min(min(b - a for a, b in (w.rows, w.columns)) for w in train) < side
    assert all(item["y"].shape[-2:] == (blocks.patch_size,) * 2 for item in blocks)


def test_errors_are_clear():
    cube, fields = _fields()
    with pytest.raises(ValueError, match="not on the grid of the first field"):
        PatchDataset({"y": cube.thetao, "z": cube.thetao.isel(latitude=slice(0, 10))}, patch_size=8)


def test_loader_reraises_reader_errors():
    _, fields = _fields()
    dataset = PatchDataset(fields, patch_size=8)

    def broken(window):
        raise OSError("disk gone")

    dataset.read = broken
    with pytest.raises(OSError, match="disk gone"):
        list(PrefetchLoader(dataset, batch_size=2))


def test_split_in_space_holds_out_the_same_regions_at_every_time_step():
    cube = glorys_like(times=3, depths=4, lats=40, lons=80, seed=0)
    dataset = PatchDataset({"y": cube.thetao}, patch_size=16, seed=2)
    training, validation = dataset.split_in_space(0.2)
    held = {(w.rows, w.columns) for w in validation}
    kept = {(w.rows, w.columns) for w in training}
    assert held and kept and not held & kept
    assert {w.time for w in validation} == {0, 1, 2} and len(validation) == 3 * len(held)
    cells = sum((r[1] - r[0]) * (c[1] - c[0]) for r, c in held | kept)
    assert cells == 40 * 80  # the blocks tile the grid
    assert all(r[1] - r[0] >= 16 and c[1] - c[0] >= 16 for r, c in held | kept)


def test_split_in_space_falls_back_to_windows_on_a_grid_of_one_block():
    cube = glorys_like(times=5, depths=4, lats=16, lons=16, seed=0)
    training, validation = PatchDataset({"y": cube.thetao}, patch_size=16).split_in_space(0.2)
    assert len(validation) == 1 and 2 <= len(training) <= 3  # a time step held out, its neighbours dropped
