"""PNG plots of a sweep's results (matplotlib, the ``plots`` extra): delta_m per method with its 95% interval,
per-task relative change against the baselines, and a two-metric trade-off scatter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mtlzoo.benchmark.stats import t_interval
from mtlzoo.plots import _figure, _save


def _ran(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in results["aggregates"]["rows"] if r["status"] == "ok"]


def plot_delta_m(results: Mapping[str, Any], path: str | Path) -> Path | None:
    """Per architecture, each method's delta_m: one dot per seed and the mean with its 95% t interval over seeds."""
    rows = [r for r in _ran(results) if r["delta_m"]["mean"] is not None]
    if not rows:
        return None
    plt = _figure()
    archs = list(dict.fromkeys(r["architecture"] for r in rows))
    sizes = [sum(r["architecture"] == a for r in rows) for a in archs]
    fig, axes = plt.subplots(len(archs), 1, figsize=(7, 1.2 + 0.35 * sum(sizes) + 0.6 * len(archs)), squeeze=False,
                             sharex=True, layout="constrained",
                             gridspec_kw={"height_ratios": sizes})
    for ax, arch in zip(axes[:, 0], archs, strict=True):
        mine = [r for r in rows if r["architecture"] == arch]
        for y, row in enumerate(mine):
            seeds = [v for v in row["delta_m"]["values"] if v is not None]
            ax.scatter(seeds, [y] * len(seeds), s=12, color="tab:gray", zorder=2)
            interval = t_interval(row["delta_m"]["values"])
            half = 0.0 if interval is None else interval.high - interval.mean
            ax.errorbar(row["delta_m"]["mean"], y, xerr=half, fmt="o", color="tab:blue", capsize=3, zorder=3)
        ax.set_yticks(range(len(mine)), [r["method"] for r in mine], fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_title(arch, fontsize=9)
    better = "higher" if results["higher_is_better"] else "lower"
    axes[-1, 0].set_xlabel(f"delta_m (%) vs single-task baselines, {better} is better (dots: seeds; bars: 95% "
                           "t interval)")
    return _save(fig, Path(path))


def plot_task_change(results: Mapping[str, Any], path: str | Path) -> Path | None:
    """Heatmap of every row's mean relative change per task against the baselines (%, positive = better)."""
    rows = [r for r in _ran(results) if r["task_change"]]
    if not rows:
        return None
    plt = _figure()
    tasks = list(rows[0]["task_change"])
    matrix = [[(r["task_change"].get(t) or {}).get("mean") for t in tasks] for r in rows]
    values = [abs(v) for line in matrix for v in line if v is not None] or [1.0]
    bound = max(values) or 1.0
    fig, ax = plt.subplots(figsize=(1.5 + 1.1 * len(tasks), 1.0 + 0.32 * len(rows)))
    image = ax.imshow([[float("nan") if v is None else v for v in line] for line in matrix], cmap="RdBu",
                      vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [f"{r['architecture']} / {r['method']}" for r in rows], fontsize=8)
    for i, line in enumerate(matrix):
        for j, value in enumerate(line):
            ax.text(j, i, "–" if value is None else f"{value:+.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="relative change vs baseline (%), positive = better")
    ax.set_title("Per-task change against the single-task baselines")
    return _save(fig, Path(path))


def parse_tradeoff(text: str, results: Mapping[str, Any]) -> tuple[str, str]:
    """``task.metric,task.metric`` -> the two keys, each checked against the metrics the sweep recorded."""
    keys = [k.strip() for k in text.split(",")]
    recorded = sorted({f"{t}.{m}" for r in _ran(results) for t, ms in r["metrics"].items() for m in ms})
    if len(keys) != 2:
        raise ValueError(f"--tradeoff {text!r}: expects two task.metric keys separated by a comma, e.g. "
                         f"{','.join(recorded[:2])}")
    for key in keys:
        if key not in recorded:
            raise ValueError(f"--tradeoff {key!r}: not a recorded metric; one of {recorded}")
    return keys[0], keys[1]


def _point(row: Mapping[str, Any], key: str) -> tuple[float | None, float]:
    task, _, metric = key.partition(".")
    stat = row["metrics"][task][metric]
    return stat["mean"], stat["std"] or 0.0


def plot_tradeoff(results: Mapping[str, Any], keys: Sequence[str], path: str | Path) -> Path:
    """Each row's seed-mean of two metrics (error bars: sample std), one colour per architecture; the star is the
    single-task baseline."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    archs = list(dict.fromkeys(r["architecture"] for r in _ran(results)))
    colours = plt.get_cmap("tab10")
    for row in _ran(results):
        (x, dx), (y, dy) = _point(row, keys[0]), _point(row, keys[1])
        colour = colours(archs.index(row["architecture"]) % 10)
        ax.errorbar(x, y, xerr=dx, yerr=dy, fmt="o", color=colour, capsize=2)
        ax.annotate(row["method"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for i, arch in enumerate(archs):
        ax.scatter([], [], color=colours(i % 10), label=arch)
    base = results["aggregates"]["baseline"]
    if base is not None:
        ax.scatter([_point(base, keys[0])[0]], [_point(base, keys[1])[0]], marker="*", s=160, color="black",
                   label=f"{base['architecture']} (single-task)")
    ax.set_xlabel(keys[0])
    ax.set_ylabel(keys[1])
    ax.legend(fontsize=8)
    ax.set_title("Trade-off between two tasks (seed means)")
    return _save(fig, Path(path))


def write_plots(results: Mapping[str, Any], folder: str | Path, tradeoff: str | None = None) -> list[Path]:
    """Every plot into ``folder`` (``delta_m.png``, ``task_change.png``, ``tradeoff.png`` when asked)."""
    folder = Path(folder)
    keys = parse_tradeoff(tradeoff, results) if tradeoff else None
    paths = [plot_delta_m(results, folder / "delta_m.png"), plot_task_change(results, folder / "task_change.png")]
    if keys:
        paths.append(plot_tradeoff(results, keys, folder / "tradeoff.png"))
    return [p for p in paths if p is not None]
