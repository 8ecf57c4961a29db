"""PNG plots for runs and diagnostics (matplotlib, Agg backend; written atomically)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mtlzoo.checkpoint import atomic_write
from mtlzoo.extras import require


def _figure():
    matplotlib = require("matplotlib", "plotting")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _figure()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def plot_heatmap(matrix: Sequence[Sequence[float]], labels: Sequence[str], path: str | Path, title: str,
                 vmin: float = -1.0, vmax: float = 1.0) -> Path:
    """A labelled T x T heatmap with the values printed in the cells."""
    plt = _figure()
    size = 1.0 + 0.7 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(matrix, cmap="RdBu", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax)
    ax.set_title(title)
    return _save(fig, Path(path))


def plot_layer_conflicts(layers: Sequence[Mapping], path: str | Path, top: int = 30) -> Path:
    """Bar chart of the lowest pairwise cosine per shared layer (negative = the tasks fight over it)."""
    plt = _figure()
    rows = list(layers)[:top]
    fig, ax = plt.subplots(figsize=(8, 0.25 * len(rows) + 1.5))
    values = [r["min_cosine"] for r in rows]
    ax.barh(range(len(rows)), values, color=["tab:red" if v < 0 else "tab:blue" for v in values])
    ax.set_yticks(range(len(rows)), [r["layer"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("lowest pairwise cosine of task gradients")
    ax.set_title("Per-layer gradient conflict (shared layers, input to output)")
    return _save(fig, Path(path))


def plot_curves(series: Mapping[str, Sequence[tuple[int, float]]], path: str | Path, title: str, ylabel: str,
                log: bool = False) -> Path:
    """One line per named series of (step, value) points."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, points in series.items():
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, label=name)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, Path(path))
