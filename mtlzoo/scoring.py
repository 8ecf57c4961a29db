"""What ``mtlzoo eval`` and ``mtlzoo diagnose`` do with their model argument and their data.

- A run folder names its ``checkpoints/latest`` checkpoint, and so does the ``checkpoints/latest`` pointer file.
- A checkpoint is scored on the data settings it records (the synthscenes generator ``version`` and the input
  ``size``: from its run_config.json, its results, its pretrained config, its preprocessing; any option its
  results list under ``data_options``, e.g. mmoe_synthetic's ``correlation`` and ``seed``), unless
  ``--data-opt`` names them.
- Only the tasks the data labels are scored: a fine-tuned model on the original benchmark gives the numbers of
  its old tasks (a forgetting check). A data set that labels a task as another kind, with other classes or with
  another ignore index is refused, naming the task and both values.
- ``--baseline`` and ``--compare`` are checked before any work; a baseline measured on other data gives no
  delta_m (one line on stderr says why).
"""

from __future__ import annotations

import inspect
import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mtlzoo.tasks import Task

Note = Callable[[str], None] | None
RECORDED_OPTIONS = ("version", "size")  # the data settings a checkpoint's numbers depend on


def _latest_of(root: Path) -> Path:
    """The checkpoint the ``latest`` pointer of a run's ``checkpoints/`` folder names."""
    pointer = root / "latest"
    if pointer.is_dir():
        return pointer
    if not pointer.is_file():
        raise FileNotFoundError(f"{root} holds no 'latest' pointer; pass a checkpoint folder "
                                "(checkpoints/step_N or checkpoints/best).")
    target = root / pointer.read_text(encoding="utf-8").strip()
    if not (target / "config.json").is_file():
        raise FileNotFoundError(f"{pointer} names {target.name!r}, which is not a checkpoint folder (config.json) "
                                f"in {root}; pass a checkpoint folder (checkpoints/step_N or checkpoints/best).")
    return target


def resolve_model_argument(name: str) -> str:
    """A run folder (holding ``checkpoints/``) or a ``checkpoints/`` folder -> its latest checkpoint; the
    ``checkpoints/latest`` pointer file -> the checkpoint it names; anything else unchanged."""
    path = Path(name).expanduser()
    if path.is_file() and path.name == "latest":
        return str(_latest_of(path.parent))
    if path.is_dir() and not (path / "config.json").exists():
        if (path / "checkpoints").is_dir():
            return str(_latest_of(path / "checkpoints"))
        if (path / "latest").exists():
            return str(_latest_of(path))
    return name


def is_checkpoint(name: str) -> bool:
    """Whether ``name`` is a checkpoint folder (or the aside copy of one) or an ``hf-hub:`` id."""
    from mtlzoo.checkpoint import published_directory

    return name.startswith("hf-hub:") or published_directory(name).exists()


def is_architecture_name(name: str) -> bool:
    """Whether ``name`` names an architecture alone: no checkpoint, run folder, path, ``hf-hub:`` id or tag."""
    from mtlzoo.models.factory import split_model_name

    looks_like_path = any(sep in name for sep in ("/", "\\")) or name.startswith((".", "~"))
    return not (looks_like_path or is_checkpoint(name) or split_model_name(name)[1] is not None)


def load_scored_model(name: str, tasks: Any = None, random_init: bool = False, note: Note = None) -> Any:
    """The model ``name`` names (see :func:`resolve_model_argument` and
    :func:`mtlzoo.train.run.load_model_or_checkpoint`); ``random_init`` with a checkpoint is refused."""
    from mtlzoo.train.run import load_model_or_checkpoint

    path = resolve_model_argument(name)
    if random_init and is_checkpoint(path):
        raise ValueError(f"--random-init builds an architecture with random weights, but {name!r} is a checkpoint; "
                         "drop --random-init, or name an architecture (e.g. hps_tiny).")
    return load_model_or_checkpoint(path, tasks=tasks, random_init=random_init, note=note)


def _run_data(source: Path) -> dict[str, Any]:
    """data.name and the recorded options of the run_config.json beside a training run's checkpoint."""
    from mtlzoo.checkpoint import read_json

    path = source / "run_config.json"
    if not path.is_file():
        return {}
    data = read_json(path).get("data") or {}
    kwargs = data.get("kwargs") or {}
    return {"name": data.get("name"), **{k: kwargs[k] for k in RECORDED_OPTIONS if k in kwargs}}


