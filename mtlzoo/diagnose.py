"""Gradient-conflict diagnostics: pairwise cosines, magnitude similarity, condition number, per-layer conflict map."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mtlzoo.checkpoint import atomic_write_text


def _layer_of(name: str, depth: int) -> str:
    parts = name.split(".")[:-1]  # drop "weight" / "bias"
    return ".".join(parts[:depth]) or name


def _cosines(gram: Tensor) -> Tensor:
    norms = gram.diagonal().clamp_min(0).sqrt()
    return gram / (norms[:, None] * norms[None, :]).clamp_min(1e-30)


def _magnitude_similarity(gram: Tensor) -> Tensor:
    squared = gram.diagonal().clamp_min(0)
    norms = squared.sqrt()
    return 2 * norms[:, None] * norms[None, :] / (squared[:, None] + squared[None, :]).clamp_min(1e-30)


def _condition_number(gram: Tensor) -> Tensor:
    """sigma_max / sigma_min of the task-gradient matrix, from the Gramian's eigenvalues."""
    eig = torch.linalg.eigvalsh(gram).clamp_min(0)
    return (eig[-1] / eig[0].clamp_min(1e-30)).sqrt()


def _batch_gramians(model: nn.Module, batch: Mapping[str, Tensor], layers: dict[str, list[int]],
                    shared: list[Tensor]) -> tuple[list[str], dict[str, Tensor]]:
    """The tasks the batch labels and, per layer, the Gramian of their loss gradients on the shared parameters."""
    outputs = model(batch["image"])
    if any(name not in batch for name in outputs):  # labelled tasks only (kept whole otherwise: it may carry more)
        outputs = {name: out for name, out in outputs.items() if name in batch}
    named = model.losses(outputs, batch)
    losses = list(named.values())
    rows = []
    for t, loss in enumerate(losses):
        grads = torch.autograd.grad(loss, shared, retain_graph=t < len(losses) - 1, allow_unused=True)
        rows.append([torch.zeros_like(p) if g is None else g for g, p in zip(grads, shared, strict=True)])
    blocks = [torch.stack([row[i].reshape(-1) for row in rows]).double() for i in range(len(shared))]
    return list(named), {layer: sum(blocks[i] @ blocks[i].T for i in indices) for layer, indices in layers.items()}


