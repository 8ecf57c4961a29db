"""``hf:NAME_OR_PATH``: a Hugging Face ``datasets`` data set with an image column and one column per task.

Sources, tried in this order: a folder written by ``save_to_disk`` (a Dataset or a DatasetDict), parquet files
(one file, or a folder of them split by name: ``train-*.parquet``, ``train/*.parquet``, ``data/val-*.parquet``;
files with no split in their name make every split), or a Hub name loaded with ``datasets.load_dataset``, which
honours ``HF_HUB_OFFLINE`` and the local cache. The local sources need no network.

Tasks come from ``schema`` (a tasks.json document or its path), else a tasks.json beside the data, else the
columns' features: a ``ClassLabel`` column is a classification task, a list of ``ClassLabel`` a multilabel one.
Values follow the conventions of :mod:`mtlzoo.data._schema` (an Image column reads as a PNG file would; -1
reads as the ignore index). Checked when the data set is built: the columns, every integer label column of an
image-level task (class ids out of range are listed with their rows) and the first row; each later row as it
loads (a label map's class ids, its shape), with an error naming the row, the task and the value. An image
declaring more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels is refused before it is decoded. An array image
column may hold grey (H, W) arrays, repeated on the three channels.
Needs the ``datasets`` extra: ``pip install 'mtlzoo[datasets]'``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mtlzoo.data import _io
from mtlzoo.data._io import ImageTooLargeError, image_header, pick_tasks, refuse_large_images, rgb_array
from mtlzoo.data._schema import (
    SCHEMA_FILE,
    DeclaredTask,
    bad_labels,
    checked_size,
    dense_shape_problem,
    dense_target,
    image_level_target,
    label_problem,
    listed,
    parse_schema,
    problems_error,
    read_schema,
)
from mtlzoo.data.transforms import Compose, Resize
from mtlzoo.extras import require
from mtlzoo.tasks import Task

# the split names tried for each of mtlzoo's; "val" falls back to "test" as in the benchmarks' code bases
SPLIT_ALIASES = {"train": ("train",), "val": ("val", "validation", "valid", "dev", "test"),
                 "test": ("test", "val", "validation", "valid", "dev")}
_SPLIT_WORDS = ("train", "val", "validation", "valid", "test", "dev")


def require_datasets() -> Any:
    """The ``datasets`` module; a MissingExtraError (an ImportError) naming the extra when it is not installed."""
    return require("datasets", "an hf: data set")


def _aliases(split: str) -> tuple[str, ...]:
    return SPLIT_ALIASES.get(split, (split,))


def _pick(names: Iterable[str], split: str | None, where: str) -> str:
    """The split name to read for ``split`` (or its aliases); None: the first one (the schema is the same)."""
    names = list(names)
    if split is None and names:
        return names[0]
    for key in _aliases(split):
        if key in names:
            return key
    raise ValueError(f"{where} has no split {split!r} (tried {list(_aliases(split))}); its splits: {names}")


def _split_word(path: Path, root: Path) -> str:
    """The split a parquet file belongs to, from its folder or file name ("" when neither names one)."""
    parts = path.relative_to(root).parts if path.is_relative_to(root) else (path.name,)
    words = [*parts[:-1], path.stem.split("-")[0].split("_")[0].split(".")[0]]
    return next((w for w in words if w in _SPLIT_WORDS), "")


def _parquet(local: Path, split: str | None) -> Any:
    """The ``split`` of the parquet files in folder ``local``; a file named directly is every split."""
    datasets = require_datasets()
    if local.is_file():
        return datasets.load_dataset("parquet", data_files={"data": [str(local)]}, split="data")
    files = sorted(local.rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"hf data set {local}: neither a save_to_disk folder (dataset_info.json, state.json "
                                "or dataset_dict.json) nor parquet files")
    groups: dict[str, list[str]] = {}
    for path in files:
        groups.setdefault(_split_word(path, local), []).append(str(path))
    key = "" if list(groups) == [""] else _pick(sorted(k for k in groups if k), split, f"hf data set {local}")
    return datasets.load_dataset("parquet", data_files={"data": groups[key]}, split="data")


def open_source(source: str, split: str | None) -> Any:
    """The ``split`` of a save_to_disk folder, parquet file(s) or Hub data set, as a ``datasets.Dataset`` (None:
    any split)."""
    datasets = require_datasets()
    local = Path(source).expanduser()
    if local.is_dir() and any((local / f).is_file() for f in ("dataset_dict.json", "state.json")):
        data = datasets.load_from_disk(str(local))
        return data[_pick(data.keys(), split, f"hf data set {local}")] if isinstance(data, Mapping) else data
    if local.exists():
        return _parquet(local, split)
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise FileNotFoundError(f"hf data set {source!r}: no such file or folder")
    try:
        names = datasets.get_dataset_split_names(source)
        return datasets.load_dataset(source, split=_pick(names, split, f"hf data set {source!r}"))
    except OSError as error:  # not cached and offline, no network, or not on the Hub
        raise FileNotFoundError(f"hf data set {source!r} could not be loaded ({type(error).__name__}: {error}); "
                                "offline, it must be in the local cache (HF_HUB_OFFLINE=1), or pass a folder saved "
                                "with save_to_disk or parquet files") from None


def _inferred(features: Mapping[str, Any], image_column: str) -> dict[str, DeclaredTask]:
    """Tasks read off column features: ClassLabel -> classification, a list of ClassLabel -> multilabel."""
    datasets = require_datasets()
    out = {}
    for column, feature in features.items():
        inner = getattr(feature, "feature", None)
        if column == image_column or not column.isidentifier():
            continue
        if isinstance(feature, datasets.ClassLabel):
            out[column] = DeclaredTask(Task(column, "classification", feature.num_classes), tuple(feature.names))
        elif isinstance(inner, datasets.ClassLabel):
            out[column] = DeclaredTask(Task(column, "multilabel", inner.num_classes), tuple(inner.names))
    return out


def _schema(schema: Any, source: str, features: Mapping[str, Any], image_column: str) -> dict[str, DeclaredTask]:
    if isinstance(schema, (str, os.PathLike)):
        return read_schema(Path(schema))[1]
    if schema is not None:
        return parse_schema(schema, "hf schema")[1]
    local = Path(source).expanduser()
    beside = local.parent / SCHEMA_FILE if local.is_file() else local / SCHEMA_FILE  # in a folder, next to a file
    if beside.is_file():
        return read_schema(beside)[1]
    declared = _inferred(features, image_column)
    if not declared:
        raise ValueError(f"hf data set {source!r}: no task declared and none inferred from its columns "
                         f"{list(features)}; pass schema={{\"tasks\": {{...}}}} (--data-opt) or put a {SCHEMA_FILE} "
                         "beside the data")
    return declared


def _column_problems(data: Any, declared: Mapping[str, DeclaredTask], image_column: str) -> list[str]:
    """Missing columns and column types that cannot hold a task's targets."""
    datasets = require_datasets()
    features = data.features
    problems = []
    if image_column not in features:
        problems.append(f"no image column {image_column!r}; columns: {list(features)} (pass image_column=...)")
    for name, decl in declared.items():
        feature = features.get(name)
        if feature is None:
            problems.append(f"task {name!r} ({decl.task.kind}): no column {name!r}; columns: {list(features)}")
        elif decl.task.dense and isinstance(feature, (datasets.Value, datasets.ClassLabel)):
            problems.append(f"task {name!r}: column holds one {feature} per row; a dense task needs an Image or "
                            "array column")
        elif not decl.task.dense and isinstance(feature, datasets.Image):
            problems.append(f"task {name!r}: column holds images; an image-level task needs a label per row")
        elif isinstance(feature, datasets.ClassLabel) and feature.num_classes != decl.task.channels:
            problems.append(f"task {name!r}: column has {feature.num_classes} classes, the declaration "
                            f"{decl.task.channels}")
    return problems


