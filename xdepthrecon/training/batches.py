"""Training batches from (possibly dask-backed, larger than memory) gridded fields.

Patches are cut from *read windows*: one window (a spatial block of one time step, aligned with
the dask chunks where there are any) is read once and serves every patch drawn from it, instead of
one read per patch. Windows are visited in a seeded random order; a background thread reads ahead so
the model does not wait on the disk, and batches are moved to the device with non-blocking copies
from pinned memory when the device is CUDA.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping

import dask
import numpy as np
import torch
import xarray as xr

from xdepthrecon.training.splits import Window, split_by_region, split_windows

_SPATIAL = ("latitude", "longitude")


def _starts(size: int, window: int, patch: int) -> list[tuple[int, int]]:
    """Window (start, stop) along one axis: blocks of ``window`` that tile the axis without overlap, a last
    block shorter than ``patch`` joined to the one before it (so every block holds a patch)."""
    stops = list(range(window, size, window)) + [size]
    if len(stops) > 1 and stops[-1] - stops[-2] < patch:
        del stops[-2]
    return list(zip([0] + stops[:-1], stops))


def _chunk_window(field: xr.DataArray, axis: str, patch: int) -> int:
    """Window length along ``axis``: the dask chunk length (at least the patch), or 256 cells."""
    if field.chunks is None:
        return max(patch, 256)
    return max(patch, max(field.chunksizes[axis]))


class PatchDataset(torch.utils.data.IterableDataset):
    """Random patches of aligned gridded fields, read window by window.

    Parameters
    ----------
    fields
        Named DataArrays on one grid, each with dims ``(time, [channel], latitude, longitude)``
        (e.g. ``{"y": cube.thetao}``); they may be dask-backed.
    patch_size
        Patch height and width in grid cells, at most the smallest window's side (a grid smaller than the patch
        gives patches of its smaller side).
    patches_per_window
        Patches drawn from each window read; default: the window area over the patch area.
    max_land_fraction
        Patches with a larger fraction of land (columns where the first field's first channel is
        NaN) are skipped.
    augment
        Random flips of each patch along latitude and longitude.
    seed
        Seed of the window order and the crops; the same seed and epoch give the same patches.
    windows
        Explicit windows to draw from (e.g. a training/validation split from :meth:`windows`).
    shard
        ``(rank, world)``: in data-parallel training each of the ``world`` processes reads its own
        share of every epoch's windows, so the processes draw distinct patches.
    halo
        Cells of context read around each patch on every side, as far as its window reaches: each item is the
        patch within a box of ``patch_size + 2 * halo`` cells (at most the smallest window), the patch off centre
        where the box meets a window's edge (``xdepthrecon._halo.interior_of(values, batch["interior"])`` cuts the
        patch out).

    Notes
    -----
    Each item is a dict of float32 tensors ``{name: (channels, box, box)}`` (views of the window
    read, so not necessarily contiguous) with NaN left in place (land, below the bottom), plus ``latitude``
    and ``longitude`` of the patch centre (degrees), ``cell_latitude`` and ``cell_longitude`` ``(box,)`` of
    the box's rows and columns (flipped with it), ``day_of_year`` of its time step (NaN where the time
    axis has no dates) and ``interior`` (int64: first row, first column, rows and columns of the patch in the
    box). Without a halo the box is the patch.
    """

    def __init__(
        self,
        fields: Mapping[str, xr.DataArray],
        patch_size: int = 64,
        patches_per_window: int | None = None,
        max_land_fraction: float = 0.9,
        augment: bool = False,
        seed: int = 0,
        windows: list[Window] | None = None,
        shard: tuple[int, int] = (0, 1),
        halo: int = 0,
    ) -> None:
        super().__init__()
        if not fields:
            raise ValueError("PatchDataset needs at least one field, e.g. {'y': cube.thetao}.")
        self.fields = {name: _with_channel(name, field) for name, field in fields.items()}
        first = next(iter(self.fields.values()))
        for name, field in self.fields.items():
            if field.sizes["time"] != first.sizes["time"] or any(field.sizes[a] != first.sizes[a] for a in _SPATIAL):
                raise ValueError(f"field {name!r} is not on the grid of the first field: sizes {dict(field.sizes)} "
                                 f"vs {dict(first.sizes)}; align them first (e.g. xdepthrecon.align_sst).")
        self.max_land_fraction = max_land_fraction
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.shard = shard
        self.patch_size = patch_size  # all_windows reads it
        self._windows = windows if windows is not None else self.all_windows()
        if not self._windows:
            raise ValueError("no windows to draw patches from")
        patch_size = self.patch_size = min(patch_size, *(stop - start for w in self._windows
                                                         for start, stop in (w.rows, w.columns)))
        if halo < 0:
            raise ValueError(f"halo must be >= 0 cells, got {halo}")
        self.halo = halo
        self._box = tuple(min(patch_size + 2 * halo, min(stop - start for start, stop in spans))
                          for spans in ([w.rows for w in self._windows], [w.columns for w in self._windows]))
        area = np.mean([(w.latitude.stop - w.latitude.start) * (w.longitude.stop - w.longitude.start)
                        for w in self._windows])
        self.patches_per_window = patches_per_window or max(1, int(round(area / patch_size**2)))
        self._latitude = first["latitude"].values
        self._longitude = first["longitude"].values
        self._day_of_year = _day_of_year(first)

    def all_windows(self) -> list[Window]:
        """Every window of the grid: time steps x spatial blocks aligned with the dask chunks."""
        first = next(iter(self.fields.values()))
        lat_spans = _starts(first.sizes["latitude"], _chunk_window(first, "latitude", self.patch_size), self.patch_size)
        lon_spans = _starts(first.sizes["longitude"], _chunk_window(first, "longitude", self.patch_size),
                            self.patch_size)
        return [Window(t, la, lo) for t in range(first.sizes["time"])
                for la in lat_spans for lo in lon_spans]

    def split(self, val_fraction: float, seed: int | None = None) -> tuple[list[Window], list[Window]]:
        """Split this dataset's windows with data (:meth:`windows_with_data`) into (training, validation):
        contiguous stretches of time where they span enough time steps, else whole windows (see
        :func:`~xdepthrecon.training.splits.split_windows`)."""
        return split_windows(self.windows_with_data(), val_fraction, self.patch_size,
                             self.seed if seed is None else seed)

    def split_in_space(self, val_fraction: float, seed: int | None = None) -> tuple[list[Window], list[Window]]:
        """Split this dataset's windows with data (:meth:`windows_with_data`) into (training, validation) by
        place: whole spatial blocks are held out at every time step (see
        :func:`~xdepthrecon.training.splits.split_by_region`)."""
        return split_by_region(self.windows_with_data(), val_fraction, self.patch_size,
                               self.seed if seed is None else seed)

    def windows_with_data(self) -> list[Window]:
        """This dataset's windows at time steps with data: time steps all NaN in the first field's first channel
        (e.g. months held out for testing) go to neither side of a split, so validation is never an empty time
        step (one read of that channel)."""
        kept = self.times_with_data()
        windows = [w for w in self._windows if w.time in kept]
        if not windows:
            raise ValueError("every time step of the training data is NaN: nothing to train or validate on; check "
                             "the cube's values and any masking applied before training.")
        return windows

    def times_with_data(self) -> set[int]:
        """The time steps of this dataset's windows with at least one value in the first field's first channel
        (one read of that channel)."""
        first = next(iter(self.fields.values()))
        times = sorted({w.time for w in self._windows})
        level = first.isel({first.dims[1]: 0, "time": times})
        found = np.asarray(dask.compute(level.notnull().any(_SPATIAL).data)[0])
        return {t for t, value in zip(times, found) if value}

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch: the window order and crops depend on (seed, epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self._windows) // self.shard[1]) * self.patches_per_window

    def read(self, window: Window) -> dict[str, np.ndarray]:
        """Read every field over ``window`` in one compute: (channels, height, width) float32 each."""
        selections = [field.isel(time=window.time, latitude=window.latitude, longitude=window.longitude).data
                      for field in self.fields.values()]
        values = dask.compute(*selections)
        return {name: np.asarray(v, dtype=np.float32) for name, v in zip(self.fields, values)}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        worker = torch.utils.data.get_worker_info()
        order = rng.permutation(len(self._windows))[self.shard[0]::self.shard[1]]
        if worker is not None:
            order = order[worker.id::worker.num_workers]
        for index in order:
            window = self._windows[index]
            block = self.read(window)
            yield from self._patches(window, block, rng)

    def _patches(self, window: Window, block: dict[str, np.ndarray], rng: np.random.Generator):
        first = next(iter(block.values()))
        height, width = first.shape[-2:]
        land = np.isnan(first[0])
        size = self.patch_size
        box_rows, box_columns = self._box
        for _ in range(self.patches_per_window):
            for _attempt in range(10):
                top = int(rng.integers(0, height - size + 1))
                left = int(rng.integers(0, width - size + 1))
                if land[top:top + size, left:left + size].mean() <= self.max_land_fraction:
                    break
            else:
                continue
            flips = tuple(axis for axis, flip in ((-2, rng.random() < 0.5), (-1, rng.random() < 0.5))
                          if self.augment and flip)
            box_top = min(max(top - self.halo, 0), height - box_rows)
            box_left = min(max(left - self.halo, 0), width - box_columns)
            item = {}
            for name, values in block.items():
                box = values[:, box_top:box_top + box_rows, box_left:box_left + box_columns]
                # a view of the window (copied once, when batches are stacked); flips need their own copy
                item[name] = torch.from_numpy(np.flip(box, flips).copy() if flips else box)
            offsets = [top - box_top, left - box_left]
            for index, (axis, extent) in enumerate(((-2, box_rows), (-1, box_columns))):
                if axis in flips:
                    offsets[index] = extent - size - offsets[index]
            item["interior"] = torch.tensor([*offsets, size, size], dtype=torch.int64)
            row, column = window.latitude.start + top, window.longitude.start + left
            item["latitude"] = torch.tensor(float(self._latitude[row + size // 2]))
            item["longitude"] = torch.tensor(float(self._longitude[column + size // 2]))
            row, column = window.latitude.start + box_top, window.longitude.start + box_left
            for name, axis, cells in (("cell_latitude", -2, self._latitude[row:row + box_rows]),
                                      ("cell_longitude", -1, self._longitude[column:column + box_columns])):
                item[name] = torch.from_numpy(np.array(cells[::-1] if axis in flips else cells, dtype=np.float32))
            item["day_of_year"] = torch.tensor(float(self._day_of_year[window.time]))
            yield item


def _with_channel(name: str, field: xr.DataArray) -> xr.DataArray:
    extra = [d for d in field.dims if d not in ("time", *_SPATIAL)]
    if len(extra) > 1 or "time" not in field.dims or any(a not in field.dims for a in _SPATIAL):
        raise ValueError(f"field {name!r} has dims {field.dims}; expected (time, [channel], latitude, longitude).")
    if not extra:
        field = field.expand_dims("channel", axis=1)
    return field.transpose("time", ..., *_SPATIAL)


def _day_of_year(field: xr.DataArray) -> np.ndarray:
    if "time" not in field.coords:
        return np.full(field.sizes["time"], np.nan)
    try:
        return field["time"].dt.dayofyear.values.astype(np.float64)
    except (AttributeError, TypeError):
        return np.full(field.sizes["time"], np.nan)


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack a list of patch dicts into one batch dict (numpy's stack copies strided views far faster)."""
    return {key: torch.from_numpy(np.stack([item[key].numpy() for item in items])) for key in items[0]}


