"""The pretrained weights' results as data, like timm's ``results/*.csv``: one row per ``arch.tag``.

Every column but the throughput comes from the weights' model card (``config.json`` of the copy under
``weights/``: scores over seeds, delta_m, input size, recipe) and from the model it builds (parameters, forward
GFLOPs); the throughput is measured (CPU, batch 1, one thread). ``benchmarks/results_tables.py`` writes one CSV
per data set and input size under ``results/``; a test checks that the files hold a row for every registered
tag and that each row equals what its card says; ``mtlzoo list --pretrained`` and the docs read them.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from mtlzoo.checkpoint import atomic_write_text
from mtlzoo.hub.cache import bundled_weights_dir
from mtlzoo.models.pretrained import PretrainedCfg

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
# Columns every table has, in order; the metric columns (``task.metric`` and ``task.metric_std``) follow.
FIXED_COLUMNS = ("model", "tag", "data_version", "img_size", "param_count", "gflops", "infer_img_per_s",
                 "method", "seeds", "delta_m", "delta_m_std", "baseline")
MEASURED = ("infer_img_per_s",)  # the columns that are measured on a machine, not read from a card


def _card(cfg: PretrainedCfg) -> dict[str, Any]:
    """The bundled config.json of ``cfg``; an error naming the tag when the checkout has none."""
    import json

    path = bundled_weights_dir() / (cfg.bundled or "") / "config.json"
    if not cfg.bundled or not path.is_file():
        raise FileNotFoundError(f"{cfg.name}: no bundled card at {path}; results tables are built from the cards "
                                "under weights/ of a source checkout")
    return json.loads(path.read_text(encoding="utf-8"))


def data_name(cfg: PretrainedCfg) -> str:
    """The data set of ``cfg`` without its generator version (``synthscenes-v3`` -> ``synthscenes``)."""
    return re.sub(r"-v\d+$", "", cfg.dataset) or "unknown"


def data_version(cfg: PretrainedCfg) -> int | None:
    """The generator version in ``cfg.dataset`` (``synthscenes-v3`` -> 3), or None."""
    found = re.search(r"-v(\d+)$", cfg.dataset)
    return int(found.group(1)) if found else None


def _input_shape(card: Mapping[str, Any]) -> tuple[int, ...]:
    """(C, H, W) from the card's preprocessing; (D,) for a model on vectors (its ``input_dim`` argument)."""
    size = (card.get("preprocessing") or {}).get("input_size")
    dim = (card.get("model_args") or {}).get("input_dim")
    return tuple(int(v) for v in size) if size else ((int(dim),) if dim is not None else ())


def table_name(cfg: PretrainedCfg, card: Mapping[str, Any]) -> str:
    """The results file a tag's row goes to: ``<data>-<H>x<W>`` for images, ``<data>`` for vector inputs."""
    shape = _input_shape(card)
    return f"{data_name(cfg)}-{shape[-2]}x{shape[-1]}" if len(shape) == 3 else data_name(cfg)


