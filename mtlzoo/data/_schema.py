"""tasks.json: the task declarations of a data set stored without code (``folder:``, ``hf:``), and how stored
values become targets.

A declaration::

    {"name": "my_scenes",
     "tasks": {"semseg": {"kind": "segmentation", "classes": ["floor", "wall", "object"], "ignore_index": 255},
               "depth": {"kind": "depth"},
               "scene": {"kind": "classification", "classes": 4}}}

Each task takes ``kind`` (a registered task kind) and optionally ``classes`` (a count or the class names),
``channels`` (for arrays, instead of classes), ``ignore_index``, ``loss``, ``pos_weight``, ``head`` (as
:class:`mtlzoo.Task`) and ``scale`` (factor applied to the integer values of a PNG map that is not a label map;
depth: 0.001, millimetres to metres). ``tasks`` may also be a list of entries, each with its ``name``.

Stored values: label maps (kinds with class ids) are PNG or .npy class ids; other maps are .npy arrays
((H, W) or (H, W, C)) or PNG (one channel times ``scale``; 8-bit RGB normals map by 2 v / 255 - 1). Image-level
labels are a class id or name (class-id kinds), a number or a list of ``channels`` numbers, or a list of class
names, which becomes a 0 / 1 vector (multilabel).

Class ids lie in [0, classes - 1] or equal the task's ``ignore_index`` (unlabelled). -1 always reads as the
ignore index: it is the "no label" of signed arrays (an int8 map cannot hold 255; ``datasets``' ClassLabel
writes -1), and no class has a negative id, so nothing else can be meant. Any other value (a class 9 of a
5-class task, a negative id, a non-whole float) is refused with an error naming it and the accepted range.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from mtlzoo.data.partial import target_like
from mtlzoo.registry import close_matches
from mtlzoo.tasks import TASK_KINDS, Task

SCHEMA_FILE = "tasks.json"
_TASK_FIELDS = ("channels", "ignore_index", "loss", "pos_weight", "head")
_KEYS = ("kind", "classes", "scale", *_TASK_FIELDS)
_PNG_SCALE = {"depth": 0.001}  # a 16-bit depth PNG holds millimetres
MAX_LISTED = 8


@dataclass(frozen=True)
class DeclaredTask:
    """A task as a data set declares it: the Task, its class names (may be empty) and the PNG value scale."""

    task: Task
    classes: tuple[str, ...] = ()
    scale: float | None = None

    @cached_property
    def labels(self) -> bool:
        """Whether targets are integer class ids (as the kind's example targets are)."""
        like = target_like(self.task, (1, 1))
        return like is not None and not like.is_floating_point()


def checked_size(size: Any, what: str) -> tuple[int, int] | None:
    """The ``size`` option (H, W) of a data set as two positive ints (None: keep each image's size)."""
    if size is None:
        return None
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size):
        raise ValueError(f"{what} size must be two positive integers [H, W], got {size!r}")
    return int(size[0]), int(size[1])


def problems_error(subject: str, problems: Sequence[str]) -> ValueError:
    """One ValueError: a one-line summary naming ``subject``, then one line per problem."""
    lines = "\n".join(f"  - {p}" for p in problems)
    return ValueError(f"{subject}: {len(problems)} problem(s) found\n{lines}")


def listed(items: Sequence[str]) -> str:
    """The first few items of a list, and how many more there are."""
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _entries(tasks: Any, problems: list[str]) -> list[tuple[str, Any]]:
    if isinstance(tasks, Mapping):
        return [(str(k), v) for k, v in tasks.items()]
    if isinstance(tasks, list):
        out = []
        for i, item in enumerate(tasks):
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                problems.append(f"tasks[{i}]: expects a mapping with a 'name', got {item!r}")
                continue
            out.append((item["name"], {k: v for k, v in item.items() if k != "name"}))
        return out
    problems.append(f"'tasks' must map task names to declarations (or list them), got {type(tasks).__name__}")
    return []


