"""MultiTaskModel: encoder -> shared representation -> one head per task, and nothing else."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from torch import Tensor, nn

from mtlzoo.models.heads import build_head
from mtlzoo.registry import close_matches
from mtlzoo.tasks import Task, list_task_presets, resolve_tasks, task_preset


class Representation(NamedTuple):
    """What ``encode`` returns: the shared feature tensors the heads read, and the input size (H, W)."""

    features: tuple[Tensor, ...]
    size: tuple[int, int]


def _preset_task(name: str, current: list[Task]) -> Task:
    """The task preset's Task called ``name``: the one definition the presets give it, or that of the preset(s)
    holding every task in ``current``; a ValueError that says to pass a Task otherwise."""
    presets = {preset: {t.name: t for t in task_preset(preset)} for preset in list_task_presets()}
    defined = {preset: tasks[name] for preset, tasks in presets.items() if name in tasks}
    home = {p: t for p, t in defined.items() if all(presets[p].get(c.name) == c for c in current)}
    for candidates in (home, defined):
        if candidates and len(set(candidates.values())) == 1:
            return next(iter(candidates.values()))
    example = next(iter(defined.values()), None)
    how = (f"mtlzoo.Task({name!r}, {example.kind!r}, channels=...)" if example is not None
           else f"mtlzoo.Task({name!r}, KIND, channels=...) with KIND e.g. 'segmentation', 'depth', 'classification'")
    if defined:
        ways = "; ".join(f"{p}: {t.kind}, {t.channels} channels, loss {t.loss}, ignore_index {t.ignore_index}"
                         for p, t in defined.items())
        why = f"the task presets define {name!r} differently ({ways})"
    else:
        known = sorted({n for tasks in presets.values() for n in tasks})
        near = close_matches(name, known)
        why = f"no task preset has a task {name!r} (preset tasks: {', '.join(known)}" + \
            (f"; did you mean {', '.join(near)}?)" if near else ")")
    raise ValueError(f"add_task({name!r}): {why}; pass {how}")


class MultiTaskModel(nn.Module):
    """Base of every mtlzoo architecture.

    Subclasses build ``self.encoder`` and implement :meth:`encode`; they may override
    :meth:`head_in_channels` / :meth:`head_features` when a task's head reads only part of the
    representation, :meth:`task_parameters` when task-owned parameters live in the trunk, and
    :meth:`decoder_shared_parameters` when shared layers run after the representation (a decoder).
    """

    def __init__(self, tasks: str | Iterable[Task | Mapping[str, Any]], head: str | None = None,
                 head_width: int | None = None, in_chans: int = 3) -> None:
        super().__init__()
        self.tasks: list[Task] = resolve_tasks(tasks)
        self.head_type = head
        self.head_width = head_width
        self.in_chans = in_chans
        self.heads = nn.ModuleDict()
        self.architecture: str = type(self).__name__
        self.model_kwargs: dict[str, Any] = {}
        self._encoder_frozen = False
        self._frozen_tasks: set[str] = set()

    # ---- building -------------------------------------------------------------------------
    def build_heads(self) -> None:
        """Create one head per task; call at the end of a subclass ``__init__``."""
        for task in self.tasks:
            self.heads[task.name] = self._new_head(task)

    def _new_head(self, task: Task) -> nn.Module:
        return build_head(task, self.head_in_channels(task), self.head_type, self.head_width)

    def head_in_channels(self, task: Task) -> list[int]:
        """Channels of the feature maps the head of ``task`` reads (finest first)."""
        return list(self.encoder.out_channels)

    def head_features(self, rep: Representation, task: Task) -> tuple[Tensor, ...]:
        """The part of the representation the head of ``task`` reads."""
        return rep.features

    # ---- forward ----------------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        """Reject inputs that are not (B, in_chans, H, W) with a message that says what to change."""
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"{self.architecture} expects images of shape (B, {self.in_chans}, H, W), "
                             f"got {tuple(x.shape)}")

    def encode(self, x: Tensor) -> Representation:
        """Shared representation of a batch of images."""
        self.check_input(x)
        return Representation(tuple(self.encoder(x)), (x.shape[-2], x.shape[-1]))

    def decode(self, rep: Representation) -> dict[str, Tensor]:
        """Raw output of every task head, dense outputs at input resolution."""
        return {t.name: self.heads[t.name](self.head_features(rep, t), rep.size) for t in self.tasks}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.decode(self.encode(x))

    def losses(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each task's loss from its kind (masked, never NaN), in task order."""
        missing = [t.name for t in self.tasks if t.name in outputs and t.name not in targets]
        if missing:
            raise ValueError(f"targets lack task(s) {missing}; got keys {sorted(targets)}")
        return {t.name: t.compute_loss(outputs[t.name], targets[t.name]) for t in self.tasks if t.name in outputs}

    # ---- parameters -------------------------------------------------------------------------
    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def task(self, name: str) -> Task:
        """The Task called ``name``."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise ValueError(f"unknown task {name!r}; this model has tasks {self.task_names}")

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """Parameters only ``task`` uses (its head)."""
        self.task(task)
        return self.heads[task].parameters()

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter no single task owns; with the task parameters it partitions the model."""
        owned = {id(p) for name in self.task_names for p in self.task_parameters(name)}
        return (p for p in self.parameters() if id(p) not in owned)

    def decoder_shared_parameters(self) -> list[nn.Parameter]:
        """The shared parameters that sit after the representation (a decoder the tasks share), a subset of
        :meth:`shared_parameters`; feature-level balancing trains them with the balanced task gradients."""
        return []

    # ---- editing ----------------------------------------------------------------------------
    def add_task(self, task: Task | Mapping[str, Any] | str) -> nn.Module:
        """Add a task and a freshly initialised head for it (on the model's device and dtype).

        ``task`` is a :class:`mtlzoo.Task`, its dict, or the bare name of a task preset's task when that name has
        one definition (``"saliency"``; for a name the presets define differently, such as ``"semseg"``, the
        definition of the preset this model's tasks come from).
        """
        if isinstance(task, str):
            task = _preset_task(task, self.tasks)
        elif isinstance(task, Mapping):
            task = Task.from_dict(task)
        elif not isinstance(task, Task):
            raise TypeError(f"add_task takes a mtlzoo.Task(name, kind, ...), its dict or a preset task's name, "
                            f"got {type(task).__name__} {task!r}")
        if task.name in self.task_names:
            raise ValueError(f"task {task.name!r} already exists; tasks: {self.task_names}")
        self.tasks.append(task)
        head = self._new_head(task)
        reference = next(self.parameters())
        self.heads[task.name] = head.to(device=reference.device, dtype=reference.dtype)
        self.heads[task.name].train(self.training)
        return self.heads[task.name]

    def remove_task(self, name: str) -> Task:
        """Remove a task and its head; returns the removed Task."""
        task = self.task(name)
        if len(self.tasks) == 1:
            raise ValueError(f"cannot remove {name!r}: a model keeps at least one task")
        self.tasks.remove(task)
        del self.heads[name]
        self._frozen_tasks.discard(name)
        return task

    def freeze_encoder(self) -> None:
        """Stop training the shared part: no gradients, and its norm layers stay in eval mode."""
        for p in self.shared_parameters():
            p.requires_grad_(False)
        self._encoder_frozen = True
        self.train(self.training)

    def unfreeze_encoder(self) -> None:
        """Train the shared part again; task heads frozen with :meth:`freeze_tasks` stay frozen (see
        :meth:`unfreeze_tasks`), so each unfreeze undoes exactly its own freeze."""
        for p in self.shared_parameters():
            p.requires_grad_(True)
        self._encoder_frozen = False
        self.train(self.training)

    def freeze_tasks(self, names: Iterable[str]) -> None:
        """Stop training these tasks' own parameters; their heads stay in eval mode (fine-tuning new tasks only)."""
        for name in names:
            for p in self.task_parameters(name):
                p.requires_grad_(False)
            self._frozen_tasks.add(name)
        self.train(self.training)

    def unfreeze_tasks(self, names: Iterable[str] | None = None) -> None:
        """Train these tasks' parameters again (default: every frozen task)."""
        for name in list(self._frozen_tasks if names is None else names):
            for p in self.task_parameters(name):
                p.requires_grad_(True)
            self._frozen_tasks.discard(name)
        self.train(self.training)

    def train(self, mode: bool = True) -> MultiTaskModel:
        super().train(mode)
        if self._encoder_frozen:
            for name, module in self.named_children():
                if name != "heads":
                    module.eval()
        for name in self._frozen_tasks & set(self.heads.keys()):
            self.heads[name].eval()
        return self

    # ---- config -----------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """JSON-able arguments that rebuild this model with ``create_model_from_config``."""
        return {"architecture": self.architecture, "tasks": [t.to_dict() for t in self.tasks], **self.model_kwargs}

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> Path:
        """Write model.safetensors + config.json + README.md card (see :func:`mtlzoo.models.export.save_pretrained`)."""
        from mtlzoo.models.export import save_pretrained

        return save_pretrained(self, save_directory, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        """Save and upload to the Hugging Face Hub as ``repo_id`` (see :func:`mtlzoo.models.export.push_to_hub`)."""
        from mtlzoo.models.export import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)
