"""Save and load models, with optional training state, as one safetensors file; loading never unpickles.

File format (version 1): a plain safetensors file (``.safetensors`` is a good suffix) holding

- tensors: the model's ``state_dict`` as ``model.<name>``, and the tensors of the training state, if
  any, as ``training.<n>``;
- one header metadata entry, ``xdepthrecon``: a JSON document with ``format``
  (``"xdepthrecon-checkpoint"``), ``format_version``, ``library_version``, ``model_class``,
  ``config`` (the constructor's keyword arguments), ``arrays`` (array constructor arguments, such
  as the depth levels and per-level statistics, as lists), ``training`` (null, or the training state
  with each tensor or array replaced by a reference to its stored tensor) and ``sha256``: the hash of
  the rest of this document (as JSON with sorted keys) followed by :func:`digest` of all tensors.

A model class can be saved when it is listed in ``_MODEL_CLASSES`` and has a ``config`` property (a
JSON-serialisable dict), an ``arrays`` property (a dict of numpy arrays) and either a constructor
accepting ``**config, **arrays`` or a ``from_saved(config, arrays)`` classmethod (for models made of
other models). A save writes a temporary file next to the target and moves it over the target
with ``os.replace`` only once it is complete and flushed, so an interrupted save leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import uuid
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

_FORMAT = "xdepthrecon-checkpoint"
_FORMAT_VERSION = 1
_METADATA_KEY = "xdepthrecon"
_MODEL_PREFIX = "model."
_TRAINING_PREFIX = "training."
_HEADER_KEYS = frozenset({"library_version", "model_class", "config", "arrays", "sha256", "training"})
#: The model classes a checkpoint may name, with the module defining each (imported when loading).
_MODEL_CLASSES = {
    "Analysis": "xdepthrecon.analysis.classical",
    "DepthBandAutoencoder": "xdepthrecon.models.autoencoder",
    "LatentDiffusion": "xdepthrecon.diffusion.latent",
}
#: One-key JSON objects that stand for values JSON has no type for.
_TENSOR, _NDARRAY, _TUPLE, _DICT = "__tensor__", "__ndarray__", "__tuple__", "__dict__"


def save(
    model: nn.Module, path: str | PathLike[str], training_state: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model`` (and optionally its training state) to ``path``, atomically.

    Parameters
    ----------
    model
        A model of a class listed in ``_MODEL_CLASSES`` (e.g. a ``DepthBandAutoencoder``).
    path
        File to write; its directory must exist. An existing file is replaced only once the new one
        is complete.
    training_state
        What resuming training needs, e.g. ``{"optimizer": opt.state_dict(), "epoch": 3,
        "rng": torch.get_rng_state(), "history": {...}}``: nested dicts, lists and tuples of tensors,
        numpy arrays, numbers, strings, booleans and None. Read it back with :func:`load_training_state`.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    from xdepthrecon import __version__

    name = type(model).__name__
    if _MODEL_CLASSES.get(name) != type(model).__module__:
        raise ValueError(
            f"a {type(model).__module__}.{name} cannot be saved: checkpoints hold only {sorted(_MODEL_CLASSES)}"
        )
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot save to {path}: directory {path.parent} does not exist; create it first")
    tensors = {_MODEL_PREFIX + key: _stored(value) for key, value in model.state_dict().items()}
    training_tensors: dict[str, torch.Tensor] = {}
    training = None if training_state is None else _encode(training_state, training_tensors, "training_state")
    tensors.update(training_tensors)
    header = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "library_version": __version__,
        "model_class": name,
        "config": model.config,
        "arrays": {key: np.asarray(value).tolist() for key, value in model.arrays.items()},
        "training": training,
    }
    header["sha256"] = _checksum(header, tensors)
    _write_atomic(path, safetensors.torch.save(tensors, metadata={_METADATA_KEY: json.dumps(header)}))
    return path


def load(path: str | PathLike[str], device: str | torch.device = "cpu") -> nn.Module:
    """Read a model saved by :func:`save`, in eval mode, on ``device``.

    Raises
    ------
    FileNotFoundError
        When there is no file at ``path``.
    ValueError
        When the file is truncated or corrupt, fails its sha256 check, is not an xdepthrecon
        checkpoint, or names a model class or config this version does not know.
    """
    from xdepthrecon import __version__

    header, tensors = _read(Path(path))
    name = header["model_class"]
    module = _MODEL_CLASSES.get(name)
    if module is None:
        raise ValueError(
            f"{path} holds a model of class {name!r}, which xdepthrecon {__version__} does not know "
            f"(it knows {sorted(_MODEL_CLASSES)}); load it with xdepthrecon {header['library_version']}, which saved it"
        )
    cls = getattr(importlib.import_module(module), name)
    arrays = {key: np.asarray(value) for key, value in header["arrays"].items()}
    state = {key[len(_MODEL_PREFIX):]: value for key, value in tensors.items() if key.startswith(_MODEL_PREFIX)}
    try:
        from_saved = getattr(cls, "from_saved", None)
        model = from_saved(header["config"], arrays) if from_saved else cls(**header["config"], **arrays)
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"{path} holds a {name} that xdepthrecon {__version__} cannot rebuild "
            f"(saved by xdepthrecon {header['library_version']}): {err}"
        ) from err
    return model.to(device).eval()


def load_training_state(path: str | PathLike[str]) -> dict[str, Any]:
    """Return the training state saved with the model at ``path`` (tensors on the CPU).

    Raises
    ------
    ValueError
        When the checkpoint holds no training state, or for the reasons :func:`load` gives.
    """
    header, tensors = _read(Path(path))
    if header["training"] is None:
        raise ValueError(
            f"{path} holds no training state (it was saved without training_state=); "
            "training cannot resume from it, but can start again from the loaded model"
        )
    return _decode(header["training"], tensors)


def digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """Return the sha256 (hex) of the tensors' names, dtypes, shapes and bytes, in name order."""
    sha = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        sha.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        sha.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return sha.hexdigest()


