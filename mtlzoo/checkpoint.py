"""Training state on disk without pickle: tensors in safetensors, everything else in JSON, written atomically."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

_TENSOR, _DICT, _TUPLE = "__tensor__", "__dict__", "__tuple__"


def flatten_state(state: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested state (dicts, lists, tensors, scalars) into a JSON tree and a flat tensor dict."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            key = str(len(tensors))
            tensors[key] = value.detach().cpu().contiguous()
            return {_TENSOR: key}
        if isinstance(value, dict):
            return {_DICT: [[k, walk(v)] for k, v in value.items()]}
        if isinstance(value, tuple):
            return {_TUPLE: [walk(v) for v in value]}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint; use tensors, numbers, "
                        "strings, lists and dicts")

    return walk(state), tensors


def unflatten_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(tree, dict):
        if _TENSOR in tree:
            return tensors[tree[_TENSOR]]
        if _DICT in tree:
            return {_json_key(k): unflatten_state(v, tensors) for k, v in tree[_DICT]}
        if _TUPLE in tree:
            return tuple(unflatten_state(v, tensors) for v in tree[_TUPLE])
    if isinstance(tree, list):
        return [unflatten_state(v, tensors) for v in tree]
    return tree


def _json_key(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


TMP_PREFIX = ".mtlzoo-tmp-"  # temporary files carry it, so uploads and listings can leave them out


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same folder; on success it replaces ``path`` in one ``os.replace``.

    A crash or an exception leaves ``path`` as it was (old content or absent), never half written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    with atomic_path(path) as tmp:
        write(str(tmp))
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def save_state(path: str | Path, state: Any) -> None:
    """Write ``state`` as ``<path>.safetensors`` + ``<path>.json``, each atomically."""
    path = Path(path)
    tree, tensors = flatten_state(state)
    atomic_write(path.with_suffix(".safetensors"), lambda tmp: save_file(tensors, tmp))
    atomic_write_text(path.with_suffix(".json"), json.dumps(tree))


def load_state(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Read a state written by :func:`save_state`."""
    path = Path(path)
    tensors_file, json_file = path.with_suffix(".safetensors"), path.with_suffix(".json")
    for file in (tensors_file, json_file):
        if not file.exists():
            raise FileNotFoundError(f"checkpoint state {file} is missing; a state is a .safetensors + .json pair")
    try:
        tensors = load_file(str(tensors_file), device=str(map_location))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"checkpoint state {tensors_file} is truncated or corrupt ({error}); "
                         "resume from an earlier checkpoint") from None
    try:
        return unflatten_state(json.loads(json_file.read_text(encoding="utf-8")), tensors)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"checkpoint state {json_file} is truncated or malformed ({error}); "
                         "resume from an earlier checkpoint") from None


def aside_path(final_dir: str | os.PathLike) -> Path:
    """Where :func:`publish_directory` keeps the previous copy of ``final_dir`` while it swaps the new one in."""
    final_dir = Path(final_dir)
    return final_dir.with_name(f".{final_dir.name}.old")


def publish_directory(tmp_dir: Path, final_dir: Path) -> Path:
    """Move a fully written ``tmp_dir`` to ``final_dir``, replacing an older copy without a window of loss.

    On Linux the two folders are swapped in one atomic ``renameat2(RENAME_EXCHANGE)``. Elsewhere the old
    copy is renamed aside only now that the new one is complete; a crash between the two renames leaves
    it there, and :func:`published_directory` finds it.
    """
    trash = aside_path(final_dir)
    if final_dir.exists() and _exchange(tmp_dir, final_dir):
        shutil.rmtree(tmp_dir, ignore_errors=True)  # it now holds the old copy
        return final_dir
    if final_dir.exists():
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(final_dir, trash)
    os.replace(tmp_dir, final_dir)
    shutil.rmtree(trash, ignore_errors=True)
    return final_dir


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux ``renameat2``); False where the system or file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # unsupported here: rename in two steps
        return False
    raise OSError(code, os.strerror(code), str(b))


def published_directory(final_dir: str | os.PathLike) -> Path:
    """``final_dir``, or its aside copy when a crash inside :func:`publish_directory` left only that one."""
    final_dir = Path(final_dir)
    if not final_dir.exists() and aside_path(final_dir).is_dir():
        return aside_path(final_dir)
    return final_dir


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON object, naming the file when it is not valid JSON."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data
