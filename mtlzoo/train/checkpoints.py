"""Checkpoint folders of a run: ``checkpoints/step_N`` (model in HF layout + trainer state), ``latest``, ``best``.

Every folder is written under a temporary name and renamed into place, so a run killed at
any moment leaves only complete checkpoints behind.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model
from torch import nn

from mtlzoo.checkpoint import (
    atomic_write_text,
    load_state,
    publish_directory,
    published_directory,
    read_json,
    save_state,
)
from mtlzoo.hub.files import CONFIG_NAME, WEIGHTS_NAME, sha256_file, write_json

STATE_NAME = "trainer_state"
CHECKSUMS_NAME = "checksums.json"
RUN_FILES = ("checkpoints", "log.jsonl", "tensorboard")  # what a run writes into its out_dir


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, read-only folder); the earlier checkpoints are intact."""


def _root(out_dir: Path) -> Path:
    return Path(out_dir) / "checkpoints"


def check_out_dir(out_dir: Path, entries: list[str]) -> None:
    """Refuse to start a fresh run in a folder that already held ``entries`` (a finished run would be destroyed)."""
    if entries:
        what = "a run (checkpoints/)" if "checkpoints" in entries else f"files ({', '.join(sorted(entries)[:5])})"
        raise ValueError(f"train.out_dir {str(out_dir)!r} already holds {what}; pass --resume to continue it, "
                         "--overwrite (train.overwrite=true) to delete it and start clean, or pick another out_dir")


def clear_run(out_dir: Path) -> None:
    """Delete what an earlier run wrote into ``out_dir`` (checkpoints, log, TensorBoard files); nothing else."""
    for name in RUN_FILES:
        path = Path(out_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def save(out_dir: Path, step: int, model: nn.Module, state: Mapping[str, Any], run_config: Mapping[str, Any],
         metrics: Mapping[str, Any], keep_last: int = 2) -> Path:
    """Write ``step_N`` completely, point ``latest`` at it, and drop older steps beyond ``keep_last``.

    On a write error (disk full, read-only folder) the partial folder is removed and a
    :class:`CheckpointWriteError` names the path; ``latest`` and ``best`` keep pointing at complete checkpoints.
    """
    root = _root(out_dir)
    final = root / f"step_{step:07d}"
    tmp = root / f".step_{step:07d}.tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp, results=dict(metrics) or None)
        save_state(tmp / STATE_NAME, dict(state))
        write_json(tmp / "run_config.json", dict(run_config))
        write_json(tmp / CHECKSUMS_NAME, {f.name: sha256_file(f) for f in _state_files(tmp)})
        publish_directory(tmp, final)
        atomic_write_text(root / "latest", final.name)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointWriteError(f"could not write checkpoint {final}: {error.strerror or error}; earlier "
                                   "checkpoints are intact (free space or point train.out_dir elsewhere, "
                                   "then --resume)") from None
    _prune(root, keep_last, keep=final)
    return final


def _state_files(folder: Path) -> list[Path]:
    return [folder / f"{STATE_NAME}.safetensors", folder / f"{STATE_NAME}.json"]


def _prune(root: Path, keep_last: int, keep: Path) -> None:
    """Delete the oldest step folders beyond ``keep_last``; never ``keep`` (the one ``latest`` points at)."""
    others = sorted(p for p in root.glob("step_*") if p.is_dir() and p != keep)
    for old in others[: max(0, len(others) - (max(keep_last, 1) - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def mark_best(out_dir: Path, path: Path) -> Path:
    """Copy a checkpoint folder to ``checkpoints/best`` (the previous best stays until the copy is complete)."""
    root = _root(out_dir)
    tmp = root / ".best.tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(path, tmp)
        return publish_directory(tmp, root / "best")
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointWriteError(f"could not copy {path} to {root / 'best'}: {error.strerror or error}; "
                                   "the previous best is intact") from None


def _complete(folder: Path) -> bool:
    return all(f.is_file() for f in [folder / WEIGHTS_NAME, folder / CONFIG_NAME, *_state_files(folder)])


def latest(out_dir: Path) -> Path:
    """The newest complete checkpoint of a run, or a FileNotFoundError saying where it looked."""
    root = _root(out_dir)
    pointer = root / "latest"
    if pointer.exists():
        target = root / pointer.read_text(encoding="utf-8").strip()
        if _complete(target):
            return target
    steps = sorted(p for p in root.glob("step_*") if _complete(p))
    if not steps:
        raise FileNotFoundError(f"nothing to resume: no complete checkpoint under {root} "
                                "(train without --resume first, or point train.out_dir at the run)")
    if pointer.exists():
        warnings.warn(f"{pointer} names a missing or incomplete checkpoint; resuming from {steps[-1]}", stacklevel=2)
    return steps[-1]


def best(out_dir: Path) -> Path:
    """``checkpoints/best`` of a run (or the copy kept aside while a new best was being swapped in)."""
    return published_directory(_root(out_dir) / "best")


def load(path: Path, model: nn.Module, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Verify the checkpoint's recorded sha256 hashes, load the weights (strict) and return its trainer state."""
    weights = path / WEIGHTS_NAME
    if not weights.exists():
        raise FileNotFoundError(f"{path} is not a training checkpoint: {weights.name} is missing")
    expected = {weights.name: (read_json(path / CONFIG_NAME).get("weights") or {}).get("sha256")}
    if (path / CHECKSUMS_NAME).is_file():
        expected.update(read_json(path / CHECKSUMS_NAME))
    for name, sha in expected.items():
        if sha and sha256_file(path / name) != sha:
            raise ValueError(f"{path / name} does not match the sha256 its checkpoint recorded: the file is corrupt; "
                             "resume from an earlier checkpoint or start again")
    try:
        load_model(model, str(weights), strict=True, device=str(map_location))
    except SafetensorError as error:
        raise ValueError(f"{weights} is truncated or corrupt ({error}); resume from an earlier checkpoint") from None
    return load_state(path / STATE_NAME, map_location="cpu")


def metric_value(metrics: Mapping[str, Any], key: str) -> float | None:
    """Read ``delta_m`` or ``task.metric`` from an evaluation result dict."""
    if not metrics:
        return None
    if key == "delta_m":
        return metrics.get("delta_m")
    task, _, name = key.partition(".")
    value = metrics.get("metrics", {}).get(task, {}).get(name)
    if value is None and task not in metrics.get("metrics", {}):
        raise ValueError(f"best_metric {key!r} names no evaluated task; use 'delta_m' or one of "
                         f"{[f'{t}.{m}' for t, ms in metrics.get('metrics', {}).items() for m in ms]}")
    return value


def higher_is_better(key: str, model: Any, metrics: Mapping[str, Any]) -> bool:
    """Direction of a ``best_metric`` key from the task kinds (delta_m: per its style's sign)."""
    if key == "delta_m":
        return metrics.get("delta_style") != "nash"
    task, _, name = key.partition(".")
    return model.task(task).spec.direction(name) > 0


def summary(result: Mapping[str, Any]) -> str:
    """One line: each task's headline numbers, then delta_m."""
    parts = []
    for task, values in result.get("metrics", {}).items():
        shown = ", ".join(f"{k}={v:.3f}" for k, v in list(values.items())[:2] if isinstance(v, (int, float)))
        parts.append(f"{task}: {shown}")
    if result.get("delta_m") is not None:
        parts.append(f"delta_m={result['delta_m']:+.2f}%")
    return " | ".join(parts)
