"""evaluate(): run a multi-task model over a data set and score every task under a named protocol."""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlzoo.checkpoint import published_directory
from mtlzoo.metrics.base import Meter
from mtlzoo.metrics.baselines import Baseline, get_baseline
from mtlzoo.metrics.delta_m import delta_m_breakdown, result_parts
from mtlzoo.metrics.protocols import Protocol, create_meter, get_protocol
from mtlzoo.metrics.provenance import (
    MeasuredOn,
    baseline_measured_on,
    data_measured_on,
    data_name,
    data_version,
    result_measured_on,
)
from mtlzoo.registry import close_matches
from mtlzoo.tasks import Task

AMP_DTYPES: dict[str, torch.dtype | None] = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}


class DataMismatchWarning(UserWarning):
    """The baseline was measured on other data than the data scored, so no delta_m was computed."""


class EvalResult(dict):
    """``{task: {metric: value}}`` that also says which ``protocol`` made it, on which data (``dataset``, its
    ``data_version``) and, with a baseline, its delta_m: each task's share of it (``delta_m_by_task``) and the
    task that dominates it (``dominated_by``), or why it was refused (``delta_m_refused``)."""

    def __init__(self, metrics: Mapping[str, Mapping[str, float]], protocol: str, delta_m: float | None = None,
                 delta_style: str | None = None, baseline: str | None = None, *, dataset: str | None = None,
                 data_version: int | str | None = None, delta_m_by_task: Mapping[str, float] | None = None,
                 dominated_by: str | None = None, delta_m_refused: str | None = None) -> None:
        super().__init__({task: dict(values) for task, values in metrics.items()})
        self.protocol = protocol
        self.delta_m = delta_m
        self.delta_style = delta_style
        self.baseline = baseline
        self.dataset = dataset
        self.data_version = data_version
        self.delta_m_by_task = dict(delta_m_by_task) if delta_m_by_task is not None else None
        self.dominated_by = dominated_by
        self.delta_m_refused = delta_m_refused

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: protocol, the data (when it says), metrics and (when computed) delta_m with its style,
        baseline, per-task shares and dominating task, or (when refused) why."""
        out: dict[str, Any] = {"protocol": self.protocol}
        if self.dataset is not None:
            out["dataset"] = self.dataset
        if self.data_version is not None:
            out["data_version"] = self.data_version
        out["metrics"] = {t: dict(v) for t, v in self.items()}
        if self.delta_m is not None:
            out.update(delta_m=self.delta_m, delta_style=self.delta_style, baseline=self.baseline,
                       delta_m_by_task=self.delta_m_by_task, dominated_by=self.dominated_by)
        if self.delta_m_refused is not None:
            out["delta_m_refused"] = self.delta_m_refused
        return out

    def __repr__(self) -> str:
        extra = f", delta_m={self.delta_m:.2f} ({self.delta_style})" if self.delta_m is not None else ""
        return f"EvalResult(protocol={self.protocol!r}{extra}, {dict.__repr__(self)})"


def _model_device(model: nn.Module) -> torch.device:
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


def _match_size(task: Task, output: Tensor, target: Tensor) -> Tensor:
    """Resize a dense raw output to its target's spatial size (bilinear), as the offline MTI-Net path does."""
    if not task.dense or output.dim() != 4 or output.shape[-2:] == target.shape[-2:]:
        return output
    return F.interpolate(output.float(), size=tuple(target.shape[-2:]), mode="bilinear", align_corners=False)


def recorded_results(path: str | os.PathLike) -> dict[str, Any]:
    """The results saved at ``path``, for ``baseline=``: a training run folder (its best checkpoint, else its
    latest), a checkpoint folder (the ``results`` of its config.json) or a JSON file (``mtlzoo eval --json``)."""
    path = Path(path)
    root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    best, latest = published_directory(root / "best"), root / "latest"
    if not (root / "config.json").exists() and (best.is_dir() or latest.is_file()):
        path = best if best.is_dir() else root / latest.read_text(encoding="utf-8").strip()
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"baseline {str(path)!r} is not a run folder, a checkpoint folder with config.json "
                                "or a JSON result file")
    data = json.loads(file.read_text(encoding="utf-8"))
    results = data.get("results") if file.name == "config.json" else data
    if not isinstance(results, Mapping) or not results:
        raise ValueError(f"baseline {str(file)!r} records no results; evaluate the checkpoint (`mtlzoo eval ... "
                         "--json FILE`) and pass that file, or train with evaluation data")
    return dict(results)