def _declare(name: str, entry: Any) -> DeclaredTask:
    """One task declaration; a ValueError names the bad key."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"expects a mapping like {{\"kind\": \"depth\"}}, got {entry!r}")
    unknown = sorted(set(entry) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; accepted: {list(_KEYS)}")
    kind = entry.get("kind")
    if not isinstance(kind, str):
        raise ValueError(f"'kind' is missing; one of {TASK_KINDS.names()}")
    if kind not in TASK_KINDS:
        near = close_matches(kind, TASK_KINDS.names())
        raise ValueError(f"kind {kind!r} is not a task kind" + (f" (did you mean {near[0]!r}?)" if near else "")
                         + f"; registered: {TASK_KINDS.names()}")
    classes = entry.get("classes")
    names: tuple[str, ...] = ()
    fields = {k: entry[k] for k in _TASK_FIELDS if k in entry}
    if classes is not None:
        if isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes):
            names = tuple(classes)
            count = len(names)
        elif isinstance(classes, int) and not isinstance(classes, bool) and classes >= 1:
            count = classes
        else:
            raise ValueError(f"'classes' must be a positive count or a list of class names, got {classes!r}")
        if fields.get("channels", count) != count:
            raise ValueError(f"'classes' ({count}) and 'channels' ({fields['channels']}) disagree")
        fields["channels"] = count
    scale = entry.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0):
        raise ValueError(f"'scale' must be a positive number, got {scale!r}")
    return DeclaredTask(Task(name, kind, **fields), names, None if scale is None else float(scale))


def parse_schema(data: Any, where: str) -> tuple[str | None, dict[str, DeclaredTask]]:
    """(data set name or None, {task: DeclaredTask}) from a tasks.json document; every problem in one ValueError."""
    if not isinstance(data, Mapping) or "tasks" not in data:
        raise ValueError(f"{where}: expects a mapping with a 'tasks' entry, e.g. "
                         "{\"tasks\": {\"semseg\": {\"kind\": \"segmentation\", \"classes\": 5}}}")
    problems = [f"unknown top-level key {k!r}; accepted: ['name', 'tasks']" for k in data if k not in ("name", "tasks")]
    declared: dict[str, DeclaredTask] = {}
    for name, entry in _entries(data["tasks"], problems):
        try:
            declared[name] = _declare(name, entry)
        except (TypeError, ValueError) as error:
            problems.append(f"task {name!r}: {error}")
    if not declared and not problems:
        problems.append("'tasks' declares no task")
    if problems:
        raise problems_error(where, problems)
    name = data.get("name")
    return (str(name) if name is not None else None), declared


def read_schema(path: Path) -> tuple[str | None, dict[str, DeclaredTask]]:
    """Parse the tasks.json file at ``path`` (see :func:`parse_schema`)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
    return parse_schema(data, str(path))


def _class_id(decl: DeclaredTask, value: Any) -> int:
    task = decl.task
    if isinstance(value, str):
        if value not in decl.classes:
            named = list(decl.classes) or "the declared classes (tasks.json names none)"
            raise ValueError(f"class {value!r} is not one of {named}")
        return decl.classes.index(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    if value is None:
        return task.ignore_index
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"label {value!r} is not a class id or name")
    if value == -1:  # "no label", as in a label map (see the module docstring)
        return task.ignore_index
    if not (0 <= value < task.channels or value == task.ignore_index):
        raise ValueError(f"label {value} lies outside [0, {task.channels - 1}] and is not the ignore index "
                         f"{task.ignore_index}")
    return int(value)


