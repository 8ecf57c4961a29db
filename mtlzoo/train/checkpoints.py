"""Checkpoint folders of a run: ``checkpoints/step_N`` (model in HF layout + trainer state), ``latest``, ``best``.

Every folder is written under a temporary name and renamed into place, so a run killed at
any moment leaves only complete checkpoints behind.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
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
         metrics: Mapping[str, Any], keep_last: int = 2, training: Mapping[str, Any] | None = None,
         preprocessing: Mapping[str, Any] | None = None) -> Path:
    """Write ``step_N`` completely, point ``latest`` at it, and drop older steps beyond ``keep_last``.

    ``training`` (the recipe) and ``preprocessing`` (e.g. the input size trained at) go into the step's
    config.json and model card (see :meth:`MultiTaskModel.save_pretrained`).

    On a write error (disk full, read-only folder) the partial folder is removed and a
    :class:`CheckpointWriteError` names the path; ``latest`` and ``best`` keep pointing at complete checkpoints.
    """
    root = _root(out_dir)
    final = root / f"step_{step:07d}"
    tmp = root / f".step_{step:07d}.tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp, results=dict(metrics) or None, training=training, preprocessing=preprocessing)
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


def _inside(root: Path, folder: Path) -> bool:
    """Whether ``folder`` is (after following links) a ``step_N`` folder directly under ``root``."""
    resolved = folder.resolve()
    return resolved.parent == root.resolve() and resolved.name.startswith("step_")


def _pointed_at(root: Path, pointer: Path) -> Path | None:
    """The folder ``latest`` names (a file holding a folder name, or a symbolic link), None when it names none;
    one outside ``root`` is refused."""
    name = os.readlink(pointer) if pointer.is_symlink() else pointer.read_text(encoding="utf-8").strip()
    if not name:
        return None
    target = root / name
    if not _inside(root, target):
        raise ValueError(f"{pointer} points at {target.resolve()}, which is not a step_N folder of this run "
                         f"(outside {root}): write the name of one of its step_N folders into it, or delete it to "
                         "resume from the newest")
    return target


def latest(out_dir: Path) -> Path:
    """The newest complete checkpoint of a run, or a FileNotFoundError saying where it looked.

    ``checkpoints/latest`` must name a ``step_N`` folder of the run's own ``checkpoints/`` (a ValueError otherwise,
    so a resume never loads files from elsewhere); step folders that are links out of it are never taken.
    """
    root = _root(out_dir)
    pointer = root / "latest"
    present = pointer.exists() or pointer.is_symlink()
    if present:
        target = _pointed_at(root, pointer)
        if target is not None and _complete(target):
            return target
    steps = sorted(p for p in root.glob("step_*") if _complete(p) and _inside(root, p))
    if not steps:
        raise FileNotFoundError(f"nothing to resume: no complete checkpoint under {root} "
                                "(train without --resume first, or point train.out_dir at the run)")
    if present:
        warnings.warn(f"{pointer} names a missing or incomplete checkpoint; resuming from {steps[-1]}", stacklevel=2)
    return steps[-1]


def best(out_dir: Path) -> Path:
    """``checkpoints/best`` of a run (or the copy kept aside while a new best was being swapped in)."""
    return published_directory(_root(out_dir) / "best")


def _verify_files(path: Path) -> None:
    """Check every file of a training checkpoint against the sha256 recorded for it; refuse a missing record."""
    checksums = path / CHECKSUMS_NAME
    if not checksums.is_file():
        raise ValueError(f"{checksums} is missing, so the checkpoint's files cannot be verified; resume only from a "
                         "complete step_N folder written by mtlzoo's Trainer (or start the run again)")
    recorded = read_json(checksums)
    weights_sha = (read_json(path / CONFIG_NAME).get("weights") or {}).get("sha256")
    expected = {WEIGHTS_NAME: weights_sha, **recorded} if weights_sha else dict(recorded)
    needed = [WEIGHTS_NAME, *(f.name for f in _state_files(path))]
    missing = [name for name in needed if not isinstance(expected.get(name), str)]
    if missing:
        raise ValueError(f"{checksums} records no sha256 for {missing[0]!r}; accepted: a sha256 for each of {needed}")
    outside = [name for name in expected if Path(name).name != name or name in ("", ".", "..")]
    if outside:
        raise ValueError(f"{checksums} names {outside[0]!r}, which is not a file of {path}; accepted: the names of "
                         f"the step folder's own files ({needed})")
    for name, sha in expected.items():
        if sha256_file(path / name) != sha:
            raise ValueError(f"{path / name} does not match the sha256 its checkpoint recorded: the file is corrupt; "
                             "resume from an earlier checkpoint or start again")


def _read_weights(weights: Path, model: nn.Module, device: str) -> dict[str, torch.Tensor]:
    """The tensors of ``weights`` once they match ``model`` key for key and shape for shape and are all finite."""
    try:
        tensors = load_file(str(weights), device=device)
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{weights} is truncated or corrupt ({error}); resume from an earlier checkpoint") from None
    wanted = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    for key, shape in wanted.items():
        saved = tuple(tensors[key].shape) if key in tensors else None
        if saved != shape:
            held = f"holds {key!r} with shape {saved}" if saved is not None else f"has no {key!r}"
            raise ValueError(f"{weights} {held}, where this model has shape {shape}: the checkpoint is of another "
                             "model; resume with the architecture, tasks and options of the run that wrote it")
    extra = [key for key in tensors if key not in wanted]
    if extra:
        raise ValueError(f"{weights} holds {extra[0]!r} with shape {tuple(tensors[extra[0]].shape)}, which this "
                         f"model lacks ({len(extra)} such keys): the checkpoint is of another model; resume with "
                         "the architecture, tasks and options of the run that wrote it")
    bad = [key for key, value in tensors.items() if value.is_floating_point() and not bool(value.isfinite().all())]
    if bad:
        raise ValueError(f"{weights} holds NaN or inf in {bad[0]!r} ({len(bad)} tensors): it cannot be resumed; "
                         "point checkpoints/latest at an earlier step_N folder, or start again")
    return tensors


def load(path: Path, model: nn.Module, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Verify the checkpoint's recorded sha256 hashes, check and load the weights (strict, finite) and return its
    trainer state. Each refusal is a one-line ValueError naming the file (and the key) at fault."""
    weights = path / WEIGHTS_NAME
    if not weights.exists():
        raise FileNotFoundError(f"{path} is not a training checkpoint: {weights.name} is missing")
    _verify_files(path)
    model.load_state_dict(_read_weights(weights, model, str(map_location)), strict=True)
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