def _resolve_baseline(baseline: Any, proto: Protocol) -> tuple[Mapping | None, str | None, MeasuredOn]:
    """(metrics, name, the data it was measured on) of the baseline argument: None, "auto" (the protocol's), a
    name, a Baseline, a ``{task: {metric: value}}`` dict, a saved result (``EvalResult.to_dict()``, as ``mtlzoo
    eval --json`` writes), or the path of a run folder, checkpoint folder or such JSON file (see
    :func:`recorded_results`)."""
    if baseline is None:
        return None, None, MeasuredOn()
    if isinstance(baseline, str) and baseline == "auto":
        if proto.baseline is None:
            warnings.warn(f"protocol {proto.name!r} has no shipped baseline, so no delta_m is computed; pass "
                          "baseline= a baseline name, a {task: {metric: value}} dict or a saved result", stacklevel=3)
            return None, None, MeasuredOn()
        baseline = proto.baseline
    saved_at = None
    if isinstance(baseline, os.PathLike) or (isinstance(baseline, str) and Path(baseline).exists()):
        saved_at, baseline = str(baseline), recorded_results(baseline)
    if isinstance(baseline, str):
        baseline = get_baseline(baseline)
    if isinstance(baseline, Baseline):
        metrics, name, measured = baseline.metrics, baseline.name, baseline.protocol
        data = baseline_measured_on(baseline)
    else:
        (metrics, measured), name = result_parts(baseline), saved_at or "custom"
        data = result_measured_on(baseline)
    if measured is not None and measured != proto.name:
        warnings.warn(f"baseline {name!r} was measured under protocol {measured!r}, "
                      f"not {proto.name!r}; the delta_m mixes protocols", stacklevel=3)
    return metrics, name, data


def _refusal(baseline: str | None, measured: MeasuredOn, scored: MeasuredOn) -> str | None:
    """Why no delta_m is computed against a baseline measured on other data than the data scored, or None."""
    if not measured.differs_from(scored):
        return None
    return (f"no delta_m: baseline {baseline!r} was measured on {measured.describe()}, the data scored is "
            f"{scored.describe()}; score the baseline's data or pass a baseline measured on this data.")


def _autocast(amp: bool | str, device: torch.device) -> contextlib.AbstractContextManager:
    """autocast for ``amp``: "bf16", "fp16", "none", or a bool (True: fp16 on CUDA, bf16 elsewhere)."""
    if isinstance(amp, bool):
        amp = ("fp16" if device.type == "cuda" else "bf16") if amp else "none"
    if amp not in AMP_DTYPES:
        raise ValueError(f"evaluate: amp must be one of {list(AMP_DTYPES)} or a bool, got {amp!r}")
    dtype = AMP_DTYPES[amp]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def _warn_unknown_keys(batch: Mapping[str, Any], tasks: list[Task], warned: set[str]) -> None:
    """Warn once when a task has no target in a batch that holds keys naming no task (a misspelt task is never
    scored); extra targets for tasks the model does not have are fine and stay silent."""
    names = [t.name for t in tasks]
    missing = [n for n in names if n not in batch]
    unknown = [k for k in batch if k != "image" and k not in names and k not in warned]
    if not missing or not unknown:
        return
    warned.update(unknown)
    guesses = [f"{k!r} -> {near[0]!r}" for k in unknown if (near := close_matches(k, missing, n=1))]
    hint = f"; did you mean {', '.join(guesses)}?" if guesses else ""
    warnings.warn(f"evaluate: task(s) {missing} have no target in the batch, whose key(s) {unknown} name no task "
                  f"of the model{hint}", stacklevel=3)


def _score(task: Task, meter: Meter, output: Tensor, target: Tensor) -> Tensor:
    """Feed one batch of ``task`` to its meter; returns a device flag: did the raw output hold NaN or inf?"""
    try:
        meter.update(task.postprocess(_match_size(task, output, target)), target)
    except ValueError as error:
        raise ValueError(f"task {task.name!r}: {error}") from None
    if not output.is_floating_point():
        return torch.zeros((), dtype=torch.bool, device=output.device)
    return ~torch.isfinite(output).all()


