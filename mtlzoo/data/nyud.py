"""NYUD-v2 (40 classes, 480x640) in the layout the MTI-Net / ATRC / InvPT family distributes.

Expected tree (``root`` may be the folder itself or its parent)::

    NYUD_MT/ (MTI-Net) or NYUDv2/ (ATRC, InvPT)
      gt_sets/train.txt, gt_sets/val.txt     image ids, one per line (795 / 654; "val" is the test split)
      images/<id>.jpg | .png                 RGB
      segmentation/<id>.png                  0 = void, 1..40 = classes
      depth/<id>.npy                         metres, 0 = invalid
      normals/<id>.npy | .png                unit vectors (npy) or 8-bit RGB mapped by 2 v / 255 - 1 (png)
      edge/<id>.npy | .png                   {0, 1} (npy) or {0, 255} (png)

Conventions applied: semseg void 0 -> 255 and classes shifted by -1 to 0..39; depth kept in metres with
0 = invalid; PNG normals whose RGB is (0, 0, 0) are invalid (zero vector); edges as {0, 1}.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import numpy as np

from mtlzoo.data._io import ListedDataset, find_file, pick_tasks, read_image, read_png, read_split, resolve_root
from mtlzoo.registry import unknown_name_error
from mtlzoo.tasks import Task

KINDS = {"semseg": "segmentation", "depth": "depth", "normals": "normals", "edge": "edge"}
SPLITS = {"train": "train", "val": "val", "test": "val"}
HOW_TO_GET = (
    "NYUD-v2 for multi-task learning is distributed by the MTI-Net / ATRC authors (NYUD_MT.tgz from the ETH "
    "data server, or the ATRC / InvPT NYUDv2 archive); unpack it so that <root>/NYUD_MT (or NYUDv2) holds "
    "gt_sets/{train,val}.txt, images/, segmentation/, depth/, normals/ and edge/. See mtlzoo.data.nyud."
)
_FOLDERS = {"semseg": ("segmentation", (".png",)), "depth": ("depth", (".npy",)),
            "normals": ("normals", (".npy", ".png")), "edge": ("edge", (".npy", ".png"))}


def nyud_semseg(raw: np.ndarray) -> np.ndarray:
    """Raw NYUD labels (0 void, 1..40) to mtlzoo's: void 255, classes 0..39."""
    raw = raw.astype(np.int64)
    return np.where(raw == 0, 255, raw - 1).astype(np.uint8)


def png_normals(rgb: np.ndarray) -> np.ndarray:
    """8-bit normals to unit vectors by 2 v / 255 - 1 (re-normalised); black pixels become the zero vector."""
    n = 2.0 * rgb[..., :3].astype(np.float32) / 255.0 - 1.0
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    invalid = (rgb[..., :3] == 0).all(axis=-1, keepdims=True)
    return np.where(invalid | (norm == 0), 0.0, n / np.maximum(norm, 1e-12)).astype(np.float32)


class NYUD(ListedDataset):
    """NYUD-v2 multi-task data (semseg, depth, normals, edge) at its stored resolution."""

    dataset_name = "nyud"
    default_protocol = "mtinet_nyud"
    task_preset = "nyud"

    def __init__(self, root: str | os.PathLike, split: str = "train", tasks: Iterable[str | Task] | None = None,
                 transform: Callable[[dict], dict] | None = None) -> None:
        if split not in SPLITS:
            raise unknown_name_error("nyud split", split, list(SPLITS))
        self.root = resolve_root(root, ("NYUD_MT", "NYUDv2"), "gt_sets", HOW_TO_GET)
        split_file = self.root / "gt_sets" / f"{SPLITS[split]}.txt"
        if not split_file.is_file():
            raise FileNotFoundError(f"missing split list {split_file}.\n{HOW_TO_GET}")
        super().__init__(read_split(split_file), pick_tasks(tasks, KINDS, "nyud"), transform)

    def load_image(self, index: int) -> np.ndarray:
        return read_image(find_file(self.root / "images", self.ids[index], (".jpg", ".png")))

    def load(self, index: int, task: str) -> np.ndarray:
        folder, suffixes = _FOLDERS[task]
        path = find_file(self.root / folder, self.ids[index], suffixes)
        if task == "semseg":
            return nyud_semseg(read_png(path))
        if path.suffix == ".npy":
            value = np.load(path).astype(np.float32)
        elif task == "normals":
            return png_normals(read_png(path))
        else:
            value = read_png(path).astype(np.float32) / 255.0
        if task in ("depth", "edge"):
            value = value.reshape(value.shape[:2])
        return (value > 0.5).astype(np.float32) if task == "edge" else value
