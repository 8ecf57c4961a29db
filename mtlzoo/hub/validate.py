"""Checks on a checkpoint's files before any work: config.json's structure, the safetensors header.

A malformed ``config.json`` (not UTF-8, not JSON, not an object, keys missing or of the wrong type) or a
truncated or corrupt ``model.safetensors`` is a one-line ``ValueError`` naming the file and what is wrong,
raised before the weights are hashed or read and before any model is built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_TASK_EXAMPLE = '{"name": "semseg", "kind": "segmentation", "channels": 8}'
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
               float: "a number", type(None): "null"}
# Task fields and the JSON types each accepts (None: null allowed)
_TASK_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "kind": (str,), "channels": (int, type(None)), "ignore_index": (int,),
    "loss": (str, type(None)), "pos_weight": (int, float, type(None)), "head": (str, type(None)),
}
_OBJECT_KEYS = ("model_args", "weights", "preprocessing", "results", "training")  # an object or null
_MAX_HEADER = 100_000_000  # the largest header safetensors itself reads


def _shown(value: Any) -> str:
    """A JSON value as an error message shows it: its JSON type, then a short repr."""
    text = repr(value)
    return f"{_JSON_TYPES.get(type(value), type(value).__name__)} {text[:60] + '...' if len(text) > 60 else text}"


def _typed(value: Any, types: tuple[type, ...]) -> bool:
    """Whether a JSON value has one of ``types`` (a JSON boolean is not a number)."""
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def _task_problem(index: int, entry: Any) -> str | None:
    """What is wrong with ``config["tasks"][index]`` as JSON (kinds and values are checked when it is built)."""
    if not isinstance(entry, dict):
        return f"tasks[{index}] must be an object like {_TASK_EXAMPLE}, got {_shown(entry)}"
    unknown = sorted(set(entry) - set(_TASK_FIELDS))
    if unknown:
        return f"tasks[{index}] has unknown field(s) {unknown}; accepted: {list(_TASK_FIELDS)}"
    for key in ("name", "kind"):
        if key not in entry:
            return f"tasks[{index}] lacks {key!r}; a task looks like {_TASK_EXAMPLE}"
    for key, value in entry.items():
        if not _typed(value, _TASK_FIELDS[key]):
            accepted = " or ".join(dict.fromkeys(_JSON_TYPES[t] for t in _TASK_FIELDS[key]))
            return f"tasks[{index}].{key} must be {accepted}, got {_shown(value)}"
    return None


def config_problem(config: Any) -> str | None:
    """What is wrong with a checkpoint's config.json as mtlzoo writes it (None when nothing is)."""
    if not isinstance(config, dict):
        return f"must hold a JSON object, got {_shown(config)}"
    missing = [key for key in ("architecture", "tasks") if key not in config]
    if missing:
        return f"lacks {missing}"
    arch = config["architecture"]
    if not isinstance(arch, str) or not arch:
        return f"'architecture' must be a model name (a string such as 'hps_tiny'), got {_shown(arch)}"
    tasks = config["tasks"]
    if not isinstance(tasks, list) or not tasks:
        return f"'tasks' must be a non-empty array of task objects like {_TASK_EXAMPLE}, got {_shown(tasks)}"
    for index, entry in enumerate(tasks):
        problem = _task_problem(index, entry)
        if problem:
            return problem
    for key in _OBJECT_KEYS:
        if config.get(key) is not None and not isinstance(config[key], dict):
            return f"{key!r} must be an object (or null), got {_shown(config[key])}"
    if config.get("architecture_module") is not None and not isinstance(config["architecture_module"], str):
        return f"'architecture_module' must be a module name (a string), got {_shown(config['architecture_module'])}"
    weights = config.get("weights") or {}
    for key in ("file", "sha256", "dtype"):
        if weights.get(key) is not None and not isinstance(weights[key], str):
            return f"'weights.{key}' must be a string (or null), got {_shown(weights[key])}"
    return None


def read_config(path: str | Path) -> dict[str, Any]:
    """A checkpoint's config.json, checked (:func:`config_problem`); a one-line ValueError names the file."""
    path = Path(path)
    try:
        config = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a JSON text file: byte {err.start} is not UTF-8; a checkpoint's config.json "
                         f"is the JSON object save_pretrained writes") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None
    except RecursionError:
        raise ValueError(f"{path} is not a usable config.json: its JSON is nested too deeply") from None
    problem = config_problem(config)
    if problem:
        raise ValueError(f"{path}: {problem}; was it written by mtlzoo's save_pretrained?")
    return config


def corrupt_weights(path: Path, what: str) -> ValueError:
    """The error for a weight file that cannot be read: what is wrong, and what to do."""
    return ValueError(f"{path} is not a valid safetensors file: {what}; it is truncated or corrupt, so delete it and "
                      f"fetch or save it again")


def check_safetensors(path: str | Path) -> None:
    """Check a safetensors file's header against its size (no tensor is read): a ValueError says what is wrong.

    The file is an 8-byte little-endian header length, a JSON header whose entries give each tensor's
    ``data_offsets``, then the data, which the offsets must cover exactly (a truncated file does not).
    """
    path = Path(path)
    size = path.stat().st_size
    if size < 8:
        raise corrupt_weights(path, f"it holds {size} bytes, less than the 8-byte header length")
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        if length > min(size - 8, _MAX_HEADER):
            raise corrupt_weights(path, f"its header length is {length} bytes but {size - 8} bytes follow it")
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise corrupt_weights(path, "its header is not JSON") from None
    if not isinstance(header, dict):
        raise corrupt_weights(path, f"its header is {_shown(header)}, not an object")
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_typed(o, (int,)) for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise corrupt_weights(path, f"tensor {name!r} has no valid data_offsets in the header")
        end = max(end, offsets[1])
    data = size - 8 - length
    if end != data:
        raise corrupt_weights(path, f"its header describes {end} bytes of tensor data but {data} bytes follow the "
                              "header")
