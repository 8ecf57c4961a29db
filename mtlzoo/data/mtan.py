"""NYUv2 (13 classes, 288x384) and Cityscapes (7 classes, 128x256) in the MTAN family's ``.npy`` layout.

Expected tree (as released with MTAN and reused by CAGrad, Nash-MTL, FAMO, LibMTL)::

    <root>/train/ and <root>/val/            ("val" is the test split; "test" is accepted as an alias)
      image/<i>.npy     (H, W, 3) float RGB in [0, 1]
      label/<i>.npy     NYUv2: (H, W) class ids 0..12, -1 = ignore
      label_7/<i>.npy   Cityscapes: (H, W) class ids 0..6, -1 = ignore (label_19/ for 19 classes)
      depth/<i>.npy     (H, W, 1): NYUv2 metres, Cityscapes inverse depth; 0 = invalid
      normal/<i>.npy    NYUv2 only: (H, W, 3) unit vectors, zero vector = invalid

with ``<i>`` = 0 .. N-1. Conventions are kept as stored: ignore -1 (the ``nyuv2_mtan`` / ``cityscapes2``
task presets use ``ignore_index=-1``) and Cityscapes' inverse depth (use ``inverse_depth=True`` in
:class:`mtlzoo.data.transforms.RandomScaleCrop`). Images are normalised with the ImageNet mean / std.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from mtlzoo.data._io import ListedDataset, pick_tasks, resolve_root
from mtlzoo.registry import unknown_name_error
from mtlzoo.tasks import Task

SPLITS = {"train": "train", "val": "val", "test": "val"}
_HOW = ("The preprocessed {name} of MTAN (github.com/lorenmt/mtan, README links) unpacks into <root>/train and "
        "<root>/val, each with {folders}/ holding 0.npy, 1.npy, ... See mtlzoo.data.mtan.")


class _MTANDataset(ListedDataset):
    folders: dict[str, str] = {}
    kinds: dict[str, str] = {}

    def __init__(self, root: str | os.PathLike, split: str, tasks: Iterable[str | Task] | None,
                 transform: Callable[[dict], dict] | None) -> None:
        if split not in SPLITS:
            raise unknown_name_error(f"{self.dataset_name} split", split, list(SPLITS))
        how = _HOW.format(name=self.dataset_name, folders=", ".join(["image", *self.folders.values()]))
        base = resolve_root(root, (), f"{SPLITS[split]}/image", how)
        self.split_dir = base / SPLITS[split]
        count = len(list((self.split_dir / "image").glob("*.npy")))
        super().__init__([str(i) for i in range(count)], pick_tasks(tasks, self.kinds, self.dataset_name), transform)

    def _npy(self, folder: str, index: int) -> np.ndarray:
        path = Path(self.split_dir, folder, f"{self.ids[index]}.npy")
        if not path.is_file():
            raise FileNotFoundError(f"{self.dataset_name}: missing {path}; files must be numbered 0 .. N-1")
        return np.load(path)

    def load_image(self, index: int) -> np.ndarray:
        return np.clip(self._npy("image", index).astype(np.float32), 0.0, 1.0)

    def load(self, index: int, task: str) -> np.ndarray:
        value = self._npy(self.folders[task], index)
        if task == "semseg":
            return np.where(value < 0, -1, np.rint(value)).astype(np.int64)
        if task == "depth":
            return value.astype(np.float32).reshape(value.shape[:2])
        return value.astype(np.float32)


class MTANNYUv2(_MTANDataset):
    """NYUv2 3-task data (semseg 13 classes with ignore -1, depth in metres, normals) of the MTAN family."""

    dataset_name = "nyuv2_mtan"
    default_protocol = "mtan_nyuv2"
    task_preset = "nyuv2_mtan"
    folders = {"semseg": "label", "depth": "depth", "normals": "normal"}
    kinds = {"semseg": "segmentation", "depth": "depth", "normals": "normals"}

    def __init__(self, root: str | os.PathLike, split: str = "train", tasks: Iterable[str | Task] | None = None,
                 transform: Callable[[dict], dict] | None = None) -> None:
        super().__init__(root, split, tasks, transform)


class MTANCityscapes(_MTANDataset):
    """Cityscapes 2-task data (semseg 7 or 19 classes with ignore -1, inverse depth) of the MTAN family."""

    dataset_name = "cityscapes_mtan"
    default_protocol = "mtan_cityscapes"
    task_preset = "cityscapes2"
    inverse_depth = True  # depth/ holds inverse depth: scale augmentation multiplies it (RandomScaleCrop)
    kinds = {"semseg": "segmentation", "depth": "depth"}

    def __init__(self, root: str | os.PathLike, split: str = "train", tasks: Iterable[str | Task] | None = None,
                 transform: Callable[[dict], dict] | None = None, num_classes: int = 7) -> None:
        if num_classes not in (7, 19):
            raise ValueError(f"cityscapes num_classes must be 7 or 19, got {num_classes!r}")
        self.folders = {"semseg": f"label_{num_classes}", "depth": "depth"}
        super().__init__(root, split, tasks, transform)
