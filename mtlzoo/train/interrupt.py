"""Stopping a run on Ctrl-C / SIGTERM at a step boundary with a checkpoint, instead of losing the last steps."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT / SIGTERM after saving a checkpoint; ``exit_code`` is 128 + the signal number.

    It subclasses KeyboardInterrupt, so code that stops on Ctrl-C keeps doing so.
    """

    def __init__(self, signum: int, step: int, path: Path | None) -> None:
        self.signum, self.step, self.path = int(signum), int(step), path
        where = f"checkpoint saved to {path}" if path is not None else "checkpoint saved by rank 0"
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}; {where}; "
                         "resume with --resume")

    @property
    def exit_code(self) -> int:
        """The shell convention: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


class StopSignals:
    """While active, SIGINT / SIGTERM only set ``signum`` (the loop stops at the next step boundary).

    A second signal gets the previous handlers (Ctrl-C twice stops at once). Handlers are installed
    only from the main thread, and the previous ones are restored on exit.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __exit__(self, *exc_info: Any) -> None:
        self._restore()
