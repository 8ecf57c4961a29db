"""How ``jacobian_mode="auto"`` chooses the batched or the looped Jacobian: memory first, then time.

Calibration takes a balancer's first four parameter-level steps: one warm-up of each path (batched,
then loop), then one measured step of each (batched, then loop). First-call costs (kernel autotuning,
workspaces, lazy initialisation) thus fall in the warm-ups, for both paths alike. A measured step
records its wall time (between two device syncs: the only host syncs of the run) and its memory:
``base``, the bytes alive when the Jacobian call starts (the forward graph, the parameters, their
gradients and optimizer state), and ``extra``, the most the call adds on top of that.

* CUDA: ``base = torch.cuda.memory_allocated()`` and ``extra = torch.cuda.max_memory_allocated() - base``
  after ``torch.cuda.reset_peak_memory_stats()`` (so calibration resets the allocator's peak statistics
  in its two measured steps).
* Other devices (the CPU allocator keeps no statistics): an estimate from the sizes autograd holds.
  ``base`` counts the parameters, their gradients and the tensors the loss graph saved for backward.
  ``extra`` is the Jacobian J (T x P x element size, for P shared parameter entries) plus what the path
  holds beside it. Batched: T rows of activation gradients in flight at once, each the size of the
  largest saved activation A, and, through the features, the T rows of the feature Jacobian. Looped:
  one row of activation gradients during a backward, and a second copy of J when the per-task rows are
  stacked into blocks at the end, so ``max(J, A)``.

The rule. A plain step's peak is at least ``base`` (its whole graph is alive when its backward starts),
so ``base + extra <= budget * base`` guarantees a peak of at most ``budget`` (:data:`MEMORY_BUDGET`, 1.15)
times the plain step's. The batched path is ruled out when it breaks that bound and adds more than the
loop; the loop, which always works, is never ruled out (when it is over budget too, a batched path that
adds no more than the loop stays in the running: memory does not separate them). Of the paths left, the
faster is kept for good
(``balancer._resolved_mode``). The memory figures (``balancer._auto_memory``) are not part of the
balancer's saved state: a run resumed between the two measured steps decides on time alone.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

MEMORY_BUDGET = 1.15
# calibration steps: (path, measured?)
_SCHEDULE = (("batched", False), ("loop", False), ("batched", True), ("loop", True))


def pick_mode(balancer: Any) -> tuple[str, bool]:
    """The Jacobian path for this call and whether to measure it (auto mode's calibration)."""
    if balancer.jacobian_mode != "auto":
        return balancer.jacobian_mode, False
    resolved = getattr(balancer, "_resolved_mode", None)
    if resolved is not None:
        return resolved, False
    calls = getattr(balancer, "_auto_calls", 0)
    balancer._auto_calls = calls + 1
    if calls < len(_SCHEDULE):
        return _SCHEDULE[calls]
    # a state restored past the schedule without a decision: decide on what was measured
    balancer._resolved_mode = decide(getattr(balancer, "_auto_times", {}), getattr(balancer, "_auto_memory", {}))
    return balancer._resolved_mode, False


def decide(times: Mapping[str, float], memory: Mapping[str, tuple[float, float]],
           budget: float = MEMORY_BUDGET) -> str:
    """The path to keep, from measured ``times`` (seconds) and ``memory`` (``(base, extra)`` bytes) per path.

    The batched path is ruled out when ``base + extra > budget * base`` and it adds more than the loop;
    the faster of the rest wins (the loop when nothing was timed).
    """
    allowed = {mode: t for mode, t in times.items() if mode in ("batched", "loop")}
    if "batched" in memory and "loop" in memory:
        base, extra = memory["batched"]
        if base + extra > budget * base and extra > memory["loop"][1]:
            allowed.pop("batched", None)
    return min(allowed, key=allowed.get) if allowed else "loop"


class Probe:
    """Measures one Jacobian call: started before it (memory baseline, then the clock), finished after it."""

    def __init__(self, losses: Sequence[Tensor], shared: Sequence[Tensor], own: Sequence[Sequence[Tensor]],
                 features: Sequence[Tensor] | None = None) -> None:
        self.device = shared[0].device
        self.num_tasks = len(losses)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = float(torch.cuda.memory_allocated(self.device))
        else:
            self.base, self.activation = _saved_bytes(losses, list(shared) + [p for group in own for p in group])
            self.jacobian = float(sum(p.numel() * p.element_size() for p in shared)) * self.num_tasks
            # the batched path through the features first holds each task's gradient on them
            self.feature_rows = float(sum(f.numel() * f.element_size() for f in features or ())) * self.num_tasks
        self.start = time.perf_counter()

    def finish(self, balancer: Any, mode: str) -> None:
        """Record this call's time and memory for ``mode`` and decide once both paths are measured."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - self.start
        if self.device.type == "cuda":
            extra = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            extra = self.jacobian + (self.num_tasks * self.activation + self.feature_rows if mode == "batched"
                                     else max(self.jacobian, self.activation))
        times = balancer.__dict__.setdefault("_auto_times", {})
        memory = balancer.__dict__.setdefault("_auto_memory", {})
        times[mode], memory[mode] = seconds, (self.base, float(extra))
        if "batched" in times and "loop" in times:
            balancer._resolved_mode = decide(times, memory)


def fall_back(balancer: Any, err: RuntimeError) -> None:
    """Use the looped Jacobian for good after a failed batched call (re-raise if batched was asked for)."""
    if balancer.jacobian_mode == "batched":
        raise err
    warnings.warn(f"batched Jacobian failed ({str(err).splitlines()[0]}); using the looped path from now on",
                  RuntimeWarning, stacklevel=4)
    balancer._resolved_mode = "loop"


def _saved_bytes(losses: Sequence[Tensor], params: Sequence[Tensor]) -> tuple[float, float]:
    """Bytes of ``params``, their gradients and the tensors the losses' graph saved for backward (each storage
    once), and the bytes of the largest saved tensor that is not a parameter (an activation).

    Reads what autograd holds without unpacking it (``SavedTensor.data``), so a checkpointed region is not
    recomputed; what such a region keeps elsewhere is not counted.
    """
    storages: dict[int, int] = {}

    def add(t: Tensor) -> tuple[int, int]:
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse or storage-less tensors
            return 0, 0
        key, nbytes = storage.data_ptr(), storage.nbytes()
        storages[key] = max(storages.get(key, 0), nbytes)
        return key, nbytes

    for p in params:
        add(p)
        if p.grad is not None:
            add(p.grad)
    owned = set(storages)
    largest, names, seen = 0, {}, set()
    stack = [loss.grad_fn for loss in losses if loss.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        kind = type(node)
        if kind not in names:
            names[kind] = [a for a in dir(node) if a.startswith("_raw_saved_")]
        for name in names[kind]:
            for t in _tensors(node, name):
                key, nbytes = add(t)
                if key not in owned:
                    largest = max(largest, nbytes)
        stack.extend(fn for fn, _ in node.next_functions if fn is not None)
    return float(sum(storages.values())), float(largest)


def _tensors(node: Any, name: str) -> list[Tensor]:
    try:
        saved = getattr(node, name)
        items = saved if isinstance(saved, (list, tuple)) else [saved]
        data = [getattr(s, "data", None) for s in items]
    except RuntimeError:  # freed by an earlier backward
        return []
    return [d for d in data if isinstance(d, Tensor)]
