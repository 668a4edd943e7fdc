"""Coming from the reference system (DepthDif): its ``ae_config.yaml`` layout and its saved weights.

:func:`read_config` turns the ``ae`` section of a reference config into constructor arguments of
:class:`~xdepthrecon.DepthBandAutoencoder` (which :meth:`DepthBandAutoencoder.from_config` calls), and
:func:`load_reference_state_dict` loads weights saved by the reference's training wrapper (keys under a
``model.``/``autoencoder.`` prefix) into one of our models. Nothing is unpickled beyond tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import safetensors.torch
import torch
import yaml

if TYPE_CHECKING:
    from xdepthrecon.models.autoencoder import DepthBandAutoencoder

#: Prefixes a training wrapper puts before the autoencoder's parameter names.
_REFERENCE_PREFIXES = ("model.", "autoencoder.")
_REFERENCE_MODEL_TYPE = "depth_band_ae"
_AE_SECTION_KEYS = frozenset(
    {"model_type", "in_channels", "latent_channels", "spatial_downsample", "encoder", "decoder", "loss", "training"}
)
_LISTED = 8


def read_config(source: str | PathLike[str] | Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read the ``ae`` section of a reference-system ``ae_config.yaml`` (or the dict parsed from one).

    Parameters
    ----------
    source
        Path of the YAML file, or its parsed content. The ``ae`` section may sit at the top level or
        under ``data``.

    Returns
    -------
    kwargs : dict
        Constructor arguments of :class:`~xdepthrecon.DepthBandAutoencoder` the section gives
        (``in_channels`` always; ``latent_channels``, ``spatial_downsample``, ``encoder_channels``,
        ``decoder_channels`` when present).
    training_config : dict
        ``{"loss": {...}, "training": {...}}``, copied unchanged from the section.

    Raises
    ------
    FileNotFoundError
        When ``source`` is a path with no file.
    ValueError
        When there is no ``ae`` section, it holds unknown keys, another ``model_type`` or no ``in_channels``.
    """
    if isinstance(source, Mapping):
        document, where = source, "the config"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no autoencoder config at {path}; pass the path of an ae_config.yaml")
        document, where = yaml.safe_load(path.read_text(encoding="utf-8")), str(path)
    section = _ae_section(document, where)
    unknown = sorted(set(section) - _AE_SECTION_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown} in the 'ae' section; accepted: {sorted(_AE_SECTION_KEYS)}")
    model_type = section.get("model_type", _REFERENCE_MODEL_TYPE)
    if model_type != _REFERENCE_MODEL_TYPE:
        raise ValueError(f"{where}: ae.model_type is {model_type!r}; only {_REFERENCE_MODEL_TYPE!r} is supported")
    if "in_channels" not in section:
        raise ValueError(f"{where}: the 'ae' section needs in_channels (the number of depth levels)")
    sizes = ("in_channels", "latent_channels", "spatial_downsample")
    kwargs = {key: section[key] for key in sizes if key in section}
    for part, argument in (("encoder", "encoder_channels"), ("decoder", "decoder_channels")):
        widths = (section.get(part) or {}).get("hidden_channels")
        if widths is not None:
            kwargs[argument] = widths
    return kwargs, {part: dict(section.get(part) or {}) for part in ("loss", "training")}


def load_reference_state_dict(
    model: DepthBandAutoencoder,
    state_dict: Mapping[str, torch.Tensor] | str | PathLike[str],
    prefix: str | None = None,
) -> DepthBandAutoencoder:
    """Load weights saved by the reference system (DepthDif) into ``model``; return ``model``.

    Keys are expected as ``<prefix>encoder.0.weight``, ..., ``<prefix>to_latent.weight``,
    ``<prefix>decoder.0.weight``, ..., ``<prefix>to_output.bias`` (see
    :mod:`xdepthrecon.models.autoencoder`). The reference normalises with one global mean and std
    (289.74 K, 10.93 K per the design notes), so build ``model`` with ``mean=16.59, std=10.93`` to
    reproduce its outputs in degC.

    Parameters
    ----------
    model
        An autoencoder built with the reference's architecture, e.g. by :meth:`DepthBandAutoencoder.from_config`.
    state_dict
        The state dict, or the path of a file holding it: ``.safetensors``, or a torch file read with
        ``torch.load(weights_only=True)`` (a Lightning checkpoint's ``state_dict`` entry is used). Nothing
        is unpickled beyond tensors and containers.
    prefix
        Keep only the keys starting with this prefix, and strip it. By default every key must belong to
        the autoencoder, with any leading ``model.``/``autoencoder.`` removed.
    """
    state = _read_state_dict(Path(state_dict)) if isinstance(state_dict, (str, PathLike)) else state_dict
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = _strip_prefix(key, prefix)
        if name is None:
            continue
        if not isinstance(value, torch.Tensor) or name in renamed:
            raise ValueError(f"state dict entry {key!r} is not a tensor or maps to a name seen before ({name!r})")
        renamed[name] = value
    expected = model.state_dict()
    missing = sorted(set(expected) - set(renamed))
    unexpected = sorted(set(renamed) - set(expected))
    mismatched = [
        f"{key} {tuple(renamed[key].shape)} != {tuple(value.shape)}"
        for key, value in expected.items()
        if key in renamed and renamed[key].shape != value.shape
    ]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"the state dict does not fit this autoencoder {model.config}: missing keys {_listing(missing)}, "
            f"unexpected keys {_listing(unexpected)}, shape mismatches {_listing(mismatched)}; build the model "
            "from the ae_config.yaml the weights were trained with, or pass prefix= to select its keys"
        )
    model.load_state_dict(renamed)
    return model


def _read_state_dict(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"no state dict at {path}")
    if path.suffix == ".safetensors":
        return safetensors.torch.load_file(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{path} cannot be read safely with torch.load(weights_only=True): {err}; re-export its tensors, "
            "e.g. torch.save(ckpt['state_dict'], 'weights.pt') or safetensors.torch.save_file(...)"
        ) from err
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path} holds a {type(loaded).__name__}, not a state dict")
    return loaded.get("state_dict", loaded)


def _strip_prefix(key: str, prefix: str | None) -> str | None:
    if prefix is not None:
        return key[len(prefix):] if key.startswith(prefix) else None
    while key.startswith(_REFERENCE_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _ae_section(document: Any, where: str) -> Mapping[str, Any]:
    if isinstance(document, Mapping) and isinstance(document.get("ae"), Mapping):
        return document["ae"]
    data = document.get("data") if isinstance(document, Mapping) else None
    if isinstance(data, Mapping) and isinstance(data.get("ae"), Mapping):
        return data["ae"]
    raise ValueError(f"{where} has no 'ae' section, neither at the top level nor under 'data'")


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED]) or "none"
    return f"{shown} (and {len(names) - _LISTED} more)" if len(names) > _LISTED else shown