def image_level_target(decl: DeclaredTask, value: Any) -> np.ndarray:
    """An image-level label as the array the kind converts; a ValueError says what is wrong with ``value``."""
    if decl.labels:
        return np.asarray(_class_id(decl, value), np.int64)
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if all(isinstance(v, str) for v in values) and (values or decl.classes):  # class names ([] = none present)
        vector = np.zeros(decl.task.channels, np.float32)
        vector[[_class_id(decl, v) for v in values]] = 1.0
        return vector
    try:
        array = np.asarray(values, np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"label {value!r} is not a number, a list of numbers or a list of class names") from None
    if array.size != decl.task.channels:
        raise ValueError(f"label {value!r} has {array.size} value(s); expected {decl.task.channels} (channels)")
    return array


def dense_shape_problem(decl: DeclaredTask, shape: tuple[int, ...], size: tuple[int, int]) -> str | None:
    """Why a stored map of ``shape`` cannot be the target for an image of ``size`` (H, W); None when it fits."""
    channels = 1 if decl.labels else decl.task.channels
    accepted = [size + (channels,)] + ([size] if channels == 1 else [])
    if tuple(shape) in accepted:
        return None
    return f"shape {tuple(shape)} does not match the image {size}; expected {' or '.join(map(str, accepted))}"


def label_problem(task: Task, values: np.ndarray) -> str | None:
    """Why stored class ids (a label map, or its distinct values) do not fit ``task``; None when they do.

    Accepted: whole numbers in [0, channels - 1], the ignore index, and -1 (read as the ignore index).
    """
    values = np.asarray(values)
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            return f"label value(s) {_distinct(values[bad])} are not class ids (whole numbers)"
    elif values.dtype.kind == "b":
        values = values.astype(np.uint8)
    elif values.dtype.kind not in "iu":
        return f"labels of dtype {values.dtype}; class ids are integers"
    bad = bad_labels(task, values)
    if not bad.any():
        return None
    minus = "" if task.ignore_index == -1 else " or -1 (read as the ignore index)"
    return (f"label value(s) {_distinct(values[bad])} lie outside [0, {task.channels - 1}] and are not the ignore "
            f"index {task.ignore_index}{minus}")


def bad_labels(task: Task, values: np.ndarray) -> np.ndarray:
    """Where integer class ids ``values`` are none of: [0, channels - 1], the ignore index, -1 (a bool mask)."""
    return ((values < 0) | (values >= task.channels)) & (values != task.ignore_index) & (values != -1)


def _distinct(values: np.ndarray) -> str:
    """The distinct values of an array, listed (the first few)."""
    return listed([str(v) for v in np.unique(values).tolist()])


def class_ids(task: Task, array: np.ndarray) -> np.ndarray:
    """A stored label map as integer class ids for ``task``: -1 becomes the ignore index, a bad value a ValueError."""
    array = np.asarray(array)
    problem = label_problem(task, array)
    if problem:
        raise ValueError(problem)
    if array.dtype.kind in "fb":
        array = array.astype(np.int64)
    if array.dtype.kind == "i" and task.ignore_index != -1:
        unlabelled = array == -1
        if unlabelled.any():
            array = array.astype(np.int64)  # int8 cannot hold an ignore index of 255
            array[unlabelled] = task.ignore_index
    return array


def dense_target(decl: DeclaredTask, array: np.ndarray, from_png: bool) -> np.ndarray:
    """A stored map as the (H, W) or (H, W, C) array the task's kind converts (label ids stay integers)."""
    from mtlzoo.data.nyud import png_normals

    array = np.asarray(array)
    if decl.labels:
        array = class_ids(decl.task, array)
        return array.reshape(array.shape[:2])
    kind = decl.task.kind
    if from_png and kind == "normals" and array.ndim == 3:
        return png_normals(array)
    value = array.astype(np.float32)
    if from_png and np.issubdtype(array.dtype, np.integer):
        scale = decl.scale if decl.scale is not None else _PNG_SCALE.get(kind, 1.0)
        value = value * np.float32(scale)
    return value.reshape(array.shape[:2]) if decl.task.channels == 1 else value