class PrefetchLoader:
    """Batches from a :class:`PatchDataset`, read ahead on a background thread and sent to ``device``.

    Parameters
    ----------
    dataset
        The patch source.
    batch_size
        Patches per batch; the last, smaller batch of an epoch is kept.
    device
        Where batches go. With CUDA, batches are pinned and copied without blocking.
    prefetch
        Batches read ahead.
    """

    def __init__(self, dataset: PatchDataset, batch_size: int, device: torch.device | str = "cpu",
                 prefetch: int = 4) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.prefetch = prefetch

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        items = []
        for item in self.dataset:
            items.append(item)
            if len(items) == self.batch_size:
                yield collate(items)
                items = []
        if items:
            yield collate(items)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        pinned = self.device.type == "cuda"
        buffer: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        done = object()

        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    buffer.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for batch in self._batches():
                    if pinned:
                        batch = {k: v.pin_memory() for k, v in batch.items()}
                    if not put(batch):
                        return
                put(done)
            except BaseException as error:  # noqa: BLE001  (re-raised in the consumer)
                put(error)

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        try:
            while True:
                batch = buffer.get()
                if batch is done:
                    return
                if isinstance(batch, BaseException):
                    raise batch
                yield {k: v.to(self.device, non_blocking=pinned) for k, v in batch.items()}
        finally:
            stop.set()
            thread.join(timeout=5)
