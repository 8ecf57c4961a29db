"""PASCAL-Context multi-task data (the ASTMT / MTI-Net / ATRC release): semseg, parts, saliency, normals, edge.

Expected tree (``root`` may be the folder itself or its parent)::

    PASCALContext/ (ATRC, InvPT) or PASCAL_MT/ (MTI-Net)
      ImageSets/Context/train.txt, val.txt   image ids (4998 / 5105; "val" is the test split)
      JPEGImages/<id>.jpg
      semseg/VOC12/<id>.png or semseg/pascal-context/<id>.png   21 classes (0 background), 255 void
      human_parts/<id>.mat                   PASCAL-Part annotation struct ``anno.objects(k).{class_ind, parts}``
      normals_distill/<id>.png               distilled normals, 2 v / 255 - 1
      sal_distill/<id>.png                   distilled saliency, binarised at 0.5
      pascal-context/trainval/<id>.mat       ``LabelMap`` of the 459 Context classes (edges, normals mask)
      json/nyu_classes.json, json/context_classes.json   class name -> id tables (normals mask)

Conventions: parts are 7 classes (background, head, torso, upper arms, lower arms, upper legs, lower
legs; hands and feet join the lower limbs) and an image without an annotated person is all 255; normals
are kept only on pixels whose Context class also exists in NYU (when the json tables are present; the
reference adds a few hand-made matches that are not reproduced here); edges are the 1-pixel boundaries of
the Context label map (the reference thins a Laplacian, so a few pixels may differ).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from mtlzoo.data._io import (
    ListedDataset,
    find_file,
    image_size,
    pick_tasks,
    read_image,
    read_png,
    read_split,
    resolve_root,
)
from mtlzoo.data.nyud import png_normals
from mtlzoo.registry import unknown_name_error
from mtlzoo.tasks import Task

KINDS = {"semseg": "segmentation", "parts": "parts", "saliency": "saliency", "normals": "normals", "edge": "edge"}
SPLITS = {"train": "train", "val": "val", "test": "val"}
PERSON_CLASS = 15
PART_IDS = {
    **dict.fromkeys(("head", "leye", "reye", "lear", "rear", "lebrow", "rebrow", "nose", "mouth", "hair"), 1),
    **dict.fromkeys(("torso", "neck"), 2),
    **dict.fromkeys(("luarm", "ruarm"), 3),
    **dict.fromkeys(("llarm", "rlarm", "lhand", "rhand"), 4),
    **dict.fromkeys(("luleg", "ruleg"), 5),
    **dict.fromkeys(("llleg", "rlleg", "lfoot", "rfoot"), 6),
}
HOW_TO_GET = (
    "PASCAL-Context for multi-task learning is distributed by the ATRC authors (PASCALContext.tar.gz from the "
    "ETH data server, also used by InvPT) or as PASCAL_MT by ASTMT / MTI-Net; unpack it so that "
    "<root>/PASCALContext (or PASCAL_MT) holds ImageSets/Context/{train,val}.txt, JPEGImages/, semseg/, "
    "human_parts/, normals_distill/, sal_distill/ and pascal-context/. See mtlzoo.data.pascal_context."
)


def _items(value: object) -> list:
    """A MATLAB struct array loaded with squeeze_me as a Python list (scalars and empties included)."""
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def parts_from_mat(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """7-class human parts from a PASCAL-Part annotation; all 255 when no person part is annotated."""
    from scipy.io import loadmat

    labels = np.zeros(shape, np.uint8)
    found = False
    anno = loadmat(path, squeeze_me=True, struct_as_record=False)["anno"]
    for obj in _items(anno.objects):
        if int(obj.class_ind) != PERSON_CLASS:
            continue
        for part in _items(getattr(obj, "parts", [])):
            part_id = PART_IDS.get(str(part.part_name))
            if part_id is not None:
                labels[np.asarray(part.mask, bool)] = part_id
                found = True
    return labels if found else np.full(shape, 255, np.uint8)


def label_edges(labels: np.ndarray) -> np.ndarray:
    """1-pixel boundaries of a label map: pixels whose label differs from the right or lower neighbour."""
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1] |= labels[:-1] != labels[1:]
    return edge.astype(np.float32)


class PascalContext(ListedDataset):
    """PASCAL-Context multi-task data at its stored resolution (resize with the joint transforms)."""

    dataset_name = "pascal_context"
    default_protocol = "mtinet_pascal"
    task_preset = "pascal_context"

    def __init__(self, root: str | os.PathLike, split: str = "train", tasks: Iterable[str | Task] | None = None,
                 transform: Callable[[dict], dict] | None = None) -> None:
        if split not in SPLITS:
            raise unknown_name_error("pascal_context split", split, list(SPLITS))
        self.root = resolve_root(root, ("PASCALContext", "PASCAL_MT"), "ImageSets/Context", HOW_TO_GET)
        split_file = self.root / "ImageSets" / "Context" / f"{SPLITS[split]}.txt"
        if not split_file.is_file():
            raise FileNotFoundError(f"missing split list {split_file}.\n{HOW_TO_GET}")
        super().__init__(read_split(split_file), pick_tasks(tasks, KINDS, "pascal_context"), transform)
        self._normals_classes = self._nyu_context_classes()

    def _nyu_context_classes(self) -> np.ndarray | None:
        folder = self.root / "json"
        if not (folder / "nyu_classes.json").is_file() or not (folder / "context_classes.json").is_file():
            return None
        nyu = json.loads((folder / "nyu_classes.json").read_text())
        context = json.loads((folder / "context_classes.json").read_text())
        return np.array(sorted(int(context[name]) for name in nyu if name in context and name != "unknown"))

    def _context_labels(self, index: int) -> np.ndarray:
        from scipy.io import loadmat

        path = self.root / "pascal-context" / "trainval" / f"{self.ids[index]}.mat"
        return np.asarray(loadmat(path)["LabelMap"])

    def load_image(self, index: int) -> np.ndarray:
        return read_image(self.root / "JPEGImages" / f"{self.ids[index]}.jpg")

    def load(self, index: int, task: str) -> np.ndarray:
        stem = self.ids[index]
        if task == "semseg":
            voc = self.root / "semseg" / "VOC12" / f"{stem}.png"
            return read_png(voc if voc.is_file() else self.root / "semseg" / "pascal-context" / f"{stem}.png")
        if task == "saliency":
            return (read_png(find_file(self.root / "sal_distill", stem, (".png",))) / 255.0 > 0.5).astype(np.float32)
        if task == "edge":
            return label_edges(self._context_labels(index))
        if task == "parts":
            shape = image_size(self.root / "JPEGImages" / f"{stem}.jpg")
            path = self.root / "human_parts" / f"{stem}.mat"
            return parts_from_mat(path, shape) if path.is_file() else np.full(shape, 255, np.uint8)
        normals = png_normals(read_png(self.root / "normals_distill" / f"{stem}.png"))
        if self._normals_classes is not None:
            keep = np.isin(self._context_labels(index), self._normals_classes)
            normals = np.where(keep[..., None], normals, 0.0).astype(np.float32)
        return normals
