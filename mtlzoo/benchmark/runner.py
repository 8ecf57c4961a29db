"""Running a planned sweep in this process: baselines, then every applicable cell, each an ordinary training run
(resumed from its checkpoints when interrupted, skipped when its completion record matches its config).

Under ``torchrun`` every rank runs the same loop and each cell trains with DDP through the trainer; rank 0 alone
writes completion records and the results, and takes the locks.

Every run is trained under its folder's lock (:mod:`mtlzoo.benchmark.locks`) and its folder is looked at again once
locked, so two processes sharing an out_dir (shards, or a stray second process) never train one run twice.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mtlzoo.benchmark.cells import (
    DONE,
    FAILED,
    FRESH,
    RESUME,
    cell_state,
    config_hash,
    finished_record,
    read_record,
    record_stamp,
    start_fresh,
    write_record,
)
from mtlzoo.benchmark.locks import CELL_LOCK, FileLock
from mtlzoo.benchmark.measure import PeakMemory, StepClock
from mtlzoo.benchmark.plan import Cell, Plan
from mtlzoo.benchmark.results import machine_name
from mtlzoo.benchmark.spec import SweepSpec
from mtlzoo.checkpoint import atomic_write_text
from mtlzoo.train.distributed import DistTimeoutError, barrier, explain_timeouts
from mtlzoo.train.interrupt import StopSignals, TrainingInterrupted

SPEC_NAME = "spec.json"


class SweepInterrupted(TrainingInterrupted):
    """The sweep stopped on SIGINT / SIGTERM; rerunning the same command continues it."""

    def __init__(self, signum: int, where: str) -> None:
        KeyboardInterrupt.__init__(self, f"interrupted {where}; run the same command again to continue the sweep")
        self.signum, self.step, self.path = int(signum), 0, None


def is_main_rank() -> bool:
    """Whether this process writes the sweep's files (rank 0 of a torchrun job, or a plain process)."""
    return int(os.environ.get("RANK", "0")) == 0


def _spec_record(spec: SweepSpec) -> dict[str, Any]:
    return {k: v for k, v in json.loads(json.dumps(spec.to_dict())).items() if k != "out_dir"}


def check_saved_spec(spec: SweepSpec, update: bool = False) -> None:
    """Refuse an out_dir holding a sweep of another spec unless ``update`` (the new spec then replaces it; cells
    whose config changed are still refused by their config hash without --overwrite)."""
    path = Path(spec.out_dir) / SPEC_NAME
    current = _spec_record(spec)
    if path.is_file() and not update:
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise ValueError(f"{path} is corrupt ({error}); delete it or pass --update-spec") from None
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if changed:
            raise ValueError(f"out_dir {spec.out_dir!r} holds a sweep of another spec (differs in {changed}); pass "
                             "--update-spec to continue it with this spec, or pick another out_dir")


def save_spec(spec: SweepSpec) -> None:
    """Write the spec (less its out_dir) as ``spec.json`` into the out_dir (rank 0)."""
    if is_main_rank():
        atomic_write_text(Path(spec.out_dir) / SPEC_NAME, json.dumps(_spec_record(spec), indent=2, sort_keys=True)
                          + "\n")


def _device_sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_cell(cell: Cell, resume: bool) -> dict[str, Any]:
    """Train (or resume) one cell's run and return its completion record (metrics, speed, memory, wall time).

    A stop signal that arrives during the final evaluation still yields the record: it rides on the
    :class:`TrainingInterrupted` (``record``), so the finished run is not trained or measured again.
    """
    from mtlzoo.train.run import build_trainer

    trainer = build_trainer(cell.config)
    clock, memory = StepClock(trainer), PeakMemory(trainer.device)
    memory.start()
    begin = time.perf_counter()
    try:
        with explain_timeouts(cell.config.train.dist_timeout):
            trainer.fit(resume=resume)
    except TrainingInterrupted as stop:
        if trainer.step >= cell.config.train.steps and trainer.last_metrics:
            stop.record = _record(cell, trainer, clock, memory, begin, resume)
        raise
    return _record(cell, trainer, clock, memory, begin, resume)


