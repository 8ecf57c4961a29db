"""``folder:PATH``: a multi-task data set stored as plain files and declared by a tasks.json, with no code.

Layout::

    root/
      tasks.json                 the tasks: name, kind, classes, ignore index (see mtlzoo.data._schema)
      images/<stem>.png          RGB images (.png, .jpg, .jpeg, or .npy (H, W, 3) arrays)
      <task>/<stem>.png | .npy   one map per image for a dense task (label PNG, 16-bit depth PNG, .npy arrays),
                                 or one .npy array per image for an image-level task
      <task>.json | <task>.csv   image-level labels: {"<stem>": label} or rows "<stem>,<label>[,<label>...]"
                                 (a header row is skipped; a cell "cat;dog" is a list of class names)
      splits/<split>.txt         optional: the stems of each split, one per line; without splits/, every
                                 split is the whole folder (fine for evaluation, not for training)

The folder is checked when the data set is built: every problem (a missing file, a map whose shape does not
match its image, a bad label, an unknown kind in tasks.json) is listed in one ValueError.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mtlzoo.data import _io
from mtlzoo.data._io import pick_tasks, read_image, read_png
from mtlzoo.data._schema import (
    MAX_LISTED,
    SCHEMA_FILE,
    DeclaredTask,
    checked_size,
    dense_shape_problem,
    dense_target,
    image_level_target,
    listed,
    problems_error,
    read_schema,
)
from mtlzoo.data.transforms import Compose, Resize
from mtlzoo.tasks import Task

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".npy")
MAP_SUFFIXES = (".png", ".npy")
LABEL_SUFFIXES = (".json", ".csv")


def _stored_shape(path: Path) -> tuple[int, ...]:
    """The shape of a stored map or image, read from the file header only."""
    if path.suffix == ".npy":
        return tuple(np.load(path, mmap_mode="r").shape)
    from PIL import Image

    with Image.open(path) as im:
        bands = len(im.getbands())
        return (im.height, im.width) if bands == 1 else (im.height, im.width, bands)


def _cell(text: str) -> Any:
    """A CSV cell as an int, a float, a list of names (``a;b``) or a name; empty: None (no label)."""
    text = text.strip()
    if not text:
        return None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return [t.strip() for t in text.split(";")] if ";" in text else text


def read_labels(path: Path) -> dict[str, Any]:
    """Image-level labels of a .json ({stem: label}) or .csv (stem, then one or more values) file, by stem."""
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"malformed JSON at line {error.lineno}: {error.msg}") from None
        if not isinstance(data, dict):
            raise ValueError(f"expects a mapping {{\"<image stem>\": label}}, got a {type(data).__name__}")
        return {Path(str(k)).stem if Path(str(k)).suffix.lower() in IMAGE_SUFFIXES else str(k): v
                for k, v in data.items()}
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row and any(c.strip() for c in row)]
    if rows and rows[0][0].strip().lower() in ("image", "stem", "id", "name", "file", "filename"):
        rows = rows[1:]
    out = {}
    for row in rows:
        stem, values = Path(row[0].strip()).stem, [_cell(c) for c in row[1:]]
        out[stem] = values[0] if len(values) == 1 else values
    return out


class FolderDataset(_io.ListedDataset):
    """A data set on disk in the ``folder:`` layout (module docstring), split by ``splits/<split>.txt``.

    ``tasks`` picks the declared tasks to return (default: all); ``size`` (H, W) resizes every sample (needed
    when the images differ in size); ``transform`` is a joint transform applied after that.
    """

    dataset_name = "folder"
    default_protocol = "generic"

    def __init__(self, root: str | os.PathLike, split: str = "train", tasks: Iterable[str | Task] | None = None,
                 transform: Callable[[dict], dict] | None = None, size: tuple[int, int] | None = None) -> None:
        self.root = Path(root).expanduser()
        self.title, declared = self._schema(self.root)
        self.declared = {n: declared[n] for n in pick_tasks(tasks, {n: d.task.kind for n, d in declared.items()},
                                                            f"folder {self.root}")}
        kinds = {n: d.task.kind for n, d in self.declared.items()}
        self.size = checked_size(size, "folder")
        if self.size is not None:
            transform = Compose([Resize(self.size, kinds), *([transform] if transform is not None else [])])
        images = self._images()
        wanted = self._split_ids(split, images)
        unknown = [s for s in wanted if s not in images]
        problems = [f"splits/{split}.txt names {len(unknown)} image(s) not in images/: {listed(unknown)}"] \
            if unknown else []
        ids = [s for s in wanted if s in images]
        self._paths = [images[stem] for stem in ids]
        self._files: dict[str, list[Path | None]] = {}
        self._labels: dict[str, list[np.ndarray | None]] = {}
        if ids:
            super().__init__(ids, kinds, transform)
            problems += self._check(ids)
        elif not unknown:
            problems.append(f"splits/{split}.txt lists no image")
        if problems:
            raise problems_error(f"folder data set {self.root} (split {split!r})", problems)

    @classmethod
    def _schema(cls, root: Path) -> tuple[str | None, dict[str, DeclaredTask]]:
        if not root.is_dir():
            raise FileNotFoundError(f"folder data set {str(root)!r} does not exist (expected a folder with "
                                    f"{SCHEMA_FILE}, images/ and one entry per task; see mtlzoo.data.folder)")
        if not (root / SCHEMA_FILE).is_file():
            raise FileNotFoundError(f"folder data set {root} has no {SCHEMA_FILE}; write one declaring each task, "
                                    "e.g. {\"tasks\": {\"semseg\": {\"kind\": \"segmentation\", \"classes\": 5}}}")
        return read_schema(root / SCHEMA_FILE)

    @classmethod
    def declared_tasks(cls, root: str | os.PathLike, **options: Any) -> list[Task]:
        """The tasks the tasks.json of ``root`` declares (read without checking the files)."""
        return [d.task for d in cls._schema(Path(root).expanduser())[1].values()]

    @property
    def name(self) -> str:
        """The name results are reported under: tasks.json's ``name``, else ``folder:<folder name>``."""
        return self.title or f"folder:{self.root.name}"

    def _images(self) -> dict[str, Path]:
        folder = self.root / "images"
        if not folder.is_dir():
            raise FileNotFoundError(f"folder data set {self.root} has no images/ folder (one image per sample)")
        images: dict[str, Path] = {}
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                images.setdefault(path.stem, path)
        if not images:
            raise ValueError(f"folder data set {self.root}: images/ holds no {'/'.join(IMAGE_SUFFIXES)} file")
        return images

    def _split_ids(self, split: str, images: dict[str, Path]) -> list[str]:
        """The stems of ``split``: its list in splits/, or every image when there is no splits/ folder."""
        folder = self.root / "splits"
        if not folder.is_dir():
            return list(images)
        path = folder / f"{split}.txt"
        if not path.is_file():
            found = sorted(p.stem for p in folder.glob("*.txt"))
            raise FileNotFoundError(f"folder data set {self.root}: no split list splits/{split}.txt "
                                    f"(split lists found: {found})")
        return _io.read_split(path)

    def _check(self, ids: list[str]) -> list[str]:
        """Every problem of the folder for this split (empty when it is usable)."""
        sizes = [_stored_shape(p)[:2] for p in self._paths]
        problems = []
        if self.size is None and len(set(sizes)) > 1:
            first = {}
            for path, hw in zip(self._paths, sizes, strict=True):
                first.setdefault(hw, path.name)
            shown = ", ".join(f"{name} {h}x{w}" for (h, w), name in list(first.items())[:3])
            problems.append(f"images differ in size ({shown}); pass size=[H, W] (--data-opt size=[H,W]) to "
                            "resize them")
        for name, decl in self.declared.items():
            if decl.task.dense:
                problems += self._check_maps(name, decl, ids, sizes)
            else:
                problems += self._check_labels(name, decl, ids)
        return problems

    def _find(self, name: str, ids: list[str], suffixes: tuple[str, ...]) -> tuple[list[Path | None], list[str]]:
        """The file of each image in ``<task>/`` (None where there is none) and a problem for the missing ones."""
        folder = self.root / name
        files = [next((folder / f"{s}{x}" for x in suffixes if (folder / f"{s}{x}").is_file()), None) for s in ids]
        missing = [stem for stem, path in zip(ids, files, strict=True) if path is None]
        return files, ([f"task {name!r}: no {'/'.join(suffixes)} file in {name}/ for {len(missing)} image(s): "
                        f"{listed(missing)}"] if missing else [])

    def _check_maps(self, name: str, decl: DeclaredTask, ids: list[str], sizes: list[tuple]) -> list[str]:
        if not (self.root / name).is_dir():
            return [f"task {name!r} ({decl.task.kind}): folder {name}/ is missing (one map per image)"]
        files, problems = self._find(name, ids, MAP_SUFFIXES)
        bad = []
        for path, hw in zip(files, sizes, strict=True):
            problem = None if path is None else dense_shape_problem(decl, _stored_shape(path), hw)
            if problem:
                bad.append(f"task {name!r}: {name}/{path.name}: {problem}")
        self._files[name] = files
        return problems + bad[:MAX_LISTED] + (
            [f"task {name!r}: {len(bad) - MAX_LISTED} more shape mismatches"] if len(bad) > MAX_LISTED else [])

    def _check_labels(self, name: str, decl: DeclaredTask, ids: list[str]) -> list[str]:
        path = next((self.root / f"{name}{s}" for s in LABEL_SUFFIXES if (self.root / f"{name}{s}").is_file()), None)
        if path is None and not (self.root / name).is_dir():
            return [f"task {name!r} ({decl.task.kind}): no labels file {name}.json / {name}.csv and no folder "
                    f"{name}/ of one .npy per image"]
        if path is None:
            files, problems = self._find(name, ids, (".npy",))
            table = {}
            for stem, file in zip(ids, files, strict=True):
                try:
                    if file is not None:
                        table[stem] = np.load(file).tolist()
                except (OSError, ValueError) as error:
                    problems.append(f"task {name!r}: {name}/{file.name} is unreadable: {error}")
            path = Path(name)
        else:
            try:
                table = read_labels(path)
            except (ValueError, IndexError) as error:
                return [f"task {name!r}: {path.name}: {error}"]
            missing = [s for s in ids if s not in table]
            problems = [f"task {name!r}: {path.name} has no label for {len(missing)} image(s): "
                        f"{listed(missing)}"] if missing else []
        labels = []
        for stem in ids:
            try:
                labels.append(image_level_target(decl, table.get(stem)) if stem in table else None)
            except ValueError as error:
                problems.append(f"task {name!r}: {path.name}: image {stem!r}: {error}")
        self._labels[name] = labels
        return problems

    def load_image(self, index: int) -> np.ndarray:
        path = self._paths[index]
        return np.load(path) if path.suffix == ".npy" else read_image(path)

    def load(self, index: int, task: str) -> np.ndarray:
        if task in self._labels:
            return self._labels[task][index]
        path, decl = self._files[task][index], self.declared[task]
        if path.suffix == ".npy":
            return dense_target(decl, np.load(path), from_png=False)
        return dense_target(decl, read_png(path), from_png=True)


__all__ = ["FolderDataset", "read_labels"]