def card_scores(card: Mapping[str, Any], headline: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """Seeds, delta_m (mean, std) and each headline metric (mean, std) from the card's results; a card without
    ``over_seeds`` (one seed) gives its own numbers and an empty std."""
    results = card.get("results") or {}
    seeds = results.get("over_seeds")
    if seeds:
        mean, std = seeds["mean"], seeds["std"]
        row = {"seeds": len(seeds["seeds"]), "delta_m": seeds.get("delta_m_mean"), "delta_m_std": seeds.get(
            "delta_m_std")}
    else:
        mean, std = results.get("metrics") or {}, {}
        row = {"seeds": 1, "delta_m": results.get("delta_m"), "delta_m_std": None}
    for task, metrics in headline.items():
        for metric in metrics:
            row[f"{task}.{metric}"] = mean.get(task, {}).get(metric)
            row[f"{task}.{metric}_std"] = std.get(task, {}).get(metric)
    return row


def _build(card: Mapping[str, Any]) -> torch.nn.Module:
    """The tag's architecture with random weights (nothing is read or downloaded): enough to count its cost."""
    import mtlzoo

    return mtlzoo.create_model(card["architecture"], tasks=card["tasks"], **card.get("model_args", {})).eval()


def card_row(cfg: PretrainedCfg) -> dict[str, Any]:
    """Everything of ``cfg``'s row that the card and the architecture determine (all but the measured columns)."""
    return _row(cfg, _card(cfg))


def _row(cfg: PretrainedCfg, card: Mapping[str, Any]) -> dict[str, Any]:
    from mtlzoo.models.info import count_flops

    model = _build(card)
    shape = _input_shape(card)
    size = shape[-2:] if len(shape) == 3 else (1, 1)
    version = (card.get("results") or {}).get("data_version") or data_version(cfg)
    headline = {task: list(metrics) for task, metrics in ((cfg.results or {}).get("metrics") or {}).items()}
    return {"model": cfg.architecture, "tag": cfg.tag, "data_version": version,
            "img_size": "x".join(str(v) for v in shape[-2:]) if len(shape) == 3 else str(shape[-1] if shape else ""),
            "param_count": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
            "gflops": round(count_flops(model, size)["flops"] / 1e9, 4),
            "method": (card.get("training") or {}).get("method"),
            "baseline": (card.get("results") or {}).get("baseline"), **card_scores(card, headline)}


def images_per_second(cfg: PretrainedCfg, repeats: int = 5, seconds: float = 0.5) -> float:
    """CPU inference throughput of ``cfg``'s architecture: batch 1 at the card's input size, one thread, the
    best of ``repeats`` timings of about ``seconds`` each (the weights' values do not change the cost)."""
    card = _card(cfg)
    model = _build(card)
    x = torch.randn(1, *_input_shape(card))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            model(x)
            start, calls = time.perf_counter(), 0
            while time.perf_counter() - start < seconds / 5 or calls < 2:
                model(x)
                calls += 1
            per_call = (time.perf_counter() - start) / calls
            n = max(2, round(seconds / per_call))
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(n):
                    model(x)
                best = min(best, (time.perf_counter() - start) / n)
    finally:
        torch.set_num_threads(threads)
    return round(1.0 / best, 1)


def columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The fixed columns, then every metric column of ``rows`` in first-seen order."""
    extra = [key for row in rows for key in row if key not in FIXED_COLUMNS]
    return [*FIXED_COLUMNS, *dict.fromkeys(extra)]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """``rows`` as CSV text (floats to 6 significant digits, None as an empty cell), best delta_m first."""
    ordered = sorted(rows, key=lambda r: (r.get("delta_m") is None, -(r.get("delta_m") or 0.0), r["model"]))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns(rows), lineterminator="\n")
    writer.writeheader()
    for row in ordered:
        writer.writerow({key: _cell(row.get(key)) for key in columns(rows)})
    return out.getvalue()


def normalised(row: Mapping[str, Any]) -> dict[str, str]:
    """A row as the CSV stores it (strings), so that a computed row compares equal to a read one."""
    return {key: _cell(value) for key, value in row.items()}


def read_tables(folder: Path = RESULTS_DIR) -> dict[str, list[dict[str, str]]]:
    """``{table name: rows}`` of every ``*.csv`` under ``folder`` (none when it does not exist)."""
    tables = {}
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        with path.open(newline="", encoding="utf-8") as f:
            tables[path.stem] = list(csv.DictReader(f))
    return tables


def build_tables(cfgs: Iterable[PretrainedCfg], measure: bool = True) -> dict[str, list[dict[str, Any]]]:
    """``{table name: rows}`` for ``cfgs``: card columns, plus the throughput when ``measure``."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for cfg in cfgs:
        card = _card(cfg)
        row = _row(cfg, card)
        if measure:
            row["infer_img_per_s"] = images_per_second(cfg)
        tables.setdefault(table_name(cfg, card), []).append(row)
    return tables


def check_tables(expected: Mapping[str, Sequence[Mapping[str, Any]]], folder: Path = RESULTS_DIR) -> list[str]:
    """What differs between the files under ``folder`` and ``expected`` (``build_tables(cfgs, measure=False)``:
    the cards' rows; measured columns aside): one line per problem, naming the file, the tag and the columns;
    empty when they agree."""
    found = read_tables(folder)
    problems = [f"{name}.csv: missing" for name in sorted(set(expected) - set(found))]
    problems += [f"{name}.csv: no registered tag belongs here" for name in sorted(set(found) - set(expected))]
    for name in sorted(set(expected) & set(found)):
        rows = {(r["model"], r["tag"]): r for r in found[name]}
        for row in expected[name]:
            key = (row["model"], row["tag"])
            want = normalised(row)
            have = {k: v for k, v in rows.get(key, {}).items() if k not in MEASURED}
            if not have:
                problems.append(f"{name}.csv: no row for {'.'.join(key)}")
            elif have != want:
                changed = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
                problems.append(f"{name}.csv: {'.'.join(key)} differs from its card in {changed}")
        extra = set(rows) - {(r["model"], r["tag"]) for r in expected[name]}
        problems += [f"{name}.csv: {'.'.join(key)} is not a registered tag" for key in sorted(extra)]
    return problems


def write_tables(tables: Mapping[str, Sequence[Mapping[str, Any]]], folder: Path = RESULTS_DIR) -> list[Path]:
    """Write each table to ``folder/<name>.csv`` (atomically); CSVs of tables no longer produced are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_text(folder / f"{name}.csv", to_csv(rows)) for name, rows in tables.items()]
    for stale in set(folder.glob("*.csv")) - set(written):
        stale.unlink()
    return written
