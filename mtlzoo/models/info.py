"""Model cost at a glance: parameters (shared / per task) and forward FLOPs for a task preset and input size.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts a multiply-add as two
FLOPs (so FLOPs = 2 x MACs) and covers matmuls and convolutions; elementwise work is not counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mtlzoo.models.factory import create_model
from mtlzoo.tasks import Task


def count_parameters(model: nn.Module) -> dict[str, Any]:
    """Total, shared and per-task parameter counts of a multi-task model."""
    per_task = {name: sum(p.numel() for p in model.task_parameters(name)) for name in model.task_names}
    return {"params": sum(p.numel() for p in model.parameters()),
            "params_shared": sum(p.numel() for p in model.shared_parameters()),
            "params_per_task": per_task}


@torch.no_grad()
def count_flops(model: nn.Module, input_size: Sequence[int] = (288, 384), batch_size: int = 1) -> dict[str, Any]:
    """Forward FLOPs per image (eval mode): total, encoder, and each task's head.

    Models with an ``input_shape`` (the vector models, ``*_mlp``) get a (batch, *input_shape) input; ``input_size``
    is then unused."""
    if len(input_size) != 2:
        raise ValueError(f"input_size must be (H, W), got {tuple(input_size)!r}")
    reference = next(model.parameters())
    shape = getattr(model, "input_shape", None)  # vector models (*_mlp) declare (D,); images are (C, H, W)
    shape = tuple(shape) if shape is not None else (model.in_chans, *input_size)
    x = torch.zeros(batch_size, *shape, device=reference.device, dtype=reference.dtype)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    counts = {name: sum(ops.values()) // batch_size for name, ops in counter.get_flop_counts().items()}
    root = type(model).__name__
    heads = {name: counts.get(f"{root}.heads.{name}", 0) for name in getattr(model, "task_names", [])}
    return {"flops": counter.get_total_flops() // batch_size, "flops_encoder": counts.get(f"{root}.encoder", 0),
            "flops_per_task_head": heads}


def model_info(name: str | nn.Module, tasks: str | Iterable[Task | Mapping[str, Any]] = "nyud",
               input_size: Sequence[int] = (288, 384), **model_kwargs: Any) -> dict[str, Any]:
    """Parameters and forward FLOPs of a registered model (or a built one) for ``tasks`` at ``input_size``.

    Example: ``model_info("squadnet_small", tasks="nyud", input_size=(288, 384))["gflops"]``.
    """
    if isinstance(name, nn.Module):
        if model_kwargs:
            raise TypeError(f"model keyword arguments {sorted(model_kwargs)} need a model name, not a built model")
        model, label = name, getattr(name, "architecture", type(name).__name__)
    else:
        model, label = create_model(name, tasks=tasks, **model_kwargs), name
    flops = count_flops(model, input_size)
    input_size = getattr(model, "input_shape", None) or input_size
    return {"model": label, "tasks": model.task_names, "input_size": list(input_size), **count_parameters(model),
            **flops, "gflops": flops["flops"] / 1e9}


def format_info(info: Mapping[str, Any]) -> str:
    """A short human-readable summary of :func:`model_info` (for the ``mtlzoo info`` command)."""
    size = "x".join(str(n) for n in info["input_size"])
    lines = [f"{info['model']}  tasks={','.join(info['tasks'])}  input={size}",
             f"  parameters: {info['params'] / 1e6:.2f} M (shared {info['params_shared'] / 1e6:.2f} M)",
             f"  forward:    {info['gflops']:.2f} GFLOPs/image (encoder {info['flops_encoder'] / 1e9:.2f})"]
    for task, params in info["params_per_task"].items():
        head_flops = info["flops_per_task_head"][task] / 1e9
        lines.append(f"    {task:<10} {params / 1e6:7.2f} M params  {head_flops:7.2f} GFLOPs")
    return "\n".join(lines)
