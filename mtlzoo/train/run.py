"""From a validated Config to a finished run: build model, data, update rule and Trainer; evaluate; fine-tune."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from mtlzoo.checkpoint import published_directory
from mtlzoo.config import Config, check_best_metric, config_tasks
from mtlzoo.tasks import Task
from mtlzoo.train.distributed import explain_timeouts
from mtlzoo.train.optim import optimizer_factory
from mtlzoo.train.recipe import config_recipe
from mtlzoo.train.trainer import EvalSetup, Trainer, seed_everything

_AUGMENT_KEYS = ("scales", "flip")


def build_augmentation(data_name: str, augment: Mapping[str, Any], kinds: Mapping[str, str] | None = None) -> Any:
    """The joint training transform described by ``data.augment`` (None when empty); ``kinds`` gives the kind
    of each task name (needed for names outside the presets, e.g. the tasks of a ``folder:`` data set)."""
    from mtlzoo.data import resolve_dataset
    from mtlzoo.data.transforms import Compose, RandomHorizontalFlip, RandomScaleCrop

    unknown = sorted(set(augment) - set(_AUGMENT_KEYS))
    if unknown:
        raise ValueError(f"unknown data.augment key(s) {unknown}; accepted: {list(_AUGMENT_KEYS)}")
    steps = []
    if augment.get("scales"):
        inverse_depth = getattr(resolve_dataset(data_name)[0], "inverse_depth", False)  # e.g. MTAN Cityscapes
        steps.append(RandomScaleCrop(augment["scales"], kinds=kinds, inverse_depth=inverse_depth))
    if augment.get("flip"):
        steps.append(RandomHorizontalFlip(kinds=kinds))
    return Compose(steps) if steps else None


@contextlib.contextmanager
def config_key(path: str) -> Iterator[None]:
    """Name the config key (or option) ``path`` in a ValueError / TypeError raised while building from it."""
    try:
        yield
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error


def _check_options(path: str, factory: Callable[..., Any], options: Mapping[str, Any], given: Sequence[str]) -> None:
    """Refuse options ``factory`` does not take (``given``: the ones the caller fills in), naming the accepted ones."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{path}: unknown option(s) {unknown}; accepted: {[n for n in accepted if n not in given]}")


def build_dataset(name: str, split: str, tasks: Sequence[Task] | None, options: Mapping[str, Any],
                  transform: Any = None, where: str = "data.kwargs") -> Dataset:
    """A registered data set (or ``folder:PATH`` / ``hf:NAME``) restricted to the model's tasks; a bad option is
    named with ``where``."""
    from mtlzoo.data import resolve_dataset

    with config_key("data.name" if where == "data.kwargs" else "--data"):
        factory, kwargs = resolve_dataset(name, options, located=True)
    _check_options(where, factory, options, given=("split", "transform"))
    if tasks is not None:
        kwargs.setdefault("tasks", [t.name for t in tasks])
    if transform is not None:
        kwargs["transform"] = transform
    with config_key(where):
        return factory(split=split, **kwargs)


def _build_model(config: Config) -> Any:
    import mtlzoo
    from mtlzoo.models.factory import MODELS, split_model_name

    with config_key("model.name"):
        factory = MODELS.get(split_model_name(config.model.name)[0])
    _check_options("model.kwargs", factory, config.model.kwargs, given=("tasks",))
    with config_key("model.kwargs" if config.model.kwargs else "model"):  # name and tasks were checked already
        return mtlzoo.create_model(config.model.name, tasks=config_tasks(config), **config.model.kwargs)


def build_rule(config: Config, model: Any) -> Any:
    """The update rule of ``config.method`` for ``model`` (a balancer is wrapped in a single-step rule); unknown
    options are refused naming ``method.kwargs`` and the accepted ones."""
    import mtlzoo
    from mtlzoo.balancers import BALANCERS
    from mtlzoo.schemes import UPDATE_RULES

    name = config.method.name
    if name in UPDATE_RULES or name in BALANCERS:
        factory = UPDATE_RULES.get(name) if name in UPDATE_RULES else BALANCERS.get(name)
        _check_options("method.kwargs", factory, config.method.kwargs, given=("model", "optimizer", "tasks"))
    with config_key("method.name" if name not in UPDATE_RULES and name not in BALANCERS else "method.kwargs"):
        return mtlzoo.create_update_rule(name, model, optimizer_factory(config.optim), **config.method.kwargs)


