"""Trainer: the loop around an update rule, with evaluation, AMP, EMA, DDP, logs and resumable checkpoints."""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mtlzoo.config import ScheduleConfig, TrainConfig
from mtlzoo.schemes.work import Work
from mtlzoo.train import checkpoints, rng
from mtlzoo.train.bad_steps import BadStepGuard, check_finite_weights
from mtlzoo.train.clock import TrainingClock
from mtlzoo.train.distributed import DistInfo, init_distributed, pick_device
from mtlzoo.train.ema import ModelEMA
from mtlzoo.train.interrupt import StopSignals, TrainingInterrupted
from mtlzoo.train.recipe import training_record
from mtlzoo.train.runlog import RunLog, to_plain
from mtlzoo.train.sampler import EpochSeeded, ResumableSampler
from mtlzoo.train.schedule import build_schedulers


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class EvalSetup:
    """What evaluation runs on and how it is scored."""

    data: Dataset | None = None
    protocol: str | None = None
    baseline: Any = None
    batch_size: int = 16


class Trainer:
    """Trains ``model`` with an update rule (a wrapped balancer or a multi-step scheme).

    The rule owns forward, backward and optimizer steps; the trainer feeds it batches in a
    resumable order, runs it under autocast, keeps schedules, EMA, logs and checkpoints, and
    evaluates with the protocol's metrics every ``options.eval_every`` steps. ``rule`` may also be
    a balancer or a method name, wrapped with ``optimizer`` (an Optimizer or a factory) by
    ``mtlzoo.create_update_rule``. ``recipe`` (JSON-able) describes the run in each checkpoint's config.json
    and model card, under what the trainer records itself (method, lr, steps, frozen parts, parent checkpoint,
    the input size it trained at; see :func:`mtlzoo.train.recipe.training_record`).

    Compute is counted as the run goes, for equal-compute comparisons: ``work`` totals the forward passes,
    backward passes and optimizer updates the rule reported (:mod:`mtlzoo.schemes.work`), ``clock`` the seconds
    spent training (evaluation and checkpoints left out), and ``curve`` holds one entry per evaluation: ``{step,
    forward_passes, backward_passes, optimizer_updates, train_s, metrics}``. All three travel with the checkpoint,
    so a resumed run ends with the totals of an uninterrupted one (resumed from a checkpoint written before work
    was counted, ``work`` is None and the curve stops growing: unknown, not wrong).
    """

    def __init__(self, model: nn.Module, rule: Any, train_data: Dataset, options: TrainConfig | None = None,
                 evaluation: EvalSetup | None = None, schedule: ScheduleConfig | None = None,
                 batch_size: int = 8, num_workers: int = 0, run_config: Mapping[str, Any] | None = None,
                 optimizer: Any = None, recipe: Mapping[str, Any] | None = None) -> None:
        self.recipe = dict(recipe or {})
        if isinstance(rule, str):
            self.recipe.setdefault("method", rule)
        if not hasattr(rule, "step"):
            from mtlzoo.schemes import create_update_rule

            if optimizer is None:
                raise ValueError("pass optimizer= (an Optimizer or a factory params -> Optimizer) with a balancer "
                                 "or method name, or pass an update rule from mtlzoo.create_update_rule")
            rule = create_update_rule(rule, model, optimizer)
        self.options = options or TrainConfig()
        self.device = pick_device(self.options.device)
        self.dist: DistInfo = init_distributed(self.device, self.options.dist_timeout)
        if self.dist.enabled and self.options.device == "auto":
            self.device = pick_device("auto", self.dist.local_rank)
        self.model = model.to(self.device)
        if self.options.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.rule = rule
        self.evaluation = evaluation or EvalSetup()
        self.run_config = dict(run_config or {})
        self.out_dir = Path(self.options.out_dir)
        self.sampler = ResumableSampler(len(train_data), seed=self.options.seed, rank=self.dist.rank,
                                        world_size=self.dist.world_size, with_epoch=True)
        # the loaders get generators of their own: creating an iterator must not draw from the global RNG,
        # or a resumed run would see a different random stream than an uninterrupted one; augmentation draws
        # from a per-sample seed (seed, epoch, index), so neither workers nor resuming change it
        self.loader = DataLoader(EpochSeeded(train_data, self.options.seed), batch_size=batch_size,
                                 sampler=self.sampler, num_workers=num_workers,
                                 drop_last=True, pin_memory=self.device.type == "cuda",
                                 generator=torch.Generator().manual_seed(self.options.seed))
        self.steps_per_epoch = self.sampler.per_rank // batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"batch_size {batch_size} exceeds the {self.sampler.per_rank} samples each rank sees "
                             "per epoch; lower data.batch_size or use more data")
        schedule = schedule or ScheduleConfig()
        self.schedulers = build_schedulers(rule.optimizers, schedule.name, self.options.steps, power=schedule.power,
                                           step_size=schedule.step_size, gamma=schedule.gamma,
                                           warmup_steps=schedule.warmup_steps)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.options.amp == "fp16" else None
        self.ema = ModelEMA(self.model, self.options.ema) if self.options.ema else None
        if self.dist.is_main and self.options.overwrite:
            checkpoints.clear_run(self.out_dir)
        self._prior_entries = sorted(p.name for p in self.out_dir.iterdir()) if self.out_dir.is_dir() else []
        self.log = RunLog(self.out_dir, enabled=self.dist.is_main, tensorboard=self.options.tensorboard)
        self.step = 0
        self.best: dict[str, Any] = {}
        self.last_metrics: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.work: Work | None = Work()
        self.clock = TrainingClock(sync=self._sync_device)
        self.curve: list[dict[str, Any]] = []
        self.bad_steps = BadStepGuard(self.options.max_bad_steps)
        self.input_size: tuple[int, ...] | None = None  # (C, H, W) of the images the model was trained on
        self._saved: tuple[int, Path] | None = None  # (step, folder) of the last checkpoint this trainer wrote

    # ---- one step -------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.options.amp == "none":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.options.amp == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _to_device(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        if self.options.channels_last:
            out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
        return out

    def train_step(self, batch: Mapping[str, Any]) -> Any:
        """One update of the rule on one batch, then schedules and EMA."""
        epoch = self.step // self.steps_per_epoch
        epochs = max(1, math.ceil(self.options.steps / self.steps_per_epoch))
        self.input_size = tuple(batch["image"].shape[1:])
        with self._autocast():
            result = self.rule.step(self._to_device(batch), epoch=epoch, epochs=epochs, scaler=self.scaler,
                                    clip_grad=self.options.clip_grad)
        self.bad_steps.record(result, self.step + 1, self.log, self.scaler)  # warn on a skip, stop a diverged run
        if self.work is not None:
            self.work += result.work
        if self.scaler is not None:
            self.scaler.update()
        for scheduler in self.schedulers:
            scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        if self.step % self.steps_per_epoch == 0:
            self.rule.epoch_end()
        return result

    # ---- the loop -------------------------------------------------------------------------------
    def _batches(self, stop_at: int):
        while self.step < stop_at:
            epoch, offset = divmod(self.step, self.steps_per_epoch)
            self.sampler.set_epoch(epoch, skip=offset * self.loader.batch_size)
            for batch in self.loader:
                yield batch
                if self.step >= stop_at or self.step % self.steps_per_epoch == 0:
                    break

    def fit(self, resume: bool = False, stop_at: int | None = None) -> dict[str, Any]:
        """Train to ``options.steps`` and return the last metrics.

        ``resume`` continues from the latest checkpoint of ``options.out_dir`` (without it, a folder that
        already holds files is refused unless ``options.overwrite``); ``stop_at`` ends the run early at
        that step with a checkpoint (a time-limited job), to be resumed later. SIGINT / SIGTERM stop the
        run after the current step with a checkpoint and raise :class:`TrainingInterrupted`.
        """
        if resume and self.options.overwrite:
            raise ValueError("resume and train.overwrite exclude each other: --overwrite deletes the run that "
                             "--resume would continue")
        if resume:
            self.load_checkpoint(checkpoints.latest(self.out_dir))
        elif self.dist.is_main and not self.options.overwrite:
            checkpoints.check_out_dir(self.out_dir, self._prior_entries)
        stop_at = self.options.steps if stop_at is None else min(stop_at, self.options.steps)
        self._train_mode()
        bar = self._progress_bar()
        try:
            with StopSignals() as signals:
                self.clock.start()
                self._loop(stop_at, bar, signals)
        finally:
            self.clock.stop()
            if bar is not None:
                bar.close()
            self.log.close()
        return self.last_metrics

    def _loop(self, stop_at: int, bar: Any, signals: StopSignals) -> None:
        batches = self._batches(stop_at)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except RuntimeError:  # DataLoader workers that got the same Ctrl-C exit; the finished steps are kept
                if signals.signum is None:
                    raise
                self._interrupt(signals)
            result = self.train_step(batch)
            if self.step % self.options.log_every == 0 or self.step == self.options.steps:
                self._log_step(result, bar)
            if self.step % self.options.eval_every == 0 or self.step == self.options.steps:
                self._evaluate_and_checkpoint(bar)
            elif self.step == stop_at:
                self.save_checkpoint()
            if bar is not None:
                bar.update(1)
            if self._stop_requested(signals):
                self._interrupt(signals)

    def _interrupt(self, signals: StopSignals) -> None:
        """Checkpoint the current step (unless just done) and stop with :class:`TrainingInterrupted`."""
        saved = self._saved[1] if self._saved and self._saved[0] == self.step else self.save_checkpoint()
        self.log.write("interrupted", self.step, signal=signals.signum, path=str(saved))
        raise TrainingInterrupted(signals.signum, self.step, saved)

    def _stop_requested(self, signals: StopSignals) -> bool:
        """Whether a stop signal arrived; under DDP every rank learns it at the same step (one tiny all-reduce)."""
        if not self.dist.enabled:
            return signals.signum is not None
        flag = torch.tensor([signals.signum or 0], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        signals.signum = int(flag.item()) or None
        return signals.signum is not None

    def _train_mode(self) -> None:
        """Training mode; with ``freeze_norm`` batch-norm layers keep their running statistics (small batches)."""
        self.model.train()
        if self.options.freeze_norm:
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()

    def _progress_bar(self):
        if not (self.options.progress and self.dist.is_main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.options.steps, initial=self.step, desc="train", dynamic_ncols=True)

    def _log_step(self, result: Any, bar: Any) -> None:
        losses = to_plain(dict(result.losses))
        info = to_plain(result.info.as_dict()) if hasattr(result.info, "as_dict") else to_plain(result.info or {})
        lrs = [group["lr"] for optimizer in self.rule.optimizers for group in optimizer.param_groups]
        record = {"losses": losses, "info": info, "lr": lrs[0] if lrs else None, "skipped_steps": self.bad_steps.total}
        self.history.append({"step": self.step, **record})
        self.log.write("train", self.step, **record)
        if bar is not None:
            bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items() if isinstance(v, float)}, refresh=False)

    # ---- evaluation and checkpoints ---------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        """Score the model (its EMA copy when enabled) on the evaluation data under the protocol."""
        from mtlzoo.metrics import evaluate

        setup = self.evaluation
        if setup.data is None:
            return {}
        loader = DataLoader(setup.data, batch_size=setup.batch_size, shuffle=False, generator=torch.Generator())
        model = self.ema.module if self.ema is not None else self.model
        result = evaluate(model, loader, protocol=setup.protocol, baseline=setup.baseline,
                          device=self.device, amp=self.options.amp, progress=False, step=self.step)
        return result.to_dict()

    def _evaluate_and_checkpoint(self, bar: Any) -> None:
        with self.clock.paused():
            if self.dist.is_main and self.evaluation.data is not None:
                self.last_metrics = self.evaluate()
                self._train_mode()
                self.log.write("eval", self.step, **self.last_metrics)
                self._extend_curve()
                if bar is not None:
                    bar.write(f"step {self.step}: {checkpoints.summary(self.last_metrics)}")
            self.save_checkpoint()

    def _extend_curve(self) -> None:
        """One curve entry for the evaluation just made: the work and training seconds it took to get there."""
        if self.work is not None:
            self.curve.append({"step": self.step, **self.work.to_dict(), "train_s": self.clock.total(),
                               "metrics": self.last_metrics.get("metrics", {})})

    def _sync_device(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def state(self) -> dict[str, Any]:
        """Everything besides the model weights that a resumed run needs."""
        return {
            "step": self.step,
            "rule": self.rule.state_dict(),
            "schedulers": [s.state_dict() for s in self.schedulers],
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": rng.get_state(),
            "best": self.best,
            "last_metrics": self.last_metrics,
            "input_size": list(self.input_size) if self.input_size else None,
            "work": self.work.to_dict() if self.work is not None else None,
            "train_s": self.clock.total(),
            "curve": self.curve,
        }

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step_N`` (model in HF layout + trainer state) on rank 0, atomically."""
        if not self.dist.is_main:
            return None
        with self.clock.paused():
            return self._write_checkpoint()

    def _write_checkpoint(self) -> Path:
        is_best = self._is_best()  # before the state is written, so a resumed run knows its best so far
        check_finite_weights(self.model, self.step)
        training = training_record(self.model, self.rule, self.options, self.loader.batch_size, self.recipe,
                                   self.step, self.input_size)
        image = self.input_size is not None and len(self.input_size) == 3 and \
            self.input_size[0] == getattr(self.model, "in_chans", None)  # (C, H, W), not a vector model's (D,)
        path = checkpoints.save(self.out_dir, self.step, self.model, self.state(), self.run_config,
                                self.last_metrics, keep_last=self.options.keep_last, training=training,
                                preprocessing={"input_size": list(self.input_size)} if image else None)
        if is_best:
            checkpoints.mark_best(self.out_dir, path)
        self._saved = (self.step, path)
        self.log.write("checkpoint", self.step, path=str(path))
        return path

    def _is_best(self) -> bool:
        key = self.options.best_metric
        value = checkpoints.metric_value(self.last_metrics, key) if key else None
        if value is None:
            return False
        higher = checkpoints.higher_is_better(key, self.model, self.last_metrics)
        previous = self.best.get("value")
        if previous is None or (value > previous if higher else value < previous):
            self.best = {"value": value, "step": self.step, "metric": key}
            return True
        return False

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore weights and trainer state from a checkpoint folder."""
        state = checkpoints.load(Path(path), self.model, map_location=self.device)
        self.step = int(state["step"])
        self.rule.load_state_dict(state["rule"])
        for scheduler, sched_state in zip(self.schedulers, state["schedulers"], strict=True):
            scheduler.load_state_dict(sched_state)
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        rng.set_state(state["rng"])
        self.best = dict(state["best"])
        self.last_metrics = dict(state["last_metrics"])
        self.input_size = tuple(state["input_size"]) if state.get("input_size") else self.input_size
        self.work = Work.from_dict(state["work"]) if state.get("work") is not None else None
        self.clock.seconds = float(state.get("train_s", 0.0))
        self.curve = list(state.get("curve") or [])
