"""Checkpoint files on disk: their names, atomic writes, hashing, and the errors for missing ones."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mtlzoo.checkpoint import atomic_path

WEIGHTS_NAME = "model.safetensors"
PICKLE_WEIGHTS_NAMES = ("pytorch_model.bin", "model.pt", "model.pth")
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"


class CheckpointNotFoundError(FileNotFoundError):
    """A checkpoint (or one of its files) is neither on disk, nor in the cache, nor reachable; says how to fetch it."""


def write_atomic(path: str | os.PathLike, data: str | bytes | Callable[[Path], None]) -> Path:
    """Write text, bytes, or whatever ``data(tmp_path)`` writes, to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        if callable(data):
            data(tmp)
        elif isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically (fails before touching ``path`` if not JSON-able)."""
    return write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_files(folder: str | os.PathLike) -> list[Path]:
    """The regular files of a checkpoint folder (recursively), skipping hidden and temporary files."""
    root = Path(folder)
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    return [p for p in files if not any(part.startswith(".") for part in p.relative_to(root).parts)]