def build_trainer(config: Config, model: Any = None, unlabelled: Sequence[str] = (),
                  recipe: Mapping[str, Any] | None = None) -> Trainer:
    """Everything a run needs, seeded; ``model`` replaces the config's model (fine-tuning), and the data set
    need not label the tasks named in ``unlabelled`` (they train on no label, see :mod:`mtlzoo.data.partial`).
    The checkpoints' recipe is the config's (:func:`mtlzoo.train.recipe.config_recipe`) updated with ``recipe``."""
    from mtlzoo.data.partial import WithUnlabelled

    seed_everything(config.train.seed)
    if model is None:
        model = _build_model(config)
    check_best_metric(config.train.best_metric, model.tasks)
    if config.train.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    rule = build_rule(config, model)
    with config_key("data.augment"):
        augment = build_augmentation(config.data.name, config.data.augment, {t.name: t.kind for t in model.tasks})
    labelled = [t for t in model.tasks if t.name not in unlabelled]
    train_data = build_dataset(config.data.name, config.data.train_split, labelled, config.data.kwargs, augment)
    if len(labelled) < len(model.tasks):
        train_data = WithUnlabelled(train_data, [t for t in model.tasks if t.name in unlabelled])
    eval_data = build_dataset(config.data.name, config.data.eval_split, labelled, config.data.kwargs)
    protocol = _check_evaluation(config)
    evaluation = EvalSetup(eval_data, protocol, config.eval.baseline, config.data.eval_batch_size)
    return Trainer(model, rule, train_data, options=config.train, evaluation=evaluation, schedule=config.schedule,
                   batch_size=config.data.batch_size, num_workers=config.data.num_workers,
                   run_config=config.to_dict(), recipe={**config_recipe(config), **(recipe or {})})


def _check_evaluation(config: Config) -> str:
    """The run's protocol; an unknown protocol or baseline name is refused now, not at the first evaluation."""
    from mtlzoo.metrics import get_baseline, get_protocol

    protocol = config.eval.protocol or default_protocol(config.data.name) or "generic"
    with config_key("eval.protocol"):
        get_protocol(protocol)
    baseline = config.eval.baseline
    if isinstance(baseline, str) and baseline != "auto" and not Path(baseline).exists():
        with config_key("eval.baseline"):
            get_baseline(baseline)
    return protocol


def default_protocol(data: str) -> str | None:
    """The protocol a data set is scored under by default: the one its class carries (``default_protocol``)."""
    from mtlzoo.data import dataset_protocol

    return dataset_protocol(data)


def default_tasks(data: str, options: Mapping[str, Any] | None = None) -> str | list[Task] | None:
    """The tasks a model built for ``data`` gets: the task preset its class carries, or the tasks it declares."""
    from mtlzoo.data import dataset_task_preset, dataset_tasks

    return dataset_task_preset(data) or dataset_tasks(data, options)


def train_from_config(config: Config, resume: bool = False) -> dict[str, Any]:
    """Train as the config says; returns the last evaluation and where the checkpoints are."""
    trainer = build_trainer(config)
    with explain_timeouts(config.train.dist_timeout):
        metrics = trainer.fit(resume=resume)
    return {"out_dir": str(Path(config.train.out_dir).resolve()), "step": trainer.step, **metrics}


def parse_task(spec: str, declared: Mapping[str, Task] | None = None, flag: str = "--add-task") -> Task:
    """``name:kind[:channels]`` -> Task (for ``--add-task``, ``info --tasks``); a task the data set declares
    (``declared``) with that kind supplies what the spec leaves out (channels, ignore index...)."""
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"{flag} {spec!r} must look like NAME:KIND[:CHANNELS], e.g. sal:saliency")
    name, kind = parts[0], parts[1]
    data_task = (declared or {}).get(name)
    if data_task is not None and data_task.kind != kind:
        raise ValueError(f"{flag} {spec!r}: the data set declares {name!r} as a {data_task.kind} task")
    if len(parts) == 3:
        return Task(name, kind, int(parts[2]))
    return data_task if data_task is not None else Task(name, kind)


def _data_tasks(config: Config) -> dict[str, str]:
    """{task: kind} of every task the configured training data labels."""
    from mtlzoo.data import dataset_tasks

    with config_key("data.name"):
        declared = dataset_tasks(config.data.name, config.data.kwargs)
    if declared is not None:
        return {t.name: t.kind for t in declared}
    data = build_dataset(config.data.name, config.data.train_split, None, config.data.kwargs)
    return data.task_kinds()


def _check_kinds(model: Any, labels: Mapping[str, str], data: str) -> None:
    """Refuse a data set that labels one of the model's tasks as another kind."""
    for task in model.tasks:
        if task.name in labels and labels[task.name] != task.kind:
            raise ValueError(f"data set {data!r} labels {task.name!r} as {labels[task.name]}, the model predicts "
                             f"it as {task.kind}")


def _unlabelled(model: Any, new_tasks: Sequence[str], labels: Mapping[str, str], data: str) -> list[str]:
    """The model's tasks the data does not label (they fine-tune on no label); the added ones must be labelled."""
    _check_kinds(model, labels, data)
    missing = [n for n in new_tasks if n not in labels]
    if missing or not any(t.name in labels for t in model.tasks):
        raise ValueError(f"data set {data!r} labels none of the task(s) {missing or model.task_names} (it labels "
                         f"{sorted(labels)}); fine-tune on data with labels for them")
    return [t.name for t in model.tasks if t.name not in labels]


def _looks_like_path(name: str) -> bool:
    return any(sep in name for sep in ("/", "\\")) or name.startswith((".", "~"))


