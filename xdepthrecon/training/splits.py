"""Training/validation splits of a :class:`~xdepthrecon.training.batches.PatchDataset`'s windows.

A validation set only measures what a model does on new data when nothing in training is a near copy of it.
Snapshots a few weeks apart share their eddies and fronts, so where the windows span enough time steps,
validation is held out as a few contiguous stretches of time, with one time step on each side of every stretch
used for neither (``GAP_STEPS``). With too few time steps, whole windows are held out at random, cut into
smaller spatial blocks first where one snapshot is all there is; :func:`split_by_region` holds out the same
regions at every time step instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Stretches of time validation is spread over at most (seasons and years apart on a long record).
MAX_STRETCHES = 4
#: Time steps dropped on each side of a held-out stretch: a snapshot next to validation trains nothing.
GAP_STEPS = 1


@dataclass(frozen=True)
class Window:
    """A block of one time step: ``time`` index and latitude/longitude index ranges (start, stop)."""

    time: int
    rows: tuple[int, int]
    columns: tuple[int, int]

    @property
    def latitude(self) -> slice:
        """Latitude index slice."""
        return slice(*self.rows)

    @property
    def longitude(self) -> slice:
        """Longitude index slice."""
        return slice(*self.columns)


def held_out_count(val_fraction: float, count: int) -> int:
    """Items held out for validation: ``val_fraction`` of ``count``, at least one when the fraction is not 0."""
    held = int(round(val_fraction * count))
    return max(held, 1) if val_fraction > 0 else 0


def pieces(span: tuple[int, int], count: int) -> list[tuple[int, int]]:
    """``span`` (start, stop) cut into ``count`` contiguous pieces of (nearly) equal length."""
    edges = np.linspace(span[0], span[1], count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def finer(window: Window, needed: int, patch: int) -> list[Window]:
    """``window`` cut into at least ``needed`` spatial blocks of at least a patch each (as many as fit when
    fewer do), as square in cells as the window allows."""
    height, width = window.rows[1] - window.rows[0], window.columns[1] - window.columns[0]
    most_rows, most_columns = max(1, height // patch), max(1, width // patch)
    shapes = [(a, min(most_columns, -(-needed // a))) for a in range(1, most_rows + 1)]
    shapes = [s for s in shapes if s[0] * s[1] >= needed] or [(most_rows, most_columns)]
    rows, columns = min(shapes, key=lambda s: (s[0] * s[1], abs(np.log(height * s[1] / (width * s[0])))))
    return [Window(window.time, la, lo) for la in pieces(window.rows, rows) for lo in pieces(window.columns, columns)]


def split_windows(windows: Sequence[Window], val_fraction: float, patch_size: int,
                  seed: int) -> tuple[list[Window], list[Window]]:
    """Split ``windows`` into (training, validation): stretches of time where the windows span at least
    ``1 / val_fraction`` time steps (:func:`held_out_stretches`), else whole windows at random.

    When the windows are too few to hold ``val_fraction`` of them out and keep some for training (one
    snapshot whose grid is one window), each is first cut into smaller spatial blocks that do not overlap
    (at least ``patch_size`` cells each, or half that where whole patches leave too few; enough for one block to
    be at most ``val_fraction`` of them where the grid allows): validation is then held out in space, as whole
    blocks, and datasets of these windows draw patches of at most a block's side.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    times = sorted({w.time for w in windows})
    steps = int(round(val_fraction * len(times)))
    if 1 <= steps < len(times):
        return held_out_stretches(windows, steps, seed)
    windows = list(windows)
    if held_out_count(val_fraction, len(windows)) >= len(windows):
        needed = -(-int(np.ceil(1.0 / val_fraction - 1e-9)) // len(windows))
        for block in (patch_size, max(patch_size // 2, 1)):  # blocks of half a patch if need be
            cut = [piece for window in windows for piece in finer(window, needed, block)]
            if held_out_count(val_fraction, len(cut)) < len(cut):
                break
        windows = cut
    count = held_out_count(val_fraction, len(windows))
    if count >= len(windows):
        raise ValueError(f"val_fraction={val_fraction} leaves no training windows out of {len(windows)} "
                         f"(blocks of at least half of patch_size={patch_size} cells in each time step); lower "
                         "val_fraction (0 trains without validation), use a smaller patch_size or a larger cube.")
    order = np.random.default_rng(seed).permutation(len(windows))
    return [windows[i] for i in sorted(order[count:])], [windows[i] for i in sorted(order[:count])]


def held_out_stretches(windows: Sequence[Window], steps: int, seed: int) -> tuple[list[Window], list[Window]]:
    """Hold out every window of ``steps`` of the windows' time steps, as up to ``MAX_STRETCHES`` contiguous
    stretches (one drawn at random within each of as many equal parts of the record), and train on the others
    except those within ``GAP_STEPS`` time indices of a held-out one (kept when they are all that would train)."""
    times = sorted({w.time for w in windows})
    stretches = min(steps, MAX_STRETCHES)
    random = np.random.default_rng(seed)
    held = set()
    for (start, stop), (low, high) in zip(pieces((0, len(times)), stretches), pieces((0, steps), stretches)):
        first = start + int(random.integers(0, stop - start - (high - low) + 1))
        held.update(range(first, first + high - low))
    validation = {times[i] for i in held}
    dropped = {t for t in times if t not in validation and any(abs(t - v) <= GAP_STEPS for v in validation)}
    training = set(times) - validation - dropped or set(times) - validation
    return [w for w in windows if w.time in training], [w for w in windows if w.time in validation]


def split_by_region(windows: Sequence[Window], val_fraction: float, patch_size: int,
                    seed: int) -> tuple[list[Window], list[Window]]:
    """Split ``windows`` into (training, validation) by place: whole spatial blocks are held out at every time
    step, so validation scores water the model never saw.

    The grid's blocks are the windows' spatial extents, cut finer (at least a patch each) until
    ``val_fraction`` of them can be held out with some left for training; the held-out blocks are drawn
    at random (seeded). A grid too small for two blocks is split by :func:`split_windows` instead.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1) to hold out regions, got {val_fraction}")
    spans = sorted({(w.rows, w.columns) for w in windows})
    needed = int(np.ceil(1.0 / val_fraction - 1e-9)) + 1
    if len(spans) < needed:
        cut = -(-needed // len(spans))
        spans = [(b.rows, b.columns) for rows, columns in spans for b in finer(Window(0, rows, columns), cut,
                                                                                 patch_size)]
    if len(spans) < 2:
        return split_windows(windows, val_fraction, patch_size, seed)
    count = min(held_out_count(val_fraction, len(spans)), len(spans) - 1)
    order = np.random.default_rng(seed).permutation(len(spans))
    held = {spans[i] for i in order[:count]}
    times = sorted({w.time for w in windows})
    every = [Window(t, rows, columns) for t in times for rows, columns in spans]
    return ([w for w in every if (w.rows, w.columns) not in held], [w for w in every if (w.rows, w.columns) in held])
