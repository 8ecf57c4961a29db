"""Shared plumbing of the on-disk benchmark loaders: file reading, root checks and the sample pipeline."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from mtlzoo.data.transforms import image_to_tensor, targets_to_tensors
from mtlzoo.registry import unknown_name_error
from mtlzoo.tasks import Task


def read_image(path: Path) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 RGB array."""
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, read from its header."""
    from PIL import Image

    with Image.open(path) as im:
        return im.height, im.width


def read_png(path: Path) -> np.ndarray:
    """A label / map PNG as stored (palette indices or grey values; RGB for 3-channel files)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im)


def find_file(folder: Path, stem: str, suffixes: Iterable[str]) -> Path:
    """``folder/stem<suffix>`` for the first suffix that exists; a FileNotFoundError listing what was tried."""
    tried = [folder / f"{stem}{s}" for s in suffixes]
    for path in tried:
        if path.is_file():
            return path
    raise FileNotFoundError(f"none of {[str(p) for p in tried]} exists")


def resolve_root(root: str | os.PathLike, names: Iterable[str], marker: str, how_to_get: str) -> Path:
    """The data folder: ``root`` itself or ``root/<name>`` for one of ``names``, recognised by ``marker``.

    A missing folder raises a FileNotFoundError that says where to obtain the data and the layout expected.
    """
    base = Path(root).expanduser()
    for candidate in [base, *(base / n for n in names)]:
        if (candidate / marker).exists():
            return candidate
    raise FileNotFoundError(f"no {marker!r} under {str(base)!r} (nor under {[str(base / n) for n in names]}).\n"
                            f"{how_to_get}")


def read_split(path: Path) -> list[str]:
    """Image ids listed one per line (first column), blank lines skipped."""
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def pick_tasks(tasks: Iterable[str | Task] | None, kinds: Mapping[str, str], dataset: str) -> dict[str, str]:
    """{task name: kind} for the requested task names (default: all the dataset has)."""
    if tasks is None:
        return dict(kinds)
    names = [t.name if isinstance(t, Task) else t for t in tasks]
    for name in names:
        if name not in kinds:
            raise unknown_name_error(f"{dataset} task", name, list(kinds))
    return {n: kinds[n] for n in names}


class ListedDataset(Dataset):
    """Base of the real-benchmark loaders: subclasses list ``ids`` and implement ``load(index, task)``."""

    dataset_name = "dataset"

    def __init__(self, ids: list[str], tasks: dict[str, str], transform: Callable[[dict], dict] | None) -> None:
        if not ids:
            raise ValueError(f"{self.dataset_name}: the split lists no images")
        self.ids, self.tasks, self.transform = ids, tasks, transform

    def __len__(self) -> int:
        return len(self.ids)

    def task_kinds(self) -> dict[str, str]:
        """The kind of each target this dataset returns."""
        return dict(self.tasks)

    def load_image(self, index: int) -> np.ndarray:
        """The RGB image of sample ``index`` as (H, W, 3) uint8 or [0, 1] float."""
        raise NotImplementedError

    def load(self, index: int, task: str) -> np.ndarray:
        """The target of ``task`` for sample ``index`` as a numpy array in mtlzoo's conventions."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.dataset_name} index {index} out of range for length {len(self)}")
        index %= len(self)
        arrays = {task: self.load(index, task) for task in self.tasks}
        sample = {"image": image_to_tensor(self.load_image(index)), **targets_to_tensors(arrays, self.tasks)}
        return self.transform(sample) if self.transform is not None else sample