def load_model_or_checkpoint(name_or_path: str, tasks: str | Sequence[Task] | None = None, random_init: bool = False,
                             note: Callable[[str], None] | None = None) -> Any:
    """What a command's model argument names: a checkpoint folder, an ``hf-hub:`` id, a pretrained ``arch.tag``,
    or a bare architecture, which loads its default pretrained tag; random weights (for ``tasks``) only with
    ``random_init``, so nothing scores or fine-tunes an untrained model by accident. ``note`` hears what was loaded.
    """
    import mtlzoo
    from mtlzoo.models.factory import MODELS, split_model_name
    from mtlzoo.models.pretrained import default_tag
    from mtlzoo.registry import close_matches

    if published_directory(name_or_path).exists() or name_or_path.startswith("hf-hub:"):
        return mtlzoo.from_pretrained(name_or_path)
    arch, tag = split_model_name(name_or_path)
    if arch not in MODELS:
        if _looks_like_path(name_or_path):
            raise FileNotFoundError(f"no such checkpoint directory: {name_or_path} (a checkpoint folder holds "
                                    "model.safetensors and config.json)")
        near = close_matches(name_or_path, MODELS.names() + mtlzoo.list_models(pretrained=True))
        raise ValueError(f"{name_or_path!r} is neither a checkpoint directory nor a model name"
                         + (f"; did you mean {', '.join(near)}?" if near else f"; models: {MODELS.names()}"))
    if random_init:
        if tag is not None:
            raise ValueError(f"--random-init builds an architecture with random weights; got the pretrained name "
                             f"{name_or_path!r}: drop the tag ({arch!r}) or drop --random-init")
        if note:
            note(f"random weights (--random-init): {arch} for tasks {tasks!r}")
        return mtlzoo.create_model(arch, tasks=tasks)
    if tag is None and default_tag(arch) is None:
        raise ValueError(f"{arch!r} has no pretrained weights (pretrained: {mtlzoo.list_models(pretrained=True)}); "
                         "pass a checkpoint folder or a pretrained name, or --random-init for random weights")
    model = mtlzoo.create_model(name_or_path, pretrained=True)
    if note and tag is None:
        note(f"pretrained weights {arch}.{default_tag(arch)} (the default tag of {arch!r})")
    return model


def finetune_from_checkpoint(checkpoint: str, config: Config, add_tasks: Sequence[str | Task] = (),
                             freeze_encoder: bool = False, only_new_tasks: bool = False, random_init: bool = False,
                             note: Callable[[str], None] | None = None, resume: bool = False) -> dict[str, Any]:
    """Load a checkpoint, add task heads and train what is asked.

    ``freeze_encoder`` freezes the shared part; ``only_new_tasks`` also freezes the old tasks' heads,
    so with both the old tasks' predictions stay exactly as they were. ``checkpoint``, ``random_init`` and
    ``note`` as in :func:`load_model_or_checkpoint`. ``resume`` continues the fine-tuning run in
    ``train.out_dir`` (pass the same checkpoint, tasks and flags as when it started). The new heads start
    from ``train.seed``; the checkpoints' card names the parent checkpoint, the tasks added and what was frozen.
    """
    from mtlzoo.data import dataset_tasks

    seed_everything(config.train.seed)  # before add_task: the new heads' initial weights follow the seed
    model = load_model_or_checkpoint(checkpoint, tasks=config_tasks(config), random_init=random_init, note=note)
    old_tasks = list(model.task_names)
    with config_key("data.name"):
        declared = {t.name: t for t in dataset_tasks(config.data.name, config.data.kwargs) or []}
    for spec in add_tasks:
        model.add_task(spec if isinstance(spec, Task) else parse_task(spec, declared))
    if freeze_encoder:
        model.freeze_encoder()
    if only_new_tasks:
        if not add_tasks:
            raise ValueError("only_new_tasks needs at least one task to add (--add-task NAME:KIND)")
        model.freeze_tasks(old_tasks)
    unlabelled = _unlabelled(model, model.task_names[len(old_tasks):], _data_tasks(config), config.data.name)
    if unlabelled:  # nothing to learn from: keep their heads exactly (weight decay would only shrink them)
        model.freeze_tasks(unlabelled)
        if note:
            note(f"data set {config.data.name!r} has no labels for {unlabelled}: they get no loss and their "
                 "heads stay frozen")
    recipe = {"parent_checkpoint": None if random_init else checkpoint, "random_init": random_init,
              "added_tasks": model.task_names[len(old_tasks):]}  # what was frozen: see training_record
    trainer = build_trainer(config, model=model, unlabelled=unlabelled, recipe=recipe)
    with explain_timeouts(config.train.dist_timeout):
        metrics = trainer.fit(resume=resume)
    return {"out_dir": str(Path(config.train.out_dir).resolve()), "step": trainer.step, **metrics}


def make_loader(data: str, split: str, model: Any, options: Mapping[str, Any], batch_size: int,
                shuffle: bool = False, tasks: Sequence[Task] | None = None) -> DataLoader:
    """A loader over a registered data set, restricted to ``tasks`` (default: the model's; ``options``: the
    ``--data-opt`` ones)."""
    dataset = build_dataset(data, split, model.tasks if tasks is None else tasks, options, where="--data-opt")
    generator = torch.Generator().manual_seed(0)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
