"""Shared plumbing of the on-disk benchmark loaders: file reading, root checks and the sample pipeline."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from mtlzoo.data.transforms import image_to_tensor, targets_to_tensors
from mtlzoo.registry import unknown_name_error
from mtlzoo.tasks import Task

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


class ImageTooLargeError(ValueError):
    """An image file declares more pixels than PIL.Image.MAX_IMAGE_PIXELS (a possible decompression bomb)."""


def _too_large(name: str, declared: str, limit: int | None) -> ImageTooLargeError:
    return ImageTooLargeError(f"{name}: the image declares {declared}, more than the limit of {limit} pixels "
                      "(PIL.Image.MAX_IMAGE_PIXELS, a guard against decompression bombs); it is refused before "
                      "decoding: resize it, or raise that limit if the file is trusted")


@contextmanager
def refuse_large_images(name: str) -> Iterator[None]:
    """Within it, an image PIL opens with more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels raises
    ImageTooLargeError naming ``name`` (PIL checks the size when it reads the header, before decoding; above
    the limit it only warns, so the warning is made an error here)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # PIL warns above the limit, raises above 2x
        try:
            yield
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            found = re.search(r"\((\d+) pixels\)", str(error))
            raise _too_large(name, f"{found.group(1)} pixels" if found else "more pixels",
                             Image.MAX_IMAGE_PIXELS) from None


@contextmanager
def open_image(source: str | os.PathLike | IO[bytes], name: str | None = None) -> Iterator[PILImage]:
    """Open an image reading its header only; one of more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels is refused.

    A small file can declare a huge image (a decompression bomb), so the size is checked before any pixel
    is decoded: a ValueError names the file (``name``, default the path) and the limit. The limit is PIL's
    own setting (about 89 million pixels unless changed; None turns the check off).
    """
    from PIL import Image

    name = name or str(source)
    limit = Image.MAX_IMAGE_PIXELS
    with refuse_large_images(name):
        image = Image.open(source)
    with image:
        if limit is not None and image.width * image.height > limit:
            raise _too_large(name, f"{image.width * image.height} pixels", limit)  # where PIL did not check
        yield image


def image_header(source: str | os.PathLike | IO[bytes], name: str | None = None) -> tuple[int, ...]:
    """The shape of an image file read from its header: (H, W) for one band, else (H, W, bands)."""
    with open_image(source, name) as im:
        bands = len(im.getbands())
        return (im.height, im.width) if bands == 1 else (im.height, im.width, bands)


def read_image(path: Path, name: str | None = None) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 RGB array (size checked first: see :func:`open_image`)."""
    with open_image(path, name) as im:
        return np.array(im.convert("RGB"))


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, read from its header."""
    return image_header(path)[:2]


def read_png(path: Path, name: str | None = None) -> np.ndarray:
    """A label / map PNG as stored (palette indices or grey values; RGB for 3-channel files)."""
    with open_image(path, name) as im:
        return np.array(im)


def image_array_problem(shape: tuple[int, ...], dtype: np.dtype) -> str | None:
    """Why an array of ``shape`` and ``dtype`` cannot be an image (None when it can)."""
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3))):
        return f"shape {tuple(shape)}; expected (H, W, 3) RGB, or (H, W) or (H, W, 1) grey"
    if not (dtype == np.uint8 or np.issubdtype(dtype, np.floating)):
        return f"dtype {dtype}; expected uint8 (0-255) or float (0-1)"
    return None


def rgb_array(array: np.ndarray, name: str) -> np.ndarray:
    """An image array as (H, W, 3): grey (H, W) or (H, W, 1) is repeated on the three channels.

    Anything else (RGBA, a channel-first array, int32...) is a ValueError naming ``name`` and what is accepted.
    """
    array = np.asarray(array)
    problem = image_array_problem(array.shape, array.dtype)
    if problem:
        raise ValueError(f"{name}: an image array of {problem}")
    if array.ndim == 2:
        array = array[..., None]
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array


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
