"""The README.md model card of a checkpoint, rendered from its config.json alone.

YAML front matter (library_name, tags, license, datasets, model-index with every reported metric) then
sections: usage, tasks, preprocessing, training recipe, results with delta_m, license.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mtlzoo.tasks import TASK_KINDS, Task


def _hf_task_type(kind: str) -> str:
    """The Hugging Face task id of a task kind for the model-index ("other" for a kind not registered here)."""
    return TASK_KINDS.get(kind).hf_task_type if kind in TASK_KINDS else "other"


def _eval_results(config: Mapping[str, Any]) -> list[Any]:
    """One huggingface_hub EvalResult per (task, metric) of ``config["results"]``."""
    from huggingface_hub import EvalResult

    results = config.get("results") or {}
    tasks = {t["name"]: t for t in config["tasks"]}
    dataset = results.get("dataset") or results.get("protocol", "unknown")
    out = []
    for task_name, metrics in results.get("metrics", {}).items():
        kind = tasks[task_name]["kind"]
        for metric, value in metrics.items():
            out.append(EvalResult(
                task_type=_hf_task_type(kind), task_name=f"{task_name} ({kind})",
                dataset_type=dataset, dataset_name=dataset, dataset_split=results.get("split"),
                metric_type=metric, metric_name=f"{task_name}/{metric}", metric_value=value,
                metric_config=results.get("protocol"),
            ))
    return out


def card_metadata(config: Mapping[str, Any]) -> str:
    """The YAML front matter (without the ``---`` fences) of the card of ``config``."""
    from huggingface_hub import ModelCardData

    results = config.get("results") or {}
    kinds = sorted({t["kind"] for t in config["tasks"]})
    dataset = results.get("dataset")
    data = ModelCardData(
        library_name="mtlzoo", license=config.get("license"), model_name=config.get("name") or config["architecture"],
        tags=["mtlzoo", "multi-task-learning", "pytorch", config["architecture"], *kinds],
        datasets=[dataset] if dataset else None, eval_results=_eval_results(config) or None,
    )
    return data.to_yaml()


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _format(value: Any) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return f"`{json.dumps(value, sort_keys=True)}`"
    return f"`{value}`" if isinstance(value, str) else str(value)


def _input_dim(config: Mapping[str, Any]) -> int | None:
    """The length of the input vectors of a model on vectors (its ``input_dim`` argument), None for images."""
    dim = (config.get("model_args") or {}).get("input_dim")
    return int(dim) if dim is not None else None


def _usage(config: Mapping[str, Any], repo_id: str | None) -> str:
    source = f"hf-hub:{repo_id}" if repo_id else "path/to/this/folder"
    pre = config.get("preprocessing") or {}
    norm = "normalised as in training"
    if pre.get("mean"):
        norm = f"normalised with mean {pre['mean']} and std {pre['std']}"
    dim = _input_dim(config)
    call = f"model(inputs)  # inputs: float (B, {dim})" if dim else "model(images)  # images: float (B, C, H, W)"
    return "\n".join([
        "```python", "import mtlzoo", "", f'model = mtlzoo.from_pretrained("{source}").eval()',
        f"outputs = {call}, {norm}",
        "predictions = {t.name: t.postprocess(outputs[t.name]) for t in model.tasks}", "```",
    ])


def _tasks_section(config: Mapping[str, Any]) -> str:
    rows = []
    for data in config["tasks"]:
        task = Task.from_dict(data)
        rows.append([f"`{task.name}`", task.kind, task.channels, task.loss, task.spec.headline_metric])
    return _table(["task", "kind", "channels", "loss", "headline metric"], rows)


def _results_section(config: Mapping[str, Any]) -> str:
    results = config.get("results")
    if not results:
        return "No evaluation results were recorded with this checkpoint."
    tasks = {t["name"]: Task.from_dict(t) for t in config["tasks"]}
    rows = []
    for task_name, metrics in results["metrics"].items():
        for metric, value in metrics.items():
            better = "higher" if tasks[task_name].spec.direction(metric) > 0 else "lower"
            rows.append([f"`{task_name}`", metric, f"{float(value):.4f}", better])
    where = f"Protocol `{results['protocol']}`"
    if results.get("dataset"):
        where += f" on `{results['dataset']}`" + (f" ({results['split']} split)" if results.get("split") else "")
    lines = [where + ":", "", _table(["task", "metric", "value", "better"], rows)]
    if results.get("delta_m") is not None:
        lines += ["", f"delta_m = {results['delta_m']:+.2f} % ({results.get('delta_style') or 'style not recorded'} "
                      f"style, against baseline `{results.get('baseline') or 'not recorded'}`; positive is better)."]
    else:
        lines += ["", "delta_m: not reported (no single-task baseline was given for this protocol)."]
    if results.get("over_seeds"):
        lines += ["", _over_seeds_section(results["over_seeds"], tasks)]
    return "\n".join(lines)


def _over_seeds_section(summary: Mapping[str, Any], tasks: Mapping[str, Task]) -> str:
    """The scores of every seed the recipe was trained with (these weights are the first seed's): mean ± sample std."""
    seeds = summary["seeds"]
    rows = []
    for task_name, metrics in summary["mean"].items():
        for metric, mean in metrics.items():
            per_seed = ", ".join(f"{summary['per_seed'][str(s)][task_name][metric]:.4f}" for s in seeds)
            better = "higher" if tasks[task_name].spec.direction(metric) > 0 else "lower"
            rows.append([f"`{task_name}`", metric, f"{mean:.4f} ± {summary['std'][task_name][metric]:.4f}", per_seed,
                         better])
    lines = [f"The same recipe over seeds {', '.join(map(str, seeds))} (these weights are seed {seeds[0]}'s); "
             "mean ± sample std:", "", _table(["task", "metric", "mean ± std", "per seed", "better"], rows)]
    if summary.get("delta_m_mean") is not None:
        per_seed = ", ".join(f"{d:+.2f}" for d in summary["delta_m"])
        lines += ["", f"delta_m over seeds = {summary['delta_m_mean']:+.2f} ± {summary['delta_m_std']:.2f} % "
                      f"(per seed {per_seed}; against baseline `{summary.get('baseline') or 'not recorded'}`)."]
    return "\n".join(lines)


def _training_section(config: Mapping[str, Any]) -> str:
    training = config.get("training")
    if not training:
        return "No training recipe was recorded with this checkpoint."
    return _table(["setting", "value"], [[key, _format(value)] for key, value in sorted(training.items())])


def render_model_card(config: Mapping[str, Any], repo_id: str | None = None) -> str:
    """The full README.md (front matter + sections) for a checkpoint whose config.json is ``config``."""
    name = config.get("name") or config["architecture"]
    pre = config.get("preprocessing") or {}
    weights = config.get("weights") or {}
    args = config.get("model_args") or {}
    arch_line = f"Architecture `{config['architecture']}`" + (f" with arguments `{json.dumps(args, sort_keys=True)}`"
                                                               if args else "") + "."
    sections = [
        f"---\n{card_metadata(config).rstrip()}\n---", f"# {name}",
        f"A multi-task model from mtlzoo predicting "
        f"{len(config['tasks'])} tasks from one {'image' if _input_dim(config) is None else 'vector'}. {arch_line}",
        "## Usage", _usage(config, repo_id),
        "## Tasks", _tasks_section(config),
        "## Preprocessing", _table(["field", "value"], [[k, _format(v)] for k, v in sorted(pre.items())]),
        "## Training recipe", _training_section(config),
        "## Results", _results_section(config),
        "## Files",
        f"`model.safetensors` ({weights.get('dtype', 'float32')}, sha256 `{weights.get('sha256', 'not recorded')}`), "
        f"`config.json` (rebuilds the model), this card. Written by mtlzoo {config.get('mtlzoo_version', '?')}.",
        "## License", f"`{config.get('license') or 'not specified'}`",
    ]
    return "\n\n".join(sections) + "\n"