def _record(cell: Cell, trainer: Any, clock: StepClock, memory: PeakMemory, begin: float,
            resume: bool) -> dict[str, Any]:
    """The completion record: metrics, speed, memory, wall time, and the compute the run took (totals of forward
    passes, backward passes and optimizer updates, and the ``curve``: those and the training seconds at every
    evaluation; left out for a run resumed from a checkpoint written before work was counted)."""
    _device_sync(trainer.device)
    wall = time.perf_counter() - begin
    steps, rate = clock.rate()
    metrics = trainer.last_metrics
    work = {**trainer.work.to_dict(), "curve": trainer.curve} if trainer.work is not None else {}
    return {**_identity(cell), "step": trainer.step, "protocol": metrics.get("protocol"),
            "metrics": metrics.get("metrics", {}), "steps_per_s": rate, "timed_steps": steps,
            "resumed_from_step": trainer.step - steps if resume else None, "wall_s": wall,
            "excluded_s": wall - clock.train_s(), "peak_memory_mib": memory.stop(), "memory_measure": memory.method,
            "machine": machine_name(trainer.device), "torch_threads": torch.get_num_threads(), **work,
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _identity(cell: Cell) -> dict[str, Any]:
    """What every record of a run says about which run it is."""
    return {"kind": cell.kind, "architecture": cell.architecture, "model": cell.config.model.name,
            "method": cell.method, "seed": cell.seed, "key": cell.key, "config_hash": config_hash(cell.config),
            "world_size": int(os.environ.get("WORLD_SIZE", "1"))}


def _runs(plan: Plan) -> list[Cell]:
    return [*plan.baselines, *[c for c in plan.cells if c.config is not None]]


def check_cells(plan: Plan, overwrite: bool = False, retry_failed: bool = False) -> dict[str, str]:
    """The state of every run folder of ``plan`` (see :func:`cell_state`), so that a folder of another config or a
    corrupt record is refused before anything trains."""
    return {cell.key: cell_state(Path(cell.config.train.out_dir), cell.config, overwrite, retry_failed)
            for cell in _runs(plan)}


def failure_record(cell: Cell, error: BaseException) -> dict[str, Any]:
    """The record of a run that stopped with an error: the sweep goes on, the table names the error."""
    first = str(error).splitlines()[0] if str(error) else ""
    return {**_identity(cell), "status": FAILED, "reason": f"{type(error).__name__}: {first}", "metrics": {}}


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 1 <= K <= N: this process trains runs K, K+N, K+2N... of the sweep's order."""
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise ValueError(f"--shard {text!r}: expects K/N with 1 <= K <= N, e.g. 2/4")
    return int(k), int(n)


def record_stamps(plan: Plan) -> dict[str, Any]:
    """Which completion record every run folder holds now (see :func:`record_stamp`); taken before the checks, so
    that :func:`run_cells` can tell a record another process wrote after them."""
    return {cell.key: record_stamp(Path(cell.config.train.out_dir)) for cell in _runs(plan)}


POLL_S = 1.0  # how often a process waiting for a run another process trains looks again


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


@dataclass
class _Settle:
    """What one invocation brings its runs to completion with (see :func:`run_cells`)."""

    states: Mapping[str, str]
    stamps: Mapping[str, Any]
    overwrite: bool
    retry_failed: bool
    note: Callable[[str], None]
    signals: StopSignals
    total: int

    def run(self, index: int, cell: Cell, wait: bool) -> dict[str, Any] | None:
        """The run's record, trained under its folder's lock when not finished; None when another process holds
        that lock and ``wait`` is False."""
        folder = Path(cell.config.train.out_dir)
        planned, stamp = self.states[cell.key], self.stamps.get(cell.key)
        if planned == DONE and (not is_main_rank() or (stamp is not None and record_stamp(folder) == stamp)):
            record = read_record(folder)  # the record the checks saw: no lock needed to read it
            if record is not None:
                return record
        lock = FileLock(folder / CELL_LOCK) if is_main_rank() else None
        if lock is not None and not lock.acquire():
            if _world_size() > 1:  # the ranks of a torchrun job must all take the same path
                raise ValueError(f"{folder}: another process (pid {lock.holder()}) is training this run; a torchrun "
                                 "sweep shares its out_dir with no other process: wait for it, or stop it")
            if not wait:
                self.note(f"{cell.key}: another process (pid {lock.holder()}) is training it; left to it")
                return None
            self._wait(lock, cell)
        try:
            state = self._recheck(folder, cell, planned, stamp) if lock is not None else planned
            if state == DONE:
                return read_record(folder)
            if state == FRESH:
                start_fresh(folder, cell.config, writer=is_main_rank())
            return self._train(index, cell, folder, state)
        finally:
            if lock is not None:
                lock.release()

    def _wait(self, lock: FileLock, cell: Cell) -> None:
        self.note(f"{cell.key}: waiting for pid {lock.holder()}, which is training it")
        while not lock.acquire():
            if self.signals.signum is not None:
                raise SweepInterrupted(self.signals.signum, f"waiting for {cell.key}")
            _pause(POLL_S)

    def _recheck(self, folder: Path, cell: Cell, planned: str, stamp: Any) -> str:
        """The run's state once locked: another process may have finished it since the checks. A record written
        (or removed) meanwhile is taken as it is: --overwrite / --retry-failed applied to what the checks saw."""
        unchanged = record_stamp(folder) == stamp
        state = cell_state(folder, cell.config, self.overwrite and unchanged, self.retry_failed and unchanged)
        if state != planned and _world_size() > 1:
            raise ValueError(f"{folder} changed while this torchrun sweep ran (another process worked on it); run the "
                             "command again")
        return state

    def _train(self, index: int, cell: Cell, folder: Path, state: str) -> dict[str, Any]:
        self.note(f"[{index}/{self.total}] {cell.key}" + (" (resuming)" if state == RESUME else ""))
        try:
            record = train_cell(cell, resume=state == RESUME)
        except TrainingInterrupted as stop:
            if getattr(stop, "record", None) is not None and is_main_rank():
                write_record(folder, stop.record)
            raise SweepInterrupted(stop.signum, f"at step {stop.step} of {cell.key} (checkpoint saved)") from None
        except DistTimeoutError:
            raise
        except (RuntimeError, ValueError) as error:  # diverged, out of memory, refused: recorded, sweep goes on
            record = failure_record(cell, error)
            self.note(f"{cell.key}: failed: {record['reason']} (kept as failed; --retry-failed runs it again)")
        if is_main_rank():
            write_record(folder, record)
        return record


def run_cells(plan: Plan, states: dict[str, str], note: Callable[[str], None] = print,
              shard: tuple[int, int] | None = None, only: Sequence[str] = (), overwrite: bool = False,
              retry_failed: bool = False, stamps: Mapping[str, Any] | None = None) -> dict[str, dict]:
    """Bring every runnable run of ``plan`` to completion (baselines first) from its ``states`` (of
    :func:`check_cells`, with ``overwrite`` / ``retry_failed`` as given to it; ``stamps`` of :func:`record_stamps`
    taken before it); returns the records by cell key. With ``shard=(K, N)`` only runs K, K+N... are trained
    (N processes share one out_dir, each run folder trained by one of them), with ``only`` only the runs of
    those architecture labels (the baseline's included); the others are read when done.

    Each run is trained under its folder's lock and looked at again once locked. A run another live process holds
    is left to it by a shard or ``only`` process, and waited for (then read, or trained if that process died first)
    by a full one once its other runs are done. A signal between cells, while waiting or inside one (the trainer
    checkpoints first) raises :class:`SweepInterrupted`.
    """
    runs = _runs(plan)
    stamps = record_stamps(plan) if stamps is None else stamps
    partial = shard is not None or bool(only)
    records: dict[str, dict] = {}
    held: list[tuple[int, Cell]] = []
    with StopSignals() as signals:
        settle = _Settle(states, stamps, overwrite, retry_failed, note, signals, len(runs))
        for index, cell in enumerate(runs, 1):
            if signals.signum is not None:
                raise SweepInterrupted(signals.signum, f"before {cell.key}")
            barrier()
            if (shard is not None and (index - 1) % shard[1] != shard[0] - 1) or (only and cell.architecture
                                                                                  not in only):
                continue
            record = settle.run(index, cell, wait=False)
            if record is None:
                held.append((index, cell))
                continue
            records[cell.key] = record
            barrier()
        for index, cell in held if not partial else ():
            records[cell.key] = settle.run(index, cell, wait=True)
    for cell in runs if partial else ():  # the runs of other processes that have finished
        record = records.get(cell.key) or finished_record(Path(cell.config.train.out_dir), cell.config)
        if record is not None:
            records[cell.key] = record
    return records