def recorded_data(model: Any) -> dict[str, Any]:
    """The data a loaded checkpoint records it was trained on: ``name`` (a registered data set), ``version``,
    ``size`` (H, W) and the options its results list under ``data_options``, each left out when it records none."""
    from mtlzoo.metrics.provenance import measured_on, result_measured_on
    from mtlzoo.models.pretrained import PRETRAINED_CFGS

    info = getattr(model, "checkpoint_info", None) or {}
    out = _run_data(Path(info["source"])) if info.get("source") else {}
    cfg = PRETRAINED_CFGS.get(info["pretrained"]) if info.get("pretrained") in PRETRAINED_CFGS else None
    for on in (result_measured_on(info.get("results")), measured_on(cfg.dataset if cfg else None)):
        if on.dataset and not out.get("name"):
            out["name"] = on.dataset
        if on.version and out.get("version") is None and on.dataset in (None, out.get("name")):
            out["version"] = int(on.version) if on.version.isdigit() else on.version
    size = (info.get("preprocessing") or {}).get("input_size")
    if size and out.get("size") is None:
        out["size"] = [int(v) for v in size[-2:]]
    for key, value in ((info.get("results") or {}).get("data_options") or {}).items():
        out.setdefault(key, value)
    return {key: value for key, value in out.items() if value is not None}


def recorded_options(model: Any, data: str, options: Mapping[str, Any], note: Note = None) -> dict[str, Any]:
    """``options`` plus the settings the checkpoint recorded for ``data`` (when it was trained on it) that the
    data set takes and the user did not give."""
    from mtlzoo.data import resolve_dataset

    recorded = recorded_data(model)
    if recorded.get("name") != data:
        return dict(options)
    accepted = inspect.signature(resolve_dataset(data)[0]).parameters
    fill = {k: v for k, v in recorded.items() if k != "name" and k not in options and k in accepted}
    if fill and note:
        shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in fill.items())
        note(f"{data} with the settings the checkpoint recorded: {shown} (--data-opt KEY=VALUE overrides)")
    return {**options, **fill}


def data_labels(data: str, options: Mapping[str, Any] | None = None) -> list[Task] | None:
    """The tasks ``data`` labels: those it declares (``folder:``, ``hf:``), else its task preset's; None when it
    says neither."""
    from mtlzoo.data import dataset_task_preset, dataset_tasks
    from mtlzoo.tasks import task_preset

    declared = dataset_tasks(data, dict(options or {}))
    if declared is not None:
        return list(declared)
    preset = dataset_task_preset(data)
    return list(task_preset(preset)) if preset else None


def _check_labels(task: Task, label: Task, data: str) -> None:
    """Refuse data that labels ``task`` as another kind, with other classes (channels) or another ignore index."""
    if label.kind != task.kind:
        raise ValueError(f"task {task.name!r}: data set {data!r} labels it as {label.kind}, the model predicts it as "
                         f"{task.kind}; score the model on data that labels {task.name!r} as {task.kind}.")
    what = "classes" if task.spec.default_channels is None else "channels"
    if label.channels != task.channels:
        raise ValueError(f"task {task.name!r}: the model predicts {task.channels} {what}, data set {data!r} labels "
                         f"{label.channels}; score it on data with the same {what}.")
    if label.ignore_index != task.ignore_index:
        raise ValueError(f"task {task.name!r}: the model's ignore index is {task.ignore_index}, data set {data!r} "
                         f"marks unlabelled pixels with {label.ignore_index}; score it on data with the same "
                         "ignore index.")


def scored_tasks(model: Any, data: str, options: Mapping[str, Any] | None = None, note: Note = None) -> list[Task]:
    """The model's tasks that ``data`` labels (all of them when the data says nothing), each checked against the
    data's labels; ``note`` hears which tasks are left out."""
    labels = data_labels(data, options)
    if labels is None:
        return list(model.tasks)
    by_name = {t.name: t for t in labels}
    tasks = [t for t in model.tasks if t.name in by_name]
    if not tasks:
        raise ValueError(f"data set {data!r} labels none of the model's tasks {model.task_names} (it labels "
                         f"{sorted(by_name)}); pass --data naming data with labels for them.")
    for task in tasks:
        _check_labels(task, by_name[task.name], data)
    skipped = [t.name for t in model.tasks if t.name not in by_name]
    if skipped and note:
        note(f"data set {data!r} has no labels for {skipped}: scoring {[t.name for t in tasks]} only")
    return tasks


