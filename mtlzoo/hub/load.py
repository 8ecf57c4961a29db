"""Reading checkpoint folders: plain files in, plain dicts and tensors out (no model is built here).

Safetensors only unless told otherwise, hashes checked, the pretrained folder found in the HF cache,
the bundled ``weights/`` copy or (online) the Hub. :func:`mtlzoo.models.factory.create_model` builds
the model from what :func:`read_checkpoint` returns, as timm's builder uses its hub module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mtlzoo.checkpoint import published_directory
from mtlzoo.hub.cache import bundled_weights_dir, fetch_hub_checkpoint, hub_offline
from mtlzoo.hub.files import (
    CONFIG_NAME,
    PICKLE_WEIGHTS_NAMES,
    WEIGHTS_NAME,
    CheckpointNotFoundError,
    sha256_file,
)
from mtlzoo.hub.validate import check_safetensors, corrupt_weights, read_config

_SHOWN_KEYS = 10


def find_weights(folder: str | os.PathLike, *, trust_pickle: bool = False) -> Path:
    """The weight file of ``folder``: ``model.safetensors``; a pickle file only when ``trust_pickle``.

    A pickle file (``pytorch_model.bin``...) can run code when unpickled, so it is refused unless
    ``trust_pickle=True``, and even then :func:`read_weights` reads it with ``torch.load(weights_only=True)``.
    """
    folder = Path(folder)
    if (folder / WEIGHTS_NAME).is_file():
        return folder / WEIGHTS_NAME
    pickles = [folder / name for name in PICKLE_WEIGHTS_NAMES if (folder / name).is_file()]
    if not pickles:
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else "the folder does not exist"
        raise CheckpointNotFoundError(f"{folder} holds no weights: expected {WEIGHTS_NAME}; found {present}")
    if not trust_pickle:
        raise ValueError(
            f"{folder} holds only {pickles[0].name}, a pickle file (unpickling can run arbitrary code), and mtlzoo "
            f"loads {WEIGHTS_NAME} only. If you trust its source, pass trust_pickle=True (it is then read with "
            f"torch.load(weights_only=True)); convert it once with "
            f"mtlzoo.from_pretrained(folder, trust_pickle=True).save_pretrained(folder).")
    return pickles[0]


def read_weights(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Tensor]:
    """The state dict in a safetensors file, or in a (trusted) pickle file read with ``weights_only=True``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device=str(torch.device(map_location)))
        except SafetensorError as err:
            raise corrupt_weights(path, (str(err).splitlines() or ["unreadable"])[0]) from None
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} must hold a flat state dict {{name: tensor}}, got {type(state).__name__}"
                         + (f" with keys {sorted(state)[:_SHOWN_KEYS]}" if isinstance(state, Mapping) else ""))
    return dict(state)


def verify_sha256(path: Path, expected: Mapping[str, str | None]) -> str:
    """Hash ``path`` and compare it with every known expected value (``{where it comes from: sha256}``)."""
    actual = sha256_file(path)
    for source, sha in expected.items():
        if sha and sha.lower() != actual:
            raise ValueError(f"{path} has sha256 {actual} but {source} expects {sha}: the file is corrupt, partial "
                             f"or from another revision; delete it and fetch it again")
    return actual


@dataclass(frozen=True)
class CheckpointFiles:
    """What a checkpoint folder holds: its config.json, its state dict, where it came from and the weights' hash."""

    config: dict[str, Any]
    state: dict[str, Tensor]
    source: Path
    sha256: str


def read_checkpoint(folder: str | os.PathLike, *, trust_pickle: bool = False,
                    map_location: str | torch.device = "cpu", sha256: str | None = None) -> CheckpointFiles:
    """Read config.json and the weights of a checkpoint folder, checking ``sha256`` and the hash config.json records.

    config.json and the safetensors header are checked first (:mod:`mtlzoo.hub.validate`): a malformed or
    truncated file is a one-line ValueError naming it, before the weights are hashed or read.
    """
    folder = published_directory(folder)  # a crash while replacing it may have left only the copy set aside
    if not (folder / CONFIG_NAME).is_file():
        raise CheckpointNotFoundError(f"{folder} is not a checkpoint folder: it has no {CONFIG_NAME}")
    config = read_config(folder / CONFIG_NAME)
    path = find_weights(folder, trust_pickle=trust_pickle)
    if path.suffix == ".safetensors":
        check_safetensors(path)
    recorded = config.get("weights") or {}
    expected = {"the pretrained config": sha256}
    if recorded.get("file") == path.name:
        expected[CONFIG_NAME] = recorded.get("sha256")
    actual = verify_sha256(path, expected)
    return CheckpointFiles(config, read_weights(path, map_location), folder, actual)


def locate_pretrained(name: str, hub_id: str, revision: str, bundled: str | None = None,
                      cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding pretrained weights ``name``: HF cache, else the bundled copy, else a download (online)."""
    try:
        return fetch_hub_checkpoint(hub_id, revision, cache_dir=cache_dir, local_files_only=True)
    except CheckpointNotFoundError as err:
        cache_error = err
    copy = bundled_weights_dir() / bundled if bundled else None
    if copy is not None and (copy / CONFIG_NAME).is_file():
        return copy
    if hub_offline():
        raise CheckpointNotFoundError(f"pretrained weights {name!r} are not bundled with this copy of mtlzoo "
                                      f"and {cache_error}") from None
    return fetch_hub_checkpoint(hub_id, revision, cache_dir=cache_dir)
