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


def _delta(results: Mapping[str, Any]) -> str:
    if results.get("delta_m") is None:
        return "-"
    against = f" vs {results['baseline']}" if results.get("baseline") else ""
    return f"{float(results['delta_m']):+.2f}{against}"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def pretrained_table(pattern: str = "*") -> str:
    """The pretrained weights matching ``pattern``: name, tag (and whether the architecture loads it by default),
    the data set and version they were trained on, the input size, delta_m and the headline metrics they record."""
    from mtlzoo.metrics.provenance import measured_on
    from mtlzoo.models.factory import list_models
    from mtlzoo.models.pretrained import PRETRAINED_CFGS

    rows = [["name", "tag", "data", "version", "input", "delta_m %", "headline metrics"]]
    for name in list_models(pattern, pretrained=True):
        cfg = PRETRAINED_CFGS.get(name)
        card = _bundled_config(cfg)
        on = measured_on(cfg.dataset)
        size = _input_size(card.get("preprocessing"))
        metrics = (cfg.results or {}).get("metrics") or {}
        headline = ", ".join(f"{task}.{metric} {value:.4g}" for task, values in metrics.items()
                             for metric, value in values.items())
        rows.append([cfg.architecture, cfg.tag + (" (default)" if cfg.default else ""), on.dataset or "-",
                     on.version or "-", f"{size[0]}x{size[1]}" if size else "-",
                     _delta({**(cfg.results or {}), **(card.get("results") or {})}), headline or "-"])
    if len(rows) == 1:
        return f"no pretrained weights match {pattern!r}\n"
    return _table(rows)


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