def model_and_data(name: str, data: str, options: Mapping[str, Any], tasks: Any = None, random_init: bool = False,
                   note: Note = None) -> tuple[Any, dict[str, Any], list[Task]]:
    """The model ``name`` names (``tasks``, ``random_init``: see :func:`load_scored_model`; random weights get
    ``tasks``, default: the data set's), the ``data`` options to score it with (see :func:`recorded_options`) and
    the tasks to score (see :func:`scored_tasks`)."""
    from mtlzoo.data import resolve_dataset
    from mtlzoo.train.run import config_key, default_tasks

    with config_key("--data"):  # an unknown data set fails before a model is loaded
        resolve_dataset(data)
        tasks = (tasks or default_tasks(data, dict(options))) if random_init else tasks
    model = load_scored_model(name, tasks=tasks, random_init=random_init, note=note)
    with config_key("--data"):
        options = recorded_options(model, data, options, note)
        return model, options, scored_tasks(model, data, options, note)


def check_baseline(value: str | None) -> str | None:
    """``--baseline`` checked before any work: None, "auto", a shipped baseline name, a JSON result file or a run /
    checkpoint folder (read now, so a bad one fails first)."""
    from mtlzoo.metrics import list_baselines
    from mtlzoo.metrics.evaluate import recorded_results
    from mtlzoo.registry import close_matches

    if value is None or value == "auto" or value in list_baselines():
        return value
    accepted = (f"'auto', a shipped baseline name ({', '.join(list_baselines())}), a JSON result file "
                "(mtlzoo eval --json) or a run / checkpoint folder")
    path = Path(value).expanduser()
    if path.exists():
        recorded_results(path)
        return str(path)
    if value.endswith(".json") or any(sep in value for sep in ("/", "\\")):
        raise FileNotFoundError(f"--baseline {value!r}: no such file or folder; accepted: {accepted}.")
    near = close_matches(value, list_baselines())
    hint = f" Did you mean: {', '.join(near)}?" if near else ""
    raise ValueError(f"--baseline {value!r} is not a shipped baseline.{hint} Accepted: {accepted}.")


def score_checkpoint(checkpoint: str, data: str = "synthscenes", split: str = "val", protocol: str | None = None,
                     baseline: str | None = None, data_options: Mapping[str, Any] | None = None, batch_size: int = 8,
                     device: str | None = None, random_init: bool = False, compare: str | None = None,
                     note: Note = None) -> dict[str, Any]:
    """``mtlzoo eval``: score a checkpoint (a folder, a run folder, an ``hf-hub:`` or pretrained name) on ``data``
    under ``protocol`` (default: the data set's own) as the module docstring says; returns the result's JSON form.
    ``compare`` (a reference table) is only checked here: same protocol and data set."""
    from mtlzoo.metrics import evaluate, get_protocol
    from mtlzoo.metrics.compare import check_comparable
    from mtlzoo.metrics.evaluate import DataMismatchWarning
    from mtlzoo.metrics.provenance import measured_on
    from mtlzoo.train.run import config_key, default_protocol, make_loader

    with config_key("--data"):
        protocol = protocol or default_protocol(data)
    if protocol is None:
        raise ValueError(f"no default protocol for data set {data!r}; pass --protocol (one of the protocols listed "
                         "by `mtlzoo list protocols`).")
    get_protocol(protocol)
    baseline = check_baseline(baseline)
    if compare:
        check_comparable(compare, protocol, measured_on(data))
    model, options, tasks = model_and_data(checkpoint, data, dict(data_options or {}), random_init=random_init,
                                           note=note)
    loader = make_loader(data, split, model, options, batch_size, tasks=tasks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataMismatchWarning)  # said once below, on one line
        result = evaluate(model, loader, protocol=protocol, baseline=baseline, device=device)
    if result.delta_m_refused and note:
        note(result.delta_m_refused)
    if result.dominated_by and note:
        note(f"delta_m {result.delta_m:+.2f} is dominated by {result.dominated_by} (its relative change outweighs "
             "the other tasks' together; see delta_m_by_task)")
    return result.to_dict()
