"""Halo'd, tiled, batched application of local functions: chunking and tiling never show."""

from __future__ import annotations

import dask.array as dsa
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdepthrecon._halo import map_columns

HALO = 3


def box_filter_stack(batch: np.ndarray) -> np.ndarray:
    """Three zero-padded 3x3 box filters and a channel mix: receptive radius 3, like the AE encoder."""
    x = batch
    for _ in range(HALO):
        padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        x = sum(padded[:, :, i:i + x.shape[2], j:j + x.shape[3]] for i in range(3) for j in range(3)) / 9.0
        x = np.tanh(x)
    return np.stack([x.sum(axis=1), x[:, 0] - x[:, -1]], axis=1)


def reference(array: np.ndarray, periodic: bool) -> np.ndarray:
    """The function on the whole array at once (wrapped by a halo in longitude when periodic)."""
    if not periodic:
        return box_filter_stack(array)
    wrapped = np.concatenate([array[..., -HALO:], array, array[..., :HALO]], axis=-1)
    return box_filter_stack(wrapped)[..., HALO:-HALO]


@settings(max_examples=20, deadline=None)
@given(
    chunk_y=st.integers(3, 20),
    chunk_x=st.integers(3, 24),
    tile=st.integers(4, 16),
    periodic=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_chunked_and_tiled_equal_whole_array(chunk_y, chunk_x, tile, periodic, seed):
    array = np.random.default_rng(seed).standard_normal((2, 4, 17, 23)).astype(np.float32)
    expected = reference(array, periodic)
    eager = map_columns(array, box_filter_stack, 2, HALO, periodic, tile=tile, batch_size=3)
    np.testing.assert_allclose(eager, expected, rtol=1e-5, atol=1e-6)
    lazy = map_columns(dsa.from_array(array, chunks=(1, 2, chunk_y, chunk_x)), box_filter_stack, 2, HALO, periodic,
                       tile=tile, batch_size=5)
    assert isinstance(lazy, dsa.Array)
    np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-5, atol=1e-6)


def test_periodic_result_has_no_seam_at_the_dateline():
    x = np.linspace(0, 2 * np.pi, 36, endpoint=False)
    array = np.broadcast_to(np.sin(x), (1, 4, 10, 36)).astype(np.float32).copy()
    rolled = np.roll(array, 7, axis=-1)
    out = map_columns(dsa.from_array(array, chunks=(1, 4, 5, 12)), box_filter_stack, 2, HALO, True).compute()
    out_rolled = map_columns(rolled, box_filter_stack, 2, HALO, True)
    np.testing.assert_allclose(np.roll(out, 7, axis=-1), out_rolled, rtol=1e-5, atol=1e-6)


def test_calls_are_batched():
    calls = []

    def counting(batch):
        calls.append(batch.shape[0])
        return box_filter_stack(batch)

    array = np.zeros((6, 4, 32, 32), dtype=np.float32)
    map_columns(array, counting, 2, HALO, False, tile=16, batch_size=8)
    assert max(calls) == 8 and len(calls) < 6 * 4


@pytest.mark.parametrize("periodic", [True, False])
def test_tiny_chunks_are_merged_to_hold_the_halo(periodic):
    array = np.random.default_rng(1).standard_normal((1, 4, 9, 10)).astype(np.float32)
    lazy = map_columns(dsa.from_array(array, chunks=(1, 1, 2, 2)), box_filter_stack, 2, HALO, periodic)
    np.testing.assert_allclose(lazy.compute(), reference(array, periodic), rtol=1e-5, atol=1e-6)
