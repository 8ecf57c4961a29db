"""evaluate(): run a multi-task model over a data set and score every task under a named protocol."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlzoo.metrics.baselines import Baseline, get_baseline
from mtlzoo.metrics.delta_m import delta_m
from mtlzoo.metrics.protocols import Protocol, create_meter, get_protocol
from mtlzoo.tasks import Task


class EvalResult(dict):
    """``{task: {metric: value}}`` that also says which ``protocol`` made it and, with a baseline, its delta_m."""

    def __init__(self, metrics: Mapping[str, Mapping[str, float]], protocol: str, delta_m: float | None = None,
                 delta_style: str | None = None, baseline: str | None = None) -> None:
        super().__init__({task: dict(values) for task, values in metrics.items()})
        self.protocol = protocol
        self.delta_m = delta_m
        self.delta_style = delta_style
        self.baseline = baseline

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: protocol, metrics and (when computed) delta_m with its style and baseline."""
        out: dict[str, Any] = {"protocol": self.protocol, "metrics": {t: dict(v) for t, v in self.items()}}
        if self.delta_m is not None:
            out.update(delta_m=self.delta_m, delta_style=self.delta_style, baseline=self.baseline)
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


def _resolve_baseline(baseline: Any, proto: Protocol) -> tuple[Mapping | None, str | None]:
    """(metrics, name) of the baseline argument: None, "auto" (the protocol's), a name, a Baseline or a dict."""
    if baseline is None:
        return None, None
    if isinstance(baseline, str) and baseline == "auto":
        if proto.baseline is None:
            return None, None
        baseline = proto.baseline
    if isinstance(baseline, str):
        baseline = get_baseline(baseline)
    if isinstance(baseline, Baseline):
        if baseline.protocol != proto.name:
            warnings.warn(f"baseline {baseline.name!r} was measured under protocol {baseline.protocol!r}, "
                          f"not {proto.name!r}; the delta_m mixes protocols", stacklevel=3)
        return baseline.metrics, baseline.name
    return baseline, "custom"


def _progress(data: Iterable, enabled: bool, label: str) -> Iterable:
    if not enabled:
        return data
    from tqdm.auto import tqdm

    return tqdm(data, desc=f"evaluate [{label}]", leave=False)


def evaluate(model: nn.Module, data: Iterable[Mapping[str, Tensor]], protocol: str | Protocol = "synthscenes",
             baseline: Any = None, device: str | torch.device | None = None, amp: bool = False,
             channels_last: bool = False, progress: bool = True) -> EvalResult:
    """Score ``model`` on every batch of ``data`` (dicts with "image" and one target per task) under ``protocol``.

    Each task present in a batch is scored from ``task.postprocess(output)``; tasks a batch lacks are
    skipped for that batch. ``baseline`` (None, "auto" for the protocol's own, a shipped baseline name,
    or a ``{task: {metric: value}}`` dict) adds delta_m in the protocol's style. ``amp`` runs the model
    under autocast (bfloat16 on CPU, float16 on CUDA); ``channels_last`` converts the model and inputs.
    The model is put in eval mode and restored afterwards.
    """
    proto = get_protocol(protocol)
    tasks: list[Task] = list(model.tasks)
    device = torch.device(device) if device is not None else _model_device(model)
    meters = {t.name: create_meter(t, proto) for t in tasks}
    seen: set[str] = set()
    was_training = model.training
    model.eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16) \
        if amp else contextlib.nullcontext()
    try:
        with torch.inference_mode():
            for batch in _progress(data, progress, proto.name):
                image = batch["image"].to(device, non_blocking=True)
                if channels_last:
                    image = image.contiguous(memory_format=torch.channels_last)
                with autocast:
                    outputs = model(image)
                for task in tasks:
                    if task.name not in batch:
                        continue
                    target = batch[task.name].to(device, non_blocking=True)
                    pred = task.postprocess(_match_size(task, outputs[task.name], target))
                    meters[task.name].update(pred, target)
                    seen.add(task.name)
    finally:
        model.train(was_training)
    if not seen:
        raise ValueError(f"no batch held a target for any task of the model {[t.name for t in tasks]}")
    metrics = {t.name: meters[t.name].compute() for t in tasks if t.name in seen}
    base, base_name = _resolve_baseline(baseline, proto)
    if base is None:
        return EvalResult(metrics, proto.name)
    value = delta_m(metrics, base, protocol=proto, tasks=tasks)
    return EvalResult(metrics, proto.name, value, proto.delta_style, base_name)
