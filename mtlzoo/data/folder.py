"""``folder:PATH``: a multi-task data set stored as plain files and declared by a tasks.json, with no code.

Layout::

    root/
      tasks.json                 the tasks: name, kind, classes, ignore index (see mtlzoo.data._schema)
      images/<stem>.png          RGB images (.png, .jpg, .jpeg, or .npy (H, W, 3) arrays; a grey (H, W) or
                                 (H, W, 1) array is repeated on the three channels)
      <task>/<stem>.png | .npy   one map per image for a dense task (label PNG, 16-bit depth PNG, .npy arrays),
                                 or one .npy array per image for an image-level task
      <task>.json | <task>.csv   image-level labels: {"<stem>": label} or rows "<stem>,<label>[,<label>...]"
                                 (a header row is skipped; a cell "cat;dog" is a list of class names)
      splits/<split>.txt         optional: the stems of each split, one per line; without splits/, every
                                 split is the whole folder (fine for evaluation, not for training)

The folder is checked when the data set is built: every problem (a missing file, a map whose shape does not
match its image, a bad label, a class id out of range in a label map, an image over the pixel limit, an unknown
kind in tasks.json) is listed in one ValueError, each naming its file. Class ids lie in [0, classes - 1] or are
the ignore index; -1 (e.g. in an int8 .npy map, which cannot hold 255) reads as the ignore index (see
:mod:`mtlzoo.data._schema`). An image file declaring more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (a
decompression bomb) is refused from its header, before any pixel is decoded.
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
from mtlzoo.data._io import (
    ImageTooLargeError,
    image_array_problem,
    image_header,
    open_image,
    pick_tasks,
    read_image,
    read_png,
    rgb_array,
)
from mtlzoo.data._schema import (
    MAX_LISTED,
    SCHEMA_FILE,
    DeclaredTask,
    checked_size,
    dense_shape_problem,
    dense_target,
    image_level_target,
    label_problem,
    listed,
    problems_error,
    read_schema,
)
from mtlzoo.data.transforms import Compose, Resize
from mtlzoo.tasks import Task

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".npy")
MAP_SUFFIXES = (".png", ".npy")
LABEL_SUFFIXES = (".json", ".csv")


def _header(path: Path, rel: str) -> tuple[tuple[int, ...], np.dtype | None]:
    """The shape of a stored map or image (and the dtype of a .npy array), read from the file header only.

    A ValueError names ``rel`` (the path inside the folder): a file that cannot be read, or an image over the
    pixel limit (:func:`mtlzoo.data._io.open_image`).
    """
    try:
        if path.suffix != ".npy":
            return image_header(path, rel), None
        array = np.load(path, mmap_mode="r")
        return tuple(array.shape), array.dtype
    except ImageTooLargeError:
        raise
    except (OSError, ValueError) as error:
        raise ValueError(f"{rel} is not a readable {'.npy array' if path.suffix == '.npy' else 'image'} "
                         f"({type(error).__name__}: {error})") from None


def _image_shape(path: Path, rel: str) -> tuple[int, ...]:
    """The shape of an image file from its header; a .npy array must be (H, W, 3), (H, W) or (H, W, 1)."""
    shape, dtype = _header(path, rel)
    problem = None if dtype is None else image_array_problem(shape, dtype)
    if problem:
        raise ValueError(f"{rel}: an image array of {problem}")
    return shape


def _distinct_values(path: Path, rel: str) -> np.ndarray:
    """The distinct values of a stored label map (an 8-bit PNG's from its histogram, without an array)."""
    if path.suffix == ".npy":
        return np.unique(np.load(path, mmap_mode="r"))
    with open_image(path, rel) as im:
        if im.mode in ("L", "P"):
            return np.flatnonzero(im.histogram()[:256])
        return np.unique(np.array(im))


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
    when the images differ in size); ``transform`` is a joint transform applied after that. ``check_labels``
    (default True) reads every label map once when the data set is built, so a class id out of range is listed
    with the other problems; False skips that scan (one decode per map) and the same check then runs as each
    sample loads.
    """

    dataset_name = "folder"
    default_protocol = "generic"

    def __init__(self, root: str | os.PathLike, split: str = "train", tasks: Iterable[str | Task] | None = None,
                 transform: Callable[[dict], dict] | None = None, size: tuple[int, int] | None = None,
                 check_labels: bool = True) -> None:
        self.root = Path(root).expanduser()
        self.check_labels = bool(check_labels)
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

    def _image_sizes(self) -> tuple[list[tuple[int, int] | None], list[str]]:
        """(H, W) of each image, read from its header (None where it is unusable), and the problems found."""
        sizes, problems = [], []
        for path in self._paths:
            try:
                sizes.append(_image_shape(path, f"images/{path.name}")[:2])
            except ValueError as error:
                sizes.append(None)
                problems.append(str(error))
        return sizes, problems[:MAX_LISTED] + (
            [f"{len(problems) - MAX_LISTED} more unusable images"] if len(problems) > MAX_LISTED else [])

    def _check(self, ids: list[str]) -> list[str]:
        """Every problem of the folder for this split (empty when it is usable)."""
        sizes, problems = self._image_sizes()
        known = [hw for hw in sizes if hw is not None]
        if self.size is None and len(set(known)) > 1:
            first = {}
            for path, hw in zip(self._paths, sizes, strict=True):
                if hw is not None:
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
        bad = [f"task {name!r}: {problem}" for path, hw in zip(files, sizes, strict=True)
               if path is not None and (problem := self._map_problem(decl, path, hw))]
        self._files[name] = files
        return problems + bad[:MAX_LISTED] + (
            [f"task {name!r}: {len(bad) - MAX_LISTED} more bad maps"] if len(bad) > MAX_LISTED else [])

    def _map_problem(self, decl: DeclaredTask, path: Path, size: tuple[int, int] | None) -> str | None:
        """What is wrong with one stored map: unreadable, too large, shape, class ids out of range (label maps)."""
        rel = f"{decl.task.name}/{path.name}"
        try:
            shape = _header(path, rel)[0]
        except ValueError as error:  # unreadable, or over the pixel limit: the message names the file
            return str(error)
        problem = None if size is None else dense_shape_problem(decl, shape, size)
        if problem is None and decl.labels and self.check_labels:
            try:
                problem = label_problem(decl.task, _distinct_values(path, rel))
            except (OSError, ValueError) as error:  # a header that reads but pixels that do not decode
                problem = f"cannot be decoded ({type(error).__name__}: {error})"
        return f"{rel}: {problem}" if problem else None

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
        return rgb_array(np.load(path), str(path)) if path.suffix == ".npy" else read_image(path)

    def load(self, index: int, task: str) -> np.ndarray:
        if task in self._labels:
            return self._labels[task][index]
        path, decl = self._files[task][index], self.declared[task]
        array = np.load(path) if path.suffix == ".npy" else read_png(path)
        try:
            return dense_target(decl, array, from_png=path.suffix != ".npy")
        except ValueError as error:
            raise ValueError(f"folder data set {self.root}: task {task!r}: {task}/{path.name}: {error}") from None


__all__ = ["FolderDataset", "read_labels"]
