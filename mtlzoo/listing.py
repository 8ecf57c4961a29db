"""What ``mtlzoo list --pretrained`` and ``mtlzoo info`` say about a model: the pretrained weights as a table (what
each was trained on, at which input size, what it scores) and the model a checkpoint or ``name.tag`` names."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mtlzoo.models.pretrained import PretrainedCfg


def _bundled_config(cfg: PretrainedCfg) -> dict[str, Any]:
    """The config.json of the copy of ``cfg``'s weights shipped under weights/ ({} when there is none: no
    download for a listing)."""
    from mtlzoo.hub.cache import bundled_weights_dir

    path = bundled_weights_dir() / cfg.bundled / "config.json" if cfg.bundled else None
    return json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else {}


def _input_size(preprocessing: Mapping[str, Any] | None) -> tuple[int, int] | None:
    size = (preprocessing or {}).get("input_size")
    return (int(size[-2]), int(size[-1])) if size else None


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _mean_std(row: Mapping[str, str], key: str) -> str:
    """``mean +- std`` (std left out for one seed), or ``-``."""
    mean, std = _number(row.get(key)), _number(row.get(f"{key}_std"))
    if mean is None:
        return "-"
    return f"{mean:.4g} +- {std:.2g}" if std is not None else f"{mean:.4g}"


def _recorded_row(cfg: PretrainedCfg) -> dict[str, str]:
    """A results row from the registry and the bundled card alone (an install without results/*.csv)."""
    from mtlzoo.results_tables import card_scores

    card = _bundled_config(cfg)
    results = {**(cfg.results or {}), **(card.get("results") or {})}  # the registry's headline when no card
    size = _input_size(card.get("preprocessing"))
    headline = {task: list(metrics) for task, metrics in ((cfg.results or {}).get("metrics") or {}).items()}
    scores = card_scores({**card, "results": results}, headline)
    return {"model": cfg.architecture, "tag": cfg.tag, "img_size": f"{size[0]}x{size[1]}" if size else "",
            "baseline": results.get("baseline") or "",
            **{key: "" if value is None else str(value) for key, value in scores.items()}}


# sort keys of ``mtlzoo list --pretrained --sort`` -> (results column, larger is better)
SORT_KEYS = {"name": ("model", False), "delta_m": ("delta_m", True), "params": ("param_count", False),
             "gflops": ("gflops", False), "img_s": ("infer_img_per_s", True)}


def _sort(rows: list[tuple[PretrainedCfg, dict[str, str]]], key: str) -> list[tuple[PretrainedCfg, dict[str, str]]]:
    """Best first by ``key`` (a SORT_KEYS name or a ``task.metric`` column, in its task's direction); rows
    without a value last."""
    from mtlzoo.tasks import resolve_tasks

    metric_columns = sorted({k for _, row in rows for k in row if "." in k and not k.endswith("_std")})
    if key in SORT_KEYS:
        column, larger = SORT_KEYS[key]
    elif key in metric_columns:
        task, _, metric = key.partition(".")
        cfg = next(cfg for cfg, row in rows if row.get(key))
        spec = next(t for t in resolve_tasks(cfg.tasks) if t.name == task).spec
        column, larger = key, spec.direction(metric) > 0
    else:
        raise ValueError(f"cannot sort the pretrained table by {key!r}; use one of {[*SORT_KEYS, *metric_columns]}")
    if column == "model":
        return sorted(rows, key=lambda item: item[0].name)
    sign = -1.0 if larger else 1.0
    return sorted(rows, key=lambda item: (_number(item[1].get(column)) is None,
                                          sign * (_number(item[1].get(column)) or 0.0), item[0].name))


def pretrained_table(pattern: str = "*", sort: str = "name") -> str:
    """The pretrained weights matching ``pattern``, one row each, best first by ``sort`` (a SORT_KEYS name or a
    ``task.metric``): tag (and whether the architecture loads it by default), the data set and version, input
    size, parameters, GFLOPs, CPU images/s, delta_m and the headline metrics, mean +- std over seeds. Rows come
    from results/*.csv (:mod:`mtlzoo.results_tables`) in a source checkout, else from the registry and cards."""
    from mtlzoo.metrics.provenance import measured_on
    from mtlzoo.models.factory import list_models
    from mtlzoo.models.pretrained import PRETRAINED_CFGS
    from mtlzoo.results_tables import read_tables

    measured = {(row["model"], row["tag"]): row for rows in read_tables().values() for row in rows}
    found = [PRETRAINED_CFGS.get(name) for name in list_models(pattern, pretrained=True)]
    if not found:
        return f"no pretrained weights match {pattern!r}\n"
    rows = _sort([(cfg, measured.get((cfg.architecture, cfg.tag)) or _recorded_row(cfg)) for cfg in found], sort)
    table = [["name", "tag", "data", "version", "input", "params_M", "GFLOPs", "img/s", "delta_m_%",
              "headline metrics (mean +- std over seeds)"]]
    for cfg, row in rows:
        on = measured_on(cfg.dataset)
        delta = _mean_std(row, "delta_m")
        if delta != "-" and row.get("baseline"):
            delta += f" vs {row['baseline']}"
        metrics = [k for k in row if "." in k and not k.endswith("_std") and row[k] not in ("", None)]
        table.append([cfg.architecture, cfg.tag + (" (default)" if cfg.default else ""), on.dataset or "-",
                      on.version or "-", row.get("img_size") or "-", row.get("param_count") or "-",
                      row.get("gflops") or "-", row.get("infer_img_per_s") or "-", delta,
                      ", ".join(f"{k} {_mean_std(row, k)}" for k in metrics) or "-"])
    return _table(table)


def built_model(name: str) -> tuple[Any, tuple[int, int] | None] | None:
    """The model ``mtlzoo info`` describes when ``name`` is more than an architecture name, with the input size it
    records: a checkpoint, run folder or ``hf-hub:`` id (loaded), or a pretrained ``name.tag`` (built from its
    config, random weights: nothing is downloaded). None for an architecture name."""
    import mtlzoo
    from mtlzoo.models.factory import MODELS, split_model_name
    from mtlzoo.models.pretrained import resolve_pretrained
    from mtlzoo.registry import close_matches
    from mtlzoo.scoring import is_architecture_name, is_checkpoint, resolve_model_argument

    if is_architecture_name(name):
        return None
    path = resolve_model_argument(name)
    if is_checkpoint(path):
        model = mtlzoo.from_pretrained(path)
        return model, _input_size((model.checkpoint_info or {}).get("preprocessing"))
    arch, tag = split_model_name(name)
    if arch not in MODELS or any(sep in name for sep in ("/", "\\")):
        near = [] if "/" in name or "\\" in name else close_matches(name, mtlzoo.list_models(pretrained=True))
        raise FileNotFoundError(f"{name!r} is neither a checkpoint folder nor a pretrained name.tag"
                                + (f" (did you mean {', '.join(near)}?)" if near else "")
                                + "; pass an architecture, a pretrained name.tag, a checkpoint or run folder, "
                                  "or hf-hub:ORG/NAME.")
    cfg = resolve_pretrained(arch, tag)
    model = mtlzoo.create_model(arch, tasks=list(cfg.tasks) if not isinstance(cfg.tasks, str) else cfg.tasks,
                                **cfg.model_kwargs)
    return model, _input_size(_bundled_config(cfg).get("preprocessing"))


def model_figures(name: str, tasks: str | None = None, input_size: Sequence[int] | None = None) -> dict[str, Any]:
    """``mtlzoo info``: :func:`mtlzoo.models.info.model_info` of what ``name`` names (see :func:`built_model`), at
    ``input_size`` (default: the size it records, else 288x384); ``tasks`` (a preset or NAME:KIND[:CHANNELS],...)
    only for an architecture name (default: nyud)."""
    from mtlzoo.models.info import model_info

    built = built_model(name)
    if built is None:
        specs: Any = tasks or "nyud"
        if ":" in specs:  # NAME:KIND[:CHANNELS],... (vector models such as mmoe_mlp take image-level tasks)
            from mtlzoo.train.run import parse_task

            specs = [parse_task(spec.strip(), flag="--tasks") for spec in specs.split(",")]
        return model_info(name, tasks=specs, input_size=tuple(input_size or (288, 384)))
    model, recorded = built
    if tasks is not None:
        raise ValueError(f"--tasks applies to an architecture name; {name!r} has its own tasks {model.task_names}: "
                         "drop --tasks.")
    return {**model_info(model, input_size=tuple(input_size or recorded or (288, 384))), "model": name}
