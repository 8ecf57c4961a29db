"""The training clock: seconds spent training, evaluation and checkpoint writing left out, carried across resumes.

Equal-time comparisons and steps per second both read it, so there is one definition of training time: the
trainer's loop runs the clock and pauses it around evaluations and checkpoints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class TrainingClock:
    """Accumulates the seconds it runs; ``sync`` (e.g. a CUDA synchronize) runs before every reading that stops
    it, so that queued device work is counted where it was launched."""

    def __init__(self, seconds: float = 0.0, sync: Callable[[], None] | None = None) -> None:
        self.seconds = float(seconds)  # before the current lap
        self._sync = sync
        self._since: float | None = None

    @property
    def running(self) -> bool:
        return self._since is not None

    def start(self) -> None:
        """Start a lap (no-op while running)."""
        if self._since is None:
            self._since = time.perf_counter()

    def stop(self) -> None:
        """End the lap and add it (no-op while stopped)."""
        if self._since is not None:
            if self._sync is not None:
                self._sync()
            self.seconds += time.perf_counter() - self._since
            self._since = None

    def total(self) -> float:
        """Seconds so far, the running lap included."""
        return self.seconds + (time.perf_counter() - self._since if self._since is not None else 0.0)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the clock inside the block and restart it after, if it ran (nested pauses are fine)."""
        running = self.running
        self.stop()
        try:
            yield
        finally:
            if running:
                self.start()