def _stored_dtype(feature: Any) -> np.dtype | None:
    """The element dtype of an array column (Array2D / Array3D, nested lists of a Value); None if it has none."""
    while getattr(feature, "feature", None) is not None:
        feature = feature.feature
    dtype = getattr(feature, "dtype", None)
    try:
        return np.dtype(dtype) if isinstance(dtype, str) else None
    except TypeError:
        return None


def _multi_hot(ids: Iterable[int], channels: int) -> np.ndarray:
    """A 0 / 1 vector of ``channels`` entries with the listed class ids set."""
    ids = [int(i) for i in ids]
    bad = [i for i in ids if not 0 <= i < channels]
    if bad:
        raise ValueError(f"class ids {bad} lie outside [0, {channels - 1}]")
    vector = np.zeros(channels, np.float32)
    vector[ids] = 1.0
    return vector


class HFDataset(_io.ListedDataset):
    """A Hugging Face data set as mtlzoo samples: ``{"image": (3, H, W) normalised, <task>: target}``.

    ``source``: a save_to_disk folder, parquet file(s) or a Hub name; ``tasks`` picks declared tasks (default:
    all); ``schema`` declares them (tasks.json document or path); ``size`` (H, W) resizes every sample;
    ``transform`` is a joint transform applied after that.
    """

    dataset_name = "hf"
    default_protocol = "generic"

    def __init__(self, source: str | os.PathLike, split: str = "train", tasks: Iterable[str | Task] | None = None,
                 image_column: str = "image", schema: Any = None, transform: Callable[[dict], dict] | None = None,
                 size: tuple[int, int] | None = None) -> None:
        self.source, self.image_column = str(source), image_column
        self.data = open_source(self.source, split)
        declared = _schema(schema, self.source, self.data.features, image_column)
        kinds = {n: d.task.kind for n, d in declared.items()}
        self.declared = {n: declared[n] for n in pick_tasks(tasks, kinds, f"hf data set {self.source!r}")}
        kinds = {n: kinds[n] for n in self.declared}
        size = checked_size(size, "hf")
        if size is not None:
            transform = Compose([Resize(size, kinds), *([transform] if transform is not None else [])])
        super().__init__([str(i) for i in range(len(self.data))], kinds, transform)
        self._cached: tuple[int, dict[str, Any]] | None = None
        datasets = require_datasets()
        self._id_lists = {n for n, f in self.data.features.items()  # lists of ClassLabel ids: the classes present
                          if isinstance(getattr(f, "feature", None), datasets.ClassLabel)}
        problems = _column_problems(self.data, self.declared, image_column)
        if not problems:
            problems = self._label_column_problems() + self._row_problems(0)
        if problems:
            raise problems_error(f"hf data set {self.source!r} (split {split!r})", problems)

    @classmethod
    def declared_tasks(cls, source: str | os.PathLike, image_column: str = "image", schema: Any = None,
                       **options: Any) -> list[Task]:
        """The tasks the data set declares (``schema``, a tasks.json beside it, or its ClassLabel columns)."""
        data = open_source(str(source), None)
        return [d.task for d in _schema(schema, str(source), data.features, image_column).values()]

    @property
    def name(self) -> str:
        """The name results are reported under."""
        return f"hf:{self.source}"

    def _row(self, index: int) -> dict[str, Any]:
        """Row ``index``, decoded; an image over the pixel limit is refused from its header, naming its column."""
        if self._cached is None or self._cached[0] != index:
            try:
                with refuse_large_images(f"hf data set {self.source!r}: row {index}"):
                    row = self.data[index]
            except ImageTooLargeError:
                self._name_large_image(index)
                raise
            self._cached = (index, row)
        return self._cached[1]

    def _name_large_image(self, index: int) -> None:
        """Raise the pixel-limit error naming the Image column of row ``index`` that is too large (headers only)."""
        datasets = require_datasets()
        row = self.data.with_format("arrow")[index]  # not decoded: {"bytes", "path"} per Image cell
        for column, feature in self.data.features.items():
            value = row.column(column)[0].as_py() if isinstance(feature, datasets.Image) else None
            if isinstance(value, dict) and (value.get("bytes") or value.get("path")):
                source = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
                try:
                    image_header(source, f"hf data set {self.source!r}: row {index}, column {column!r}")
                except OSError:
                    continue

    def _label_column_problems(self) -> list[str]:
        """Class ids out of range in the integer columns of image-level label tasks (each column read once)."""
        datasets = require_datasets()
        problems = []
        for name, decl in self.declared.items():
            feature = self.data.features[name]
            integer = isinstance(feature, datasets.ClassLabel) or (
                isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint")))
            if decl.task.dense or not decl.labels or not integer:
                continue
            values = self.data.with_format("arrow")[name].fill_null(-1).to_numpy()  # None: no label, as -1
            problem = label_problem(decl.task, values)
            if problem:
                rows = [str(i) for i in np.flatnonzero(bad_labels(decl.task, values)).tolist()]
                problems.append(f"task {name!r} (column {name!r}): row(s) {listed(rows)}: {problem}")
        return problems

    def _row_problems(self, index: int) -> list[str]:
        """Problems of one row (checked up front on the first): images and labels that do not fit the tasks."""
        try:
            self.load_image(index)
        except ValueError as error:
            return [str(error)]
        problems = []
        for name in self.declared:
            try:
                self.load(index, name)
            except ValueError as error:
                problems.append(str(error))
        return problems

    def _image_size(self, index: int) -> tuple[int, int]:
        value = self._row(index)[self.image_column]
        return (value.height, value.width) if hasattr(value, "convert") else np.shape(value)[:2]

    def load_image(self, index: int) -> np.ndarray:
        value = self._row(index)[self.image_column]
        if hasattr(value, "convert"):
            return np.array(value.convert("RGB"))
        array = np.asarray(value, _stored_dtype(self.data.features[self.image_column]))  # rows come back as lists
        return rgb_array(array, f"hf data set {self.source!r}: row {index}, column {self.image_column!r}")

    def load(self, index: int, task: str) -> np.ndarray:
        decl, value = self.declared[task], self._row(index)[task]
        try:
            if not decl.task.dense:
                return image_level_target(decl, _multi_hot(value, decl.task.channels) if task in self._id_lists
                                          else value)
            array = np.array(value) if hasattr(value, "convert") else np.asarray(value)
            problem = dense_shape_problem(decl, array.shape, self._image_size(index))
            if problem:
                raise ValueError(problem)
            return dense_target(decl, array, from_png=hasattr(value, "convert"))  # an Image reads as a PNG file
        except ValueError as error:
            raise ValueError(f"hf data set {self.source!r}: row {index}, task {task!r} (column {task!r}): "
                             f"{error}") from None


__all__ = ["HFDataset", "open_source", "require_datasets"]
