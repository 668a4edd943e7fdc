"""Validation held out in stretches of time on a long record, apart from training by a time step each side."""

from __future__ import annotations

import numpy as np
import pytest

from xdepthrecon.training.batches import PatchDataset
from xdepthrecon.training.splits import GAP_STEPS, MAX_STRETCHES, Window, split_windows

from tests.conftest import glorys_like


def _stretches(times):
    """Contiguous runs of sorted time indices, as (first, last)."""
    runs, times = [], sorted(times)
    for t in times:
        if runs and t == runs[-1][1] + 1:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    return [tuple(r) for r in runs]


@pytest.mark.parametrize("steps,fraction", [(240, 0.1), (37, 0.2), (12, 0.1)])
def test_a_long_record_holds_out_stretches_of_time_with_a_gap_each_side(steps, fraction):
    spans = [((0, 32), (0, 32)), ((0, 32), (32, 64))]
    windows = [Window(t, rows, columns) for t in range(steps) for rows, columns in spans]
    training, validation = split_windows(windows, fraction, 32, seed=3)
    held = {w.time for w in validation}
    trained = {w.time for w in training}
    assert len(held) == round(fraction * steps) and not held & trained
    assert len(validation) == 2 * len(held)  # every window of a held-out time step
    runs = _stretches(held)
    assert len(runs) == min(len(held), MAX_STRETCHES)
    lengths = [b - a + 1 for a, b in runs]
    assert max(lengths) - min(lengths) <= 1  # stretches of (nearly) equal length
    for first, last in runs:  # no training snapshot next to validation
        assert not trained & set(range(first - GAP_STEPS, last + GAP_STEPS + 1))
    dropped = set(range(steps)) - held - trained
    assert len(dropped) <= 2 * GAP_STEPS * len(runs)
    assert split_windows(windows, fraction, 32, seed=3) == (training, validation)  # seeded
    assert split_windows(windows, fraction, 32, seed=4) != (training, validation)


def test_the_stretches_spread_over_the_record():
    windows = [Window(t, (0, 32), (0, 32)) for t in range(400)]
    _, validation = split_windows(windows, 0.1, 32, seed=0)
    runs = _stretches(w.time for w in validation)
    parts = [int(first // 100) for first, _ in runs]  # one stretch in each quarter of the record
    assert parts == [0, 1, 2, 3]


def test_a_short_record_keeps_training_when_the_gap_would_take_it_all():
    windows = [Window(t, (0, 32), (0, 32)) for t in range(3)]
    outcomes = set()
    for seed in range(20):
        training, validation = split_windows(windows, 0.4, 32, seed=seed)
        held, trained = validation[0].time, {w.time for w in training}
        assert len(validation) == 1 and trained
        outcomes.add((held, tuple(sorted(trained))))
    # the middle step held out: both neighbours train, as nothing else would; an end step: its neighbour is dropped
    assert outcomes == {(0, (2,)), (1, (0, 2)), (2, (0,))}


def test_a_dataset_of_dated_snapshots_splits_in_time():
    cube = glorys_like(times=30, depths=3, lats=20, lons=20, seed=1)
    training, validation = PatchDataset({"y": cube.thetao}, patch_size=16).split(0.2)
    held = np.array(sorted({w.time for w in validation}))
    assert len(held) == 6 and len(_stretches(held)) == 4
    assert len(training) <= 30 - 6 and len(training) >= 30 - 6 - 2 * 4


@pytest.mark.parametrize("chunked", [False, True])
def test_time_steps_without_data_are_never_held_out(chunked):
    cube = glorys_like(times=24, depths=3, lats=20, lons=20, seed=2)
    empty = [1, 2, 5, 6, 7, 11, 12, 13, 17, 18, 22, 23]  # months held out for testing: NaN in the training cube
    values = cube.thetao.where(~cube.time.isin(cube.time[empty]))
    if chunked:
        values = values.chunk({"time": 1})
    dataset = PatchDataset({"y": values}, patch_size=16)
    assert dataset.times_with_data() == set(range(24)) - set(empty)
    for seed in range(5):
        training, validation = dataset.split(0.1, seed=seed)
        assert validation and not {w.time for w in training + validation} & set(empty)
        held = {w.time for w in validation}
        apart = {t for t in set(range(24)) - set(empty) - held if min(abs(t - v) for v in held) > GAP_STEPS}
        assert {w.time for w in training} == apart  # only a held-out step's neighbours in time are dropped
        assert len(list(PatchDataset({"y": values}, patch_size=16, windows=validation))) > 0
    with pytest.raises(ValueError, match="every time step of the training data is NaN"):
        PatchDataset({"y": values.isel(time=empty)}, patch_size=16).split(0.1)


@pytest.mark.parametrize("lats", [16, 48])
def test_a_split_in_space_leaves_out_time_steps_without_data(lats):
    """On a grid of several blocks regions are held out at the steps with data; on a grid of one block (the
    split falls back to time steps) an empty step is never the validation."""
    cube = glorys_like(times=6, depths=3, lats=lats, lons=16, seed=3)
    empty = [0, 2, 3, 5]
    values = cube.thetao.where(~cube.time.isin(cube.time[empty]))
    for seed in range(4):
        training, validation = PatchDataset({"y": values}, patch_size=16, seed=seed).split_in_space(0.2)
        assert validation and training
        assert not {w.time for w in training + validation} & set(empty)