def gradient_report(model: nn.Module, batches: Iterable[Mapping[str, Tensor]], max_batches: int = 8,
                    layer_depth: int = 3, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Average per-batch task-gradient statistics on the shared parameters over up to ``max_batches`` batches.

    ``layer_depth`` is how many levels of parameter names make one layer of the conflict map. The tasks are
    those the batches label (a fine-tuned model's old tasks on its original data, say); every batch must label
    the same ones.
    """
    model = model.to(device).train()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    shared_ids = {id(p) for p in model.shared_parameters()}
    shared_named = [(n, p) for n, p in named if id(p) in shared_ids]
    if not shared_named:
        reason = "it shares none: a single-task model" if not shared_ids else "is the encoder frozen?"
        raise ValueError(f"the model has no trainable shared parameters to diagnose ({reason})")
    layers: dict[str, list[int]] = {}
    for i, (name, _) in enumerate(shared_named):
        layers.setdefault(_layer_of(name, layer_depth), []).append(i)
    shared = [p for _, p in shared_named]
    totals: dict[str, Tensor] = {}
    conditions, count = [], 0
    usage: dict[str, dict[str, dict[str, float]]] = {}
    tasks: list[str] | None = None
    for batch in batches:
        if count >= max_batches:
            break
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        labelled, grams = _batch_gramians(model, batch, layers, shared)
        if not labelled or (tasks is not None and labelled != tasks):
            raise ValueError(f"batch {count} labels the tasks {labelled}, "
                             + (f"batch 0 labelled {tasks}" if tasks is not None else f"none of {model.task_names}")
                             + "; every batch must label the same tasks of the model.")
        tasks = labelled
        _add_usage(usage, model)
        full = sum(grams.values())
        conditions.append(_condition_number(full))
        for layer, gram in [("__all__", full), *grams.items()]:
            stats = torch.stack([_cosines(gram), _magnitude_similarity(gram)])
            totals[layer] = totals.get(layer, 0) + stats
        count += 1
        model.zero_grad(set_to_none=True)
    if count == 0:
        raise ValueError("no batch to diagnose: the data is empty")
    report = _assemble(tasks, totals, conditions, count, full)
    if usage:
        report["expert_usage"] = {gate: {level: {e: w / count for e, w in weights.items()}
                                         for level, weights in levels.items()} for gate, levels in usage.items()}
    return report


def _add_usage(totals: dict[str, dict[str, dict[str, float]]], model: nn.Module) -> None:
    """Add the gate weights of the last forward of a gated-expert model (MMoE, CGC, PLE, DSelect-k) to ``totals``."""
    if not hasattr(model, "gate_weights"):
        return
    for gate, levels in model.gate_weights().items():
        for level, weights in levels.items():
            into = totals.setdefault(gate, {}).setdefault(level, {})
            for expert, weight in weights.items():
                into[expert] = into.get(expert, 0.0) + weight


def _assemble(tasks: list[str], totals: dict[str, Tensor], conditions: list[Tensor], count: int,
              last_gram: Tensor) -> dict[str, Any]:
    mean = {layer: stats / count for layer, stats in totals.items()}
    overall = mean.pop("__all__")
    off_diagonal = ~torch.eye(len(tasks), dtype=torch.bool)
    layer_rows = []
    for layer, stats in mean.items():
        cos = stats[0]
        layer_rows.append({
            "layer": layer,
            "min_cosine": float(cos[off_diagonal].min()) if len(tasks) > 1 else 1.0,
            "negative_pairs": float((cos[off_diagonal] < 0).float().mean()) if len(tasks) > 1 else 0.0,
            "cosine": cos.tolist(),
        })
    return {
        "tasks": tasks,
        "batches": count,
        "cosine": overall[0].tolist(),
        "magnitude_similarity": overall[1].tolist(),
        "grad_norms": last_gram.diagonal().clamp_min(0).sqrt().tolist(),
        "condition_number": float(torch.stack(conditions).mean()),
        "layers": layer_rows,
    }


def summarize(report: Mapping[str, Any]) -> str:
    """A few lines: the most conflicting pair, the condition number, the most contested layers."""
    tasks, cos = report["tasks"], report["cosine"]
    pairs = [(cos[i][j], tasks[i], tasks[j]) for i in range(len(tasks)) for j in range(i + 1, len(tasks))]
    lines = [f"tasks: {', '.join(tasks)} over {report['batches']} batch(es)",
             f"condition number of the task-gradient system: {report['condition_number']:.3g}"]
    if pairs:
        worst = min(pairs)
        lines.append(f"most conflicting pair: {worst[1]} vs {worst[2]} (cosine {worst[0]:+.3f})")
        share = sum(c < 0 for c, _, _ in pairs) / len(pairs)
        lines.append(f"pairs with negative cosine: {share:.0%}")
        contested = sorted(report["layers"], key=lambda r: r["min_cosine"])[:3]
        lines.append("most contested layers: " + ", ".join(f"{r['layer']} ({r['min_cosine']:+.2f})" for r in contested))
    for gate, levels in report.get("expert_usage", {}).items():
        for level, weights in levels.items():
            shares = ", ".join(f"{expert} {weight:.2f}" for expert, weight in weights.items())
            lines.append(f"expert usage of the {gate} gate, {level}: {shares}")
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``diagnose.json`` plus PNG plots (cosine heatmap, per-layer conflict map); returns the paths."""
    from mtlzoo.plots import plot_heatmap, plot_layer_conflicts

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [atomic_write_text(out / "diagnose.json", json.dumps(report, indent=2))]
    paths.append(plot_heatmap(report["cosine"], report["tasks"], out / "gradient_cosine.png",
                              title="Pairwise cosine of task gradients"))
    paths.append(plot_heatmap(report["magnitude_similarity"], report["tasks"], out / "magnitude_similarity.png",
                              title="Gradient magnitude similarity", vmin=0.0))
    paths.append(plot_layer_conflicts(report["layers"], out / "layer_conflicts.png"))
    return paths
