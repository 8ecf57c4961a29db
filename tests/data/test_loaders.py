"""The real-benchmark loaders against tiny fake trees in exactly the published layouts."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from mtlzoo.data import create_dataset
from mtlzoo.data.transforms import IMAGENET_MEAN, IMAGENET_STD

H, W = 6, 8


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _rgb(value=128):
    return np.full((H, W, 3), value, np.uint8)


@pytest.fixture
def nyud_tree(tmp_path):
    root = tmp_path / "NYUD_MT"
    (root / "gt_sets").mkdir(parents=True)
    (root / "gt_sets" / "train.txt").write_text("0001\n0002\n")
    (root / "gt_sets" / "val.txt").write_text("0003\n")
    for stem in ("0001", "0002", "0003"):
        _png(root / "images" / f"{stem}.png", _rgb())
        seg = np.zeros((H, W), np.uint8)
        seg[0, :3] = [0, 1, 40]
        _png(root / "segmentation" / f"{stem}.png", seg)
        depth = np.full((H, W), 2.5, np.float32)
        depth[1, 1] = 0.0
        (root / "depth").mkdir(exist_ok=True)
        np.save(root / "depth" / f"{stem}.npy", depth)
        edge = np.zeros((H, W), np.uint8)
        edge[2] = 255
        _png(root / "edge" / f"{stem}.png", edge)  # the ATRC / InvPT PNG flavour
        normals = np.zeros((H, W, 3), np.uint8)
        normals[..., 2] = 255
        normals[..., :2] = 128
        normals[0, 0] = 0  # black = invalid
        _png(root / "normals" / f"{stem}.png", normals)
    return tmp_path


def test_nyud_conventions(nyud_tree):
    ds = create_dataset("nyud", root=nyud_tree, split="train")
    assert len(ds) == 2 and len(create_dataset("nyud", root=nyud_tree, split="test")) == 1
    sample = ds[0]
    assert sample["semseg"][0, :3].tolist() == [255, 0, 39] and sample["semseg"].dtype == torch.int64
    assert sample["depth"].shape == (1, H, W) and sample["depth"][0, 1, 1] == 0 and sample["depth"][0, 0, 0] == 2.5
    assert sample["edge"][0, 2].eq(1).all() and sample["edge"][0, 3].eq(0).all()
    assert sample["normals"][:, 0, 0].eq(0).all()
    assert torch.allclose(sample["normals"][:, 3, 3], torch.tensor([0.0, 0.0, 1.0]), atol=0.01)
    mean = (128 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(sample["image"][:, 0, 0], mean, atol=1e-5)
    assert set(create_dataset("nyud", root=nyud_tree, tasks=["depth"])[1]) == {"image", "depth"}
    with pytest.raises(ValueError, match="semseg"):
        create_dataset("nyud", root=nyud_tree, tasks=["segmentation"])


def test_missing_root_says_where_to_get_the_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="NYUD_MT.*gt_sets"):
        create_dataset("nyud", root=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="PASCALContext"):
        create_dataset("pascal_context", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="MTAN"):
        create_dataset("nyuv2_mtan", root=tmp_path)


def _mtan_tree(root, split, label_folder, depth_value, with_normals):
    depth = np.where(np.arange(W) < 1, 0.0, depth_value).reshape(1, W, 1) * np.ones((H, W, 1), np.float32)
    for i in range(2):
        for folder, value in (("image", np.full((H, W, 3), 0.5, np.float32)),
                              (label_folder, np.where(np.arange(W) < 2, -1.0, 3.0) * np.ones((H, W), np.float32)),
                              ("depth", depth)):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
            np.save(root / split / folder / f"{i}.npy", value)
        if with_normals:
            (root / split / "normal").mkdir(exist_ok=True)
            np.save(root / split / "normal" / f"{i}.npy", np.tile(np.float32([0, 0, 1]), (H, W, 1)))


def test_mtan_nyuv2_keeps_ignore_minus_one(tmp_path):
    _mtan_tree(tmp_path, "val", "label", 3.0, True)
    ds = create_dataset("nyuv2_mtan", root=tmp_path, split="test")
    sample = ds[1]
    assert len(ds) == 2 and sample["semseg"].dtype == torch.int64
    assert sample["semseg"][0, :3].tolist() == [-1, -1, 3]
    assert sample["depth"].shape == (1, H, W) and sample["depth"][0, 0, 0] == 0 and sample["depth"][0, 0, 1] == 3
    assert sample["normals"].shape == (3, H, W)


def test_mtan_cityscapes_keeps_inverse_depth(tmp_path):
    _mtan_tree(tmp_path, "train", "label_7", 0.0123, False)
    sample = create_dataset("cityscapes_mtan", root=tmp_path)[0]
    assert set(sample) == {"image", "semseg", "depth"}
    assert sample["depth"][0, 0, 0] == 0 and sample["depth"][0, 0, 1] == pytest.approx(0.0123)
    assert sample["semseg"][0, 0] == -1
    with pytest.raises(FileNotFoundError, match="label_19"):
        create_dataset("cityscapes_mtan", root=tmp_path, num_classes=19)[0]


@pytest.fixture
def pascal_tree(tmp_path):
    root = tmp_path / "PASCALContext"
    (root / "ImageSets" / "Context").mkdir(parents=True)
    ids = ["2008_000001", "2008_000002", "2008_000003"]
    (root / "ImageSets" / "Context" / "val.txt").write_text("\n".join(ids) + "\n")
    (root / "json").mkdir()
    (root / "json" / "nyu_classes.json").write_text(json.dumps({"wall": 1, "floor": 2, "unknown": 0}))
    (root / "json" / "context_classes.json").write_text(json.dumps({"wall": 7, "floor": 9, "sky": 11}))
    context = np.full((H, W), 7, np.uint16)
    context[:, 4:] = 11  # sky: no NYU counterpart, normals masked there
    for k, stem in enumerate(ids):
        _png(root / "JPEGImages" / f"{stem}.jpg", _rgb())
        seg = np.full((H, W), 5, np.uint8)
        seg[0, 0] = 255
        _png(root / "semseg" / ("VOC12" if k == 0 else "pascal-context") / f"{stem}.png", seg)
        sal = np.where(np.arange(W) < 3, 200, 20).astype(np.uint8)[None].repeat(H, 0)
        _png(root / "sal_distill" / f"{stem}.png", sal)
        normals = np.zeros((H, W, 3), np.uint8)
        normals[..., 2] = 255
        normals[..., :2] = 128
        _png(root / "normals_distill" / f"{stem}.png", normals)
        (root / "pascal-context" / "trainval").mkdir(parents=True, exist_ok=True)
        savemat(root / "pascal-context" / "trainval" / f"{stem}.mat", {"LabelMap": context})
    head, hand = np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8)
    head[0, 1], hand[5, 5] = 1, 1
    person = {"class": "person", "class_ind": 15, "mask": head | hand,
              "parts": np.array([{"part_name": "head", "mask": head}, {"part_name": "lhand", "mask": hand}], object)}
    dog = {"class": "dog", "class_ind": 12, "mask": np.ones((H, W), np.uint8), "parts": np.zeros((0,), object)}
    (root / "human_parts").mkdir()
    savemat(root / "human_parts" / f"{ids[0]}.mat", {"anno": {"objects": np.array([dog, person], object)}})
    savemat(root / "human_parts" / f"{ids[2]}.mat", {"anno": {"objects": np.array([dog], object)}})
    return tmp_path


def test_pascal_context_conventions(pascal_tree):
    ds = create_dataset("pascal_context", root=pascal_tree, split="val")
    first, second, third = ds[0], ds[1], ds[2]
    assert first["semseg"][0, 0] == 255 and first["semseg"][1, 1] == 5 and second["semseg"][1, 1] == 5
    assert first["parts"][0, 1] == 1 and first["parts"][5, 5] == 4 and first["parts"][3, 3] == 0
    assert second["parts"].eq(255).all() and third["parts"].eq(255).all()  # no file / no person: ignored
    assert first["saliency"][0, :, :3].eq(1).all() and first["saliency"][0, :, 3:].eq(0).all()
    assert first["normals"][:, :, :4].norm(dim=0).gt(0.99).all() and first["normals"][:, :, 4:].eq(0).all()
    assert first["edge"][0, :, 3].eq(1).all() and first["edge"][0, :, 0].eq(0).all()