def _checksum(header: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> str:
    described = json.dumps({key: value for key, value in header.items() if key != "sha256"}, sort_keys=True)
    return hashlib.sha256((described + digest(tensors)).encode()).hexdigest()


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; check the path, or save one with model.save(path)")
    try:
        with safetensors.safe_open(path, framework="pt") as file:
            metadata = file.metadata() or {}
            tensors = {key: file.get_tensor(key) for key in file.keys()}
    except safetensors.SafetensorError as err:
        raise ValueError(
            f"{path} is truncated or corrupt ({err}); restore it from a copy or save the model again"
        ) from err
    if _METADATA_KEY not in metadata:
        raise ValueError(
            f"{path} is a safetensors file but not an xdepthrecon checkpoint (no {_METADATA_KEY!r} metadata); "
            "reference-system weights load with xdepthrecon.models.load_reference_state_dict"
        )
    try:
        header = json.loads(metadata[_METADATA_KEY])
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} has a corrupt header ({err}); restore it from a copy or save the model again"
        ) from err
    if not isinstance(header, dict) or header.get("format") != _FORMAT or not _HEADER_KEYS <= header.keys():
        raise ValueError(f"{path} has no valid xdepthrecon checkpoint header; save the model again")
    if header.get("format_version") != _FORMAT_VERSION:
        raise ValueError(
            f"{path} is checkpoint format version {header.get('format_version')!r}, saved by xdepthrecon "
            f"{header['library_version']}; this version reads format {_FORMAT_VERSION}: upgrade xdepthrecon"
        )
    if _checksum(header, tensors) != header["sha256"]:
        raise ValueError(
            f"{path} is corrupt: its content does not match the sha256 recorded when it was saved; "
            "restore it from a copy or save the model again"
        )
    return header, tensors


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _stored(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy sharing memory with nothing (safetensors refuses shared storage)."""
    return tensor.detach().to("cpu").clone(memory_format=torch.contiguous_format)


def _encode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """Turn ``value`` into JSON, moving tensors and arrays into ``tensors``; ``where`` names it in errors."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (torch.Tensor, np.ndarray)):
        key = f"{_TRAINING_PREFIX}{len(tensors)}"
        is_tensor = isinstance(value, torch.Tensor)
        tensors[key] = _stored(value if is_tensor else torch.from_numpy(np.ascontiguousarray(value)))
        return {_TENSOR if is_tensor else _NDARRAY: key}
    if isinstance(value, (list, tuple)):
        items = [_encode(item, tensors, f"{where}[{i}]") for i, item in enumerate(value)]
        return {_TUPLE: items} if isinstance(value, tuple) else items
    if isinstance(value, Mapping):
        if all(isinstance(key, str) and key not in (_TENSOR, _NDARRAY, _TUPLE, _DICT) for key in value):
            return {key: _encode(item, tensors, f"{where}[{key!r}]") for key, item in value.items()}
        return {_DICT: [[_encode(key, tensors, where), _encode(item, tensors, f"{where}[{key!r}]")]
                        for key, item in value.items()]}
    raise TypeError(
        f"{where} is a {type(value).__name__}, which a checkpoint cannot store without pickle; "
        "convert it to tensors, numpy arrays, numbers, strings, lists or dicts"
    )


def _decode(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of :func:`_encode`."""
    if isinstance(value, list):
        return [_decode(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, content),) = value.items()
        if tag == _TENSOR:
            return tensors[content]
        if tag == _NDARRAY:
            return tensors[content].numpy()
        if tag == _TUPLE:
            return tuple(_decode(item, tensors) for item in content)
        if tag == _DICT:
            return {_decode(key, tensors): _decode(item, tensors) for key, item in content}
    return {key: _decode(item, tensors) for key, item in value.items()}
