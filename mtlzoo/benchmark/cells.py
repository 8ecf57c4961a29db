"""The state of one cell's run folder: finished (a completion record), interrupted (checkpoints), fresh, or
holding a run of another config; and the completion record itself, written atomically after the final evaluation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtlzoo.checkpoint import atomic_write_text
from mtlzoo.config import Config
from mtlzoo.train import checkpoints

RECORD_NAME = "benchmark_cell.json"
# train keys that do not change what a run computes: a run folder moved, or resumed with another log cadence
_UNHASHED = ("out_dir", "overwrite", "progress", "log_every", "tensorboard", "keep_last")
DONE, RESUME, FRESH = "done", "resume", "fresh"
FAILED = "failed"  # the status of a record whose run stopped with an error (diverged, out of memory)


def config_hash(config: Config | Mapping[str, Any]) -> str:
    """sha256 of a run config (a Config or its saved ``run_config.json`` form), less the keys in ``_UNHASHED``."""
    data = json.loads(json.dumps(config.to_dict() if isinstance(config, Config) else dict(config)))
    for key in _UNHASHED:
        data.get("train", {}).pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def record_path(folder: Path) -> Path:
    """Where a finished cell keeps its completion record."""
    return Path(folder) / RECORD_NAME


def read_record(folder: Path) -> dict[str, Any] | None:
    """The completion record of a cell folder (None when it has none); a corrupt one is a ValueError naming it."""
    path = record_path(folder)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is corrupt ({error}); delete it to rebuild it from the run's last checkpoint, or "
                         "pass --overwrite to train the cell again") from None
    if not isinstance(record, dict) or "config_hash" not in record or "metrics" not in record:
        raise ValueError(f"{path} is not a completion record (no config_hash / metrics); delete it to rebuild it "
                         "from the run's last checkpoint, or pass --overwrite to train the cell again")
    return record


def write_record(folder: Path, record: Mapping[str, Any]) -> Path:
    """Write the completion record atomically (a sweep killed meanwhile leaves none or the whole one)."""
    return atomic_write_text(record_path(folder), json.dumps(dict(record), indent=2, sort_keys=True) + "\n")


def _saved_hash(folder: Path) -> str | None:
    """The config hash of the latest checkpoint of the run in ``folder`` (None when it has no checkpoint)."""
    try:
        latest = checkpoints.latest(folder)
    except FileNotFoundError:
        return None
    saved = latest / "run_config.json"
    try:
        return config_hash(json.loads(saved.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return "unreadable"


def cell_state(folder: Path, config: Config, overwrite: bool = False, retry_failed: bool = False) -> str:
    """``done`` (finished with this config, or failed with it), ``resume`` (its checkpoints continue) or ``fresh``
    (start it with :func:`start_fresh`). A folder holding another config's run is refused (ValueError naming the
    folder) unless ``overwrite`` (then ``fresh``); ``retry_failed`` makes a failed run ``fresh``. It only looks:
    files a run does not write (a user's notes, an editor's swap file, the lock file) do not count."""
    folder = Path(folder)
    wanted = config_hash(config)
    try:
        record = read_record(folder)
    except ValueError:
        if not overwrite:
            raise
        record = {"config_hash": None}
    if record is not None and record.get("status") == FAILED and retry_failed:
        record, overwrite = {"config_hash": None}, True
    found = record["config_hash"] if record is not None else _saved_hash(folder)
    if found == wanted:
        return DONE if record is not None else RESUME
    if found is not None and not overwrite:
        raise ValueError(f"{folder} holds a run of another config (config hash {str(found)[:12]} != "
                         f"{wanted[:12]}): the spec or a config it names changed; pass --overwrite to train it again "
                         "with the new config, or pick another out_dir")
    return FRESH


def start_fresh(folder: Path, config: Config, writer: bool = True) -> None:
    """Clear what a ``fresh`` run replaces: its completion record now (``writer``: the process that writes records),
    what a run writes (``checkpoints.RUN_FILES``) when the trainer starts (``config.train.overwrite``). Nothing
    else in the folder is touched, so a user's file there neither fails the run nor goes away."""
    if writer:
        record_path(folder).unlink(missing_ok=True)
    config.train.overwrite = True


def record_stamp(folder: Path) -> tuple[int, int, int] | None:
    """Which completion record the folder holds now (inode, size, mtime), to tell whether another process wrote
    or removed it meanwhile; None without one."""
    try:
        stat = record_path(folder).stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def finished_record(folder: Path, config: Config) -> dict[str, Any] | None:
    """The completion record of a run of ``config`` that finished (or failed); None while it has none, or one of
    another config or a corrupt one (the process that trains it decides about those)."""
    try:
        record = read_record(folder)
    except ValueError:
        return None
    return record if record is not None and record["config_hash"] == config_hash(config) else None
