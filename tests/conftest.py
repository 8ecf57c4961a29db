"""Shared by every test folder: one compute thread per xdist worker, and a tiny multi-task data set written to
disk in the ``folder:`` layout."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from mtlzoo.data import render_scene

# Each xdist worker (and every process it starts) computes on one thread: tiny test models gain nothing from
# intra-op threads, and two workers with two OpenMP threads each oversubscribe a 2-core machine, where spinning
# threads slow every small op many times over.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)

SCENE_CLASSES = ["empty", "people"]
FOLDER_TASKS = {"semseg": {"kind": "segmentation", "classes": 8}, "depth": {"kind": "depth"},
                "normals": {"kind": "normals"}, "scene": {"kind": "classification", "classes": SCENE_CLASSES}}


def write_scene_folder(root, count=6, size=(32, 32), tasks=("semseg", "depth", "normals", "scene"), splits=None):
    """Render ``count`` synthscenes images and write them with the chosen tasks: semseg as 8-bit PNG class ids,
    depth as 16-bit PNG millimetres, normals as .npy, scene ("people" when a figure is visible) in scene.json.
    Returns the arrays written, by stem."""
    written = {}
    for folder in ("images", *[t for t in tasks if t != "scene"]):
        (root / folder).mkdir(parents=True, exist_ok=True)
    labels = {}
    for i in range(count):
        # version 1 scenes: these six hold the void (255) and empty-scene cases the folder tests look for
        stem, scene = f"s{i}", render_scene(0, "train", i, size, version=1)
        Image.fromarray(scene["rgb"]).save(root / "images" / f"{stem}.png")
        millimetres = np.round(scene["depth"] * 1000).astype(np.uint16)
        if "semseg" in tasks:
            Image.fromarray(scene["semseg"]).save(root / "semseg" / f"{stem}.png")
        if "depth" in tasks:
            Image.fromarray(millimetres).save(root / "depth" / f"{stem}.png")
        if "normals" in tasks:
            np.save(root / "normals" / f"{stem}.npy", scene["normals"])
        labels[stem] = SCENE_CLASSES[int((scene["semseg"] == 7).any())]
        written[stem] = {"rgb": scene["rgb"], "semseg": scene["semseg"], "depth_mm": millimetres,
                         "normals": scene["normals"], "scene": labels[stem]}
    if "scene" in tasks:
        (root / "scene.json").write_text(json.dumps(labels))
    (root / "tasks.json").write_text(json.dumps({"tasks": {t: FOLDER_TASKS[t] for t in tasks}}))
    if splits:
        (root / "splits").mkdir()
        for split, stems in splits.items():
            (root / "splits" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    return written


@pytest.fixture
def folder_writer():
    """:func:`write_scene_folder`, for tests that write folders of their own (conftest modules of several test
    folders share the name ``conftest``, so tests cannot import it)."""
    return write_scene_folder


@pytest.fixture
def scene_folder(tmp_path):
    """A 6-image folder data set (semseg, depth, normals, scene) split 4 train / 2 val, and what was written."""
    root = tmp_path / "scenes"
    written = write_scene_folder(root, splits={"train": ["s0", "s1", "s2", "s3"], "val": ["s4", "s5"]})
    return root, written