def _warn_non_finite(flags: dict[str, list[Tensor]], step: int | None) -> None:
    """Warn for each task whose raw output held NaN or inf, naming the first such batch (one host sync per task)."""
    at = f" at training step {step}" if step is not None else ""
    for name, per_batch in flags.items():
        bad = torch.stack(per_batch).nonzero().flatten().tolist() if per_batch else []
        if bad:
            warnings.warn(f"evaluate: task {name!r} predicted non-finite values{at} in {len(bad)} of "
                          f"{len(per_batch)} batch(es) (first: batch {bad[0]}); its metrics are not "
                          "trustworthy", stacklevel=3)


def _progress(data: Iterable, enabled: bool, label: str) -> Iterable:
    if not enabled:
        return data
    from tqdm.auto import tqdm

    return tqdm(data, desc=f"evaluate [{label}]", leave=False)


def _data_protocol(data: Iterable) -> str:
    """The protocol ``data`` (a data set, or a DataLoader over one) carries as ``default_protocol``, else "generic"."""
    return getattr(getattr(data, "dataset", data), "default_protocol", None) or "generic"


def evaluate(model: nn.Module, data: Iterable[Mapping[str, Tensor]], protocol: str | Protocol | None = None,
             baseline: Any = None, device: str | torch.device | None = None, amp: bool | str = False,
             channels_last: bool = False, progress: bool = True, step: int | None = None) -> EvalResult:
    """Score ``model`` on every batch of ``data`` (dicts with "image" and one target per task) under ``protocol``
    (default: the data set's own ``default_protocol``, else "generic").

    Each task present in a batch is scored from ``task.postprocess(output)``; tasks a batch lacks are
    skipped for that batch, and a batch key that names no task warns once. ``baseline`` (None, "auto" for
    the protocol's own, a shipped baseline name, a ``{task: {metric: value}}`` dict or a saved result) adds
    delta_m in the protocol's style, with each task's share and the task that dominates it (if one does); a
    baseline measured on other data (another data set, or another generator version) gives no delta_m but a
    :class:`DataMismatchWarning` and ``delta_m_refused``. ``device`` moves the model there for the run (and
    back afterwards); ``amp`` is "bf16", "fp16", "none" or a bool (True: fp16 on CUDA, bf16 elsewhere);
    ``channels_last`` converts the model and inputs. A non-finite raw output warns naming the task, the batch
    and ``step``. The model is put in eval mode and restored afterwards.
    """
    proto = get_protocol(protocol if protocol is not None else _data_protocol(data))
    base, base_name, measured = _resolve_baseline(baseline, proto)  # a bad baseline fails before any work
    tasks: list[Task] = list(model.tasks)
    home = _model_device(model)
    moved = device is not None
    device = torch.device(device) if moved else home
    autocast = _autocast(amp, device)
    meters = {t.name: create_meter(t, proto) for t in tasks}
    flags: dict[str, list[Tensor]] = {t.name: [] for t in tasks}
    seen: set[str] = set()
    warned: set[str] = set()
    was_training = model.training
    if moved:
        model.to(device)
    model.eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    try:
        with torch.inference_mode():
            for batch in _progress(data, progress, proto.name):
                _warn_unknown_keys(batch, tasks, warned)
                image = batch["image"].to(device, non_blocking=True)
                if channels_last:
                    image = image.contiguous(memory_format=torch.channels_last)
                with autocast:
                    outputs = model(image)
                for task in tasks:
                    if task.name not in batch:
                        continue
                    target = batch[task.name].to(device, non_blocking=True)
                    flags[task.name].append(_score(task, meters[task.name], outputs[task.name], target))
                    seen.add(task.name)
    finally:
        model.train(was_training)
        if moved and device != home:
            model.to(home)
    if not seen:
        raise ValueError(f"no batch held a target for any task of the model {[t.name for t in tasks]}")
    _warn_non_finite(flags, step)
    metrics = {t.name: meters[t.name].compute() for t in tasks if t.name in seen}
    found = {"dataset": data_name(data), "data_version": data_version(data)}
    if base is None:
        return EvalResult(metrics, proto.name, **found)
    refused = _refusal(base_name, measured, data_measured_on(data))
    if refused is not None:
        warnings.warn(refused, DataMismatchWarning, stacklevel=2)
        return EvalResult(metrics, proto.name, **found, delta_m_refused=refused)
    parts = delta_m_breakdown(metrics, base, protocol=proto, tasks=tasks)
    return EvalResult(metrics, proto.name, parts.value, proto.delta_style, base_name, **found,
                      delta_m_by_task=parts.by_task, dominated_by=parts.dominated_by)
