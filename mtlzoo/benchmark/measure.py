"""What a cell costs: training steps per second (evaluation and checkpoint writing left out) and peak memory.

Peak memory is the rise over what the process held when the cell started (after a garbage collection, so the
runs before it count only with what they still hold): on CUDA ``torch.cuda.max_memory_allocated`` (its peak
reset before the cell) minus ``torch.cuda.memory_allocated`` then; on the CPU the process's peak resident set
size, Linux ``VmHWM`` (reset through ``/proc/self/clear_refs`` before the cell), minus the resident size then.
Elsewhere it is not measured (None).
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
MIB = 2**20


def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(encoding="ascii"), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


class PeakMemory:
    """Measures the peak memory of the code run between :meth:`start` and :meth:`stop` on ``device``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.method: str | None = None
        self._base: int | None = None

    def start(self) -> None:
        gc.collect()  # the trainers of earlier cells may sit in reference cycles
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self.method = "peak CUDA memory rise (max_memory_allocated - memory_allocated before)"
            return
        try:
            _CLEAR_REFS.write_text("5", encoding="ascii")  # resets VmHWM to the current RSS (Linux >= 4.0)
        except OSError:
            return
        self._base = _status_kib("VmRSS")
        self.method = "peak RSS rise (VmHWM after - VmRSS before)"

    def stop(self) -> float | None:
        """The peak in MiB (None when not measurable here)."""
        if self.device.type == "cuda":
            return (torch.cuda.max_memory_allocated(self.device) - self._base) / MIB
        peak = _status_kib("VmHWM")
        if self._base is None or peak is None:
            return None
        return max(peak - self._base, 0) * 1024 / MIB


class StepClock:
    """Wraps a Trainer's ``evaluate``, ``save_checkpoint`` and ``load_checkpoint`` (instance attributes, the class
    is untouched) to time training alone and count the steps this process trained."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.excluded = 0.0  # seconds spent evaluating and writing checkpoints
        self.start_step = trainer.step
        trainer.evaluate = self._timed(trainer.evaluate)
        trainer.save_checkpoint = self._timed(trainer.save_checkpoint)
        load = trainer.load_checkpoint

        def load_and_note(path: Any) -> None:
            load(path)
            self.start_step = trainer.step

        trainer.load_checkpoint = load_and_note

    def _timed(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            begin = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.excluded += time.perf_counter() - begin

        return timed

    def rate(self, wall_s: float) -> tuple[int, float | None]:
        """(steps trained by this process, their steps per second without evaluation and checkpoints)."""
        steps = self.trainer.step - self.start_step
        train_s = wall_s - self.excluded
        return steps, (steps / train_s if steps > 0 and train_s > 0 else None)
