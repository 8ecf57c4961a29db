"""From a validated Config to a finished run: build model, data, update rule and Trainer; evaluate; fine-tune."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from mtlzoo.config import Config
from mtlzoo.tasks import Task
from mtlzoo.train.optim import optimizer_factory
from mtlzoo.train.trainer import EvalSetup, Trainer, seed_everything

DEFAULT_PROTOCOLS = {"synthscenes": "synthscenes", "nyud": "mtinet_nyud", "pascal_context": "mtinet_pascal",
                     "nyuv2_mtan": "mtan_nyuv2", "cityscapes_mtan": "mtan_cityscapes"}
_AUGMENT_KEYS = ("scales", "flip")


def build_augmentation(data_name: str, augment: Mapping[str, Any]) -> Any:
    """The joint training transform described by ``data.augment`` (None when empty)."""
    from mtlzoo.data.transforms import Compose, RandomHorizontalFlip, RandomScaleCrop

    unknown = sorted(set(augment) - set(_AUGMENT_KEYS))
    if unknown:
        raise ValueError(f"unknown data.augment key(s) {unknown}; accepted: {list(_AUGMENT_KEYS)}")
    steps = []
    if augment.get("scales"):
        steps.append(RandomScaleCrop(augment["scales"], inverse_depth=data_name == "cityscapes_mtan"))
    if augment.get("flip"):
        steps.append(RandomHorizontalFlip())
    return Compose(steps) if steps else None


def build_dataset(name: str, split: str, tasks: Sequence[Task] | None, options: Mapping[str, Any],
                  transform: Any = None) -> Dataset:
    """A registered data set restricted to the model's tasks."""
    from mtlzoo.data import create_dataset

    kwargs = dict(options)
    if tasks is not None:
        kwargs.setdefault("tasks", [t.name for t in tasks])
    if transform is not None:
        kwargs["transform"] = transform
    return create_dataset(name, split=split, **kwargs)


def build_trainer(config: Config, model: Any = None) -> Trainer:
    """Everything a run needs, seeded; ``model`` replaces the config's model (fine-tuning)."""
    import mtlzoo

    seed_everything(config.train.seed)
    if model is None:
        model = mtlzoo.create_model(config.model.name, tasks=config.model.tasks, **config.model.kwargs)
    if config.train.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    rule = mtlzoo.create_update_rule(config.method.name, model, optimizer_factory(config.optim),
                                     **config.method.kwargs)
    augment = build_augmentation(config.data.name, config.data.augment)
    train_data = build_dataset(config.data.name, config.data.train_split, model.tasks, config.data.kwargs, augment)
    eval_data = build_dataset(config.data.name, config.data.eval_split, model.tasks, config.data.kwargs)
    protocol = config.eval.protocol or DEFAULT_PROTOCOLS.get(config.data.name, "synthscenes")
    evaluation = EvalSetup(eval_data, protocol, config.eval.baseline, config.data.eval_batch_size)
    return Trainer(model, rule, train_data, options=config.train, evaluation=evaluation, schedule=config.schedule,
                   batch_size=config.data.batch_size, num_workers=config.data.num_workers,
                   run_config=config.to_dict())


def train_from_config(config: Config, resume: bool = False) -> dict[str, Any]:
    """Train as the config says; returns the last evaluation and where the checkpoints are."""
    trainer = build_trainer(config)
    metrics = trainer.fit(resume=resume)
    return {"out_dir": str(Path(config.train.out_dir).resolve()), "step": trainer.step, **metrics}


def parse_task(spec: str) -> Task:
    """``name:kind[:channels]`` -> Task (for ``--add-task``)."""
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"--add-task {spec!r} must look like NAME:KIND[:CHANNELS], e.g. sal:saliency")
    channels = int(parts[2]) if len(parts) == 3 else None
    return Task(parts[0], parts[1], channels)


def load_model_or_checkpoint(name_or_path: str, tasks: str | None = None) -> Any:
    """A checkpoint folder or ``hf-hub:`` name, a pretrained ``arch.tag``, else a model built for ``tasks``."""
    import mtlzoo

    if Path(name_or_path).exists() or name_or_path.startswith("hf-hub:"):
        return mtlzoo.from_pretrained(name_or_path)
    if "." in name_or_path:
        return mtlzoo.create_model(name_or_path, pretrained=True)
    return mtlzoo.create_model(name_or_path, tasks=tasks or "synthscenes")


def finetune_from_checkpoint(checkpoint: str, config: Config, add_tasks: Sequence[str | Task] = (),
                             freeze_encoder: bool = False, only_new_tasks: bool = False) -> dict[str, Any]:
    """Load a checkpoint, add task heads and train what is asked.

    ``freeze_encoder`` freezes the shared part; ``only_new_tasks`` also freezes the old tasks' heads,
    so with both the old tasks' predictions stay exactly as they were.
    """
    model = load_model_or_checkpoint(checkpoint)
    old_tasks = list(model.task_names)
    for spec in add_tasks:
        model.add_task(spec if isinstance(spec, Task) else parse_task(spec))
    if freeze_encoder:
        model.freeze_encoder()
    if only_new_tasks:
        if not add_tasks:
            raise ValueError("only_new_tasks needs at least one task to add (--add-task NAME:KIND)")
        model.freeze_tasks(old_tasks)
    trainer = build_trainer(config, model=model)
    metrics = trainer.fit()
    return {"out_dir": str(Path(config.train.out_dir).resolve()), "step": trainer.step, **metrics}


def make_loader(data: str, split: str, model: Any, options: Mapping[str, Any], batch_size: int,
                shuffle: bool = False) -> DataLoader:
    """A loader over a registered data set, restricted to the model's tasks."""
    dataset = build_dataset(data, split, model.tasks, options)
    generator = torch.Generator().manual_seed(0)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def evaluate_checkpoint(checkpoint: str, data: str = "synthscenes", split: str = "val", protocol: str | None = None,
                        baseline: str | None = None, data_options: Mapping[str, Any] | None = None,
                        batch_size: int = 8, device: str | None = None) -> dict[str, Any]:
    """Score a checkpoint on a data set under a protocol (default: the data set's own)."""
    from mtlzoo.metrics import evaluate

    model = load_model_or_checkpoint(checkpoint)
    loader = make_loader(data, split, model, data_options or {}, batch_size)
    protocol = protocol or DEFAULT_PROTOCOLS.get(data)
    if protocol is None:
        raise ValueError(f"no default protocol for data set {data!r}; pass --protocol (one of the protocols listed "
                         "by `mtlzoo list protocols`)")
    result = evaluate(model, loader, protocol=protocol, baseline=_baseline(baseline), device=device)
    return result.to_dict()


def _baseline(value: str | None) -> Any:
    if value is None or not value.endswith(".json"):
        return value
    import json

    return json.loads(Path(value).read_text(encoding="utf-8"))

