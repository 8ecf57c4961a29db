"""Run logs: JSON lines on rank 0, optionally mirrored to TensorBoard."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from mtlzoo.extras import require


def to_plain(value: Any) -> Any:
    """Tensors and nested containers -> JSON-able Python values (NaN/inf become strings)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class RunLog:
    """Appends one JSON object per event to ``<out_dir>/log.jsonl``; a disabled log (other ranks) does nothing."""

    def __init__(self, out_dir: str | Path, enabled: bool = True, tensorboard: bool = False) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "log.jsonl"
        self._tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                require("tensorboard", "train.tensorboard=true (or set it false: log.jsonl is written either way)")
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))

    def write(self, kind: str, step: int, **values: Any) -> None:
        """Record an event (``train``, ``eval``, ``checkpoint``...) at a step."""
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": time.time(), **to_plain(values)}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in _scalars(record):
                self._tb.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _scalars(record: dict, prefix: str = "") -> list[tuple[str, float]]:
    out = []
    for key, value in record.items():
        if key in ("kind", "step", "time"):
            continue
        if isinstance(value, dict):
            out += _scalars(value, f"{prefix}{key}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((f"{prefix}{key}", float(value)))
    return out


def read_log(path: str | Path) -> list[dict]:
    """All records of a ``log.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
