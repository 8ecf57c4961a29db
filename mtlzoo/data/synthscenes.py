"""synthscenes: a procedural, deterministic indoor-scene benchmark with exact labels for every dense task kind.

Image ``i`` of split ``s`` is a pure function of (seed, split, i, generator version) and does not depend
on the resolution's scene content: the same index renders the same scene at 96x128, 192x256 or 288x384.
Classes are :data:`mtlzoo.tasks.SYNTHSCENES_CLASSES`, parts :data:`mtlzoo.tasks.SYNTHSCENES_PARTS`.
Version 2 (the default) makes the figure frequent, near and stocky enough for parts to learn at 48x64;
version 1 (``version=1``) renders as before, for runs and checkpoints made on it (docs/synthscenes.md).
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from mtlzoo.checkpoint import TMP_PREFIX, atomic_path
from mtlzoo.data._image import render
from mtlzoo.data._scene import sample_scene
from mtlzoo.data._tasks import chosen_task_names
from mtlzoo.data.transforms import image_to_tensor, targets_to_tensors
from mtlzoo.registry import unknown_name_error
from mtlzoo.tasks import Task

GENERATOR_VERSION = 3
SUPPORTED_VERSIONS = (1, 2, 3)  # every version stays renderable: old runs and checkpoints reproduce
SPLITS = {"train": 0, "val": 1, "test": 2}
DEFAULT_LENGTHS = {"train": 2000, "val": 500, "test": 500}
TASK_NAMES = ("semseg", "depth", "normals", "edge", "saliency", "parts")
TASK_KINDS = {"semseg": "segmentation", "depth": "depth", "normals": "normals", "edge": "edge",
              "saliency": "saliency", "parts": "parts"}
SHARD_SIZE = 128
ORPHAN_AGE_S = 3600  # a temporary shard older than this belongs to no live writer
# left / right parts to exchange when mirroring (RandomHorizontalFlip(swaps=FLIP_SWAPS)): arms 3 <-> 4, legs 5 <-> 6
FLIP_SWAPS = {"parts": [(3, 4), (5, 6)]}


def _check(split: str, version: int) -> None:
    if split not in SPLITS:
        raise unknown_name_error("synthscenes split", split, list(SPLITS))
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"synthscenes generator version {version!r} is not available; supported: "
                         f"{list(SUPPORTED_VERSIONS)}")


def render_scene(seed: int, split: str, index: int, size: tuple[int, int] = (96, 128),
                 version: int = GENERATOR_VERSION) -> dict[str, np.ndarray]:
    """Render image ``index`` of ``split``: a pure function of (seed, split, index, version) and size.

    Returns numpy arrays: ``rgb`` uint8 (H, W, 3); ``semseg``, ``parts``, ``saliency``, ``edge`` uint8
    (H, W) with 255 on void pixels (parts all 255 when no figure is in view); ``depth`` float32 (H, W)
    z-depth in metres, 0 = invalid; ``normals`` float32 (H, W, 3) camera-frame unit vectors (x right,
    y down, z forward) facing the camera, zero = invalid; ``instance`` int16 (H, W), -1 on void.
    """
    _check(split, version)
    if index < 0:
        raise ValueError(f"synthscenes index must be >= 0, got {index}")
    rng = np.random.default_rng([int(seed), SPLITS[split], int(index), int(version)])
    return render(sample_scene(rng, version), (int(size[0]), int(size[1])), rng)


class SynthScenes(Dataset):
    """The synthscenes benchmark as a torch Dataset of ``{"image": (3, H, W) normalised, <task>: target}``.

    ``tasks`` picks the targets (default: all six); ``cache_dir`` stores rendered images in ``.npz``
    shards of 128 so later epochs or runs read instead of render, and keeps up to ``cached_shards``
    decoded shards in memory (shuffled reads would otherwise reload a shard per sample);
    ``transform`` is a joint transform applied to the tensor dict (see :mod:`mtlzoo.data.transforms`).
    """

    default_protocol = "synthscenes"  # what it is scored under unless told otherwise
    task_preset = "synthscenes"  # the tasks a model built for it gets

    def __init__(self, split: str = "train", size: tuple[int, int] = (96, 128), length: int | None = None,
                 seed: int = 0, tasks: Iterable[str | Task] | None = None, cache_dir: str | os.PathLike | None = None,
                 version: int = GENERATOR_VERSION, transform: Callable[[dict], dict] | None = None,
                 cached_shards: int = 16) -> None:
        _check(split, version)
        if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(
                isinstance(v, (int, np.integer)) and v >= 8 for v in size):
            raise ValueError(f"synthscenes size must be two integers [H, W], each >= 8, got {size!r}")
        self.split, self.size, self.seed, self.version = split, (int(size[0]), int(size[1])), int(seed), version
        self.length = DEFAULT_LENGTHS[split] if length is None else int(length)
        if self.length < 1:
            raise ValueError(f"synthscenes length must be >= 1, got {length!r}")
        self.tasks = chosen_task_names(tasks, TASK_NAMES, "synthscenes")
        self.transform = transform
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if cached_shards < 1:
            raise ValueError(f"cached_shards must be >= 1, got {cached_shards!r}")
        self.cached_shards = int(cached_shards)
        self._shards: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    @property
    def name(self) -> str:
        """The versioned name numbers should be reported under, e.g. ``synthscenes-v1``."""
        return f"synthscenes-v{self.version}"

    def task_kinds(self) -> dict[str, str]:
        """The kind of each target this dataset returns."""
        return {t: TASK_KINDS[t] for t in self.tasks}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if not -self.length <= index < self.length:
            raise IndexError(f"synthscenes {self.split} index {index} out of range for length {self.length}")
        index %= self.length
        arrays = self._cached(index) if self.cache_dir is not None else render_scene(
            self.seed, self.split, index, self.size, self.version)
        sample = {"image": image_to_tensor(arrays["rgb"]), **targets_to_tensors(arrays, self.task_kinds())}
        return self.transform(sample) if self.transform is not None else sample

    def _shard_path(self, shard: int) -> Path:
        h, w = self.size
        folder = self.cache_dir / f"synthscenes-v{self.version}-{self.split}-seed{self.seed}-{h}x{w}"
        return folder / f"shard{shard:05d}.npz"

    def _cached(self, index: int) -> dict[str, np.ndarray]:
        shard, offset = divmod(index, SHARD_SIZE)
        if shard in self._shards:
            self._shards.move_to_end(shard)
        else:
            self._shards[shard] = self._load_or_render(shard)
            while len(self._shards) > self.cached_shards:
                self._shards.popitem(last=False)
        return {k: v[offset] for k, v in self._shards[shard].items()}

    def _load_or_render(self, shard: int) -> dict[str, np.ndarray]:
        path = self._shard_path(shard)
        start = shard * SHARD_SIZE
        count = min(SHARD_SIZE, self.length - start)
        stored = _read_shard(path, count)
        if stored is not None:
            return stored
        images = [render_scene(self.seed, self.split, i, self.size, self.version) for i in range(start, start + count)]
        arrays = {k: np.stack([im[k] for im in images]) for k in images[0]}
        _remove_orphans(path.parent)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # concurrent workers never read half a shard
            np.savez(handle, **arrays)
        return arrays


def _read_shard(path: Path, count: int) -> dict[str, np.ndarray] | None:
    """The arrays of a cached shard holding at least ``count`` images; None (with a warning) if it is unreadable."""
    if not path.exists():
        return None
    try:
        with np.load(path) as stored:
            arrays = {k: stored[k] for k in stored.files}
        if "rgb" in arrays and all(len(v) == len(arrays["rgb"]) >= count for v in arrays.values()):
            return arrays
        problem = "holds too few images"
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:
        problem = f"is unreadable ({type(error).__name__}: {error})"
    warnings.warn(f"synthscenes cache shard {path} {problem}; rendering it again", stacklevel=4)
    return None


def _remove_orphans(folder: Path) -> None:
    """Delete temporary shards that a killed writer left behind (older than an hour, so live writers are safe)."""
    if not folder.is_dir():
        return
    cutoff = time.time() - ORPHAN_AGE_S
    for tmp in folder.glob(f"{TMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
