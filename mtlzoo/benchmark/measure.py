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
    """The steps and training seconds a Trainer ran in this process, read off the trainer's own clock (which leaves
    evaluation and checkpoint writing out); wraps its ``load_checkpoint`` (an instance attribute, the class is
    untouched) so that a resumed run counts from where it resumed."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.start_step, self.start_s = trainer.step, trainer.clock.seconds
        load = trainer.load_checkpoint

        def load_and_note(path: Any) -> None:
            load(path)
            self.start_step, self.start_s = trainer.step, trainer.clock.seconds

        trainer.load_checkpoint = load_and_note

    def train_s(self) -> float:
        """Seconds this process spent training."""
        return self.trainer.clock.total() - self.start_s

    def rate(self) -> tuple[int, float | None]:
        """(steps trained by this process, their steps per second without evaluation and checkpoints)."""
        steps, train_s = self.trainer.step - self.start_step, self.train_s()
        return steps, (steps / train_s if steps > 0 and train_s > 0 else None)
