"""Running a planned sweep in this process: baselines, then every applicable cell, each an ordinary training run
(resumed from its checkpoints when interrupted, skipped when its completion record matches its config).

Under ``torchrun`` every rank runs the same loop and each cell trains with DDP through the trainer; rank 0 alone
writes completion records and the results.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from mtlzoo.benchmark.cells import DONE, FAILED, RESUME, cell_state, config_hash, read_record, write_record
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
    _device_sync(trainer.device)
    wall = time.perf_counter() - begin
    steps, rate = clock.rate(wall)
    metrics = trainer.last_metrics
    return {**_identity(cell), "step": trainer.step, "protocol": metrics.get("protocol"),
            "metrics": metrics.get("metrics", {}), "steps_per_s": rate, "timed_steps": steps,
            "resumed_from_step": trainer.step - steps if resume else None, "wall_s": wall,
            "excluded_s": clock.excluded, "peak_memory_mib": memory.stop(), "memory_measure": memory.method,
            "machine": machine_name(trainer.device),
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


def run_cells(plan: Plan, states: dict[str, str], note: Callable[[str], None] = print,
              shard: tuple[int, int] | None = None, only: Sequence[str] = ()) -> dict[str, dict]:
    """Bring every runnable run of ``plan`` to completion (baselines first) from its ``states`` (of
    :func:`check_cells`); returns the records by cell key. With ``shard=(K, N)`` only runs K, K+N... are trained
    (N processes share one out_dir, each run folder trained by one of them), with ``only`` only the runs of
    those architecture labels (the baseline's included); the others are read when done.

    A signal between cells or inside one (the trainer checkpoints first) raises :class:`SweepInterrupted`.
    """
    runs = _runs(plan)
    records: dict[str, dict] = {}
    with StopSignals() as signals:
        for index, cell in enumerate(runs, 1):
            if signals.signum is not None:
                raise SweepInterrupted(signals.signum, f"before {cell.key}")
            barrier()
            folder, state = Path(cell.config.train.out_dir), states[cell.key]
            if (shard is not None and (index - 1) % shard[1] != shard[0] - 1) or (only and cell.architecture
                                                                                  not in only):
                continue
            if state == DONE:
                records[cell.key] = read_record(folder)
                continue
            note(f"[{index}/{len(runs)}] {cell.key}" + (" (resuming)" if state == RESUME else ""))
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
                note(f"{cell.key}: failed: {record['reason']} (kept as failed; --retry-failed runs it again)")
            if is_main_rank():
                write_record(folder, record)
            records[cell.key] = record
            barrier()
    for cell in runs if shard is not None or only else ():  # the runs of other processes that have finished
        folder = Path(cell.config.train.out_dir)
        if cell.key not in records and cell_state(folder, cell.config) == DONE:
            records[cell.key] = read_record(folder)
    return records
