"""folder: data sets refuse what would train on garbage: class ids out of range, decompression bombs; grey .npy
images and int8 label maps holding -1 are read as documented."""

import json
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from mtlzoo.data import create_dataset
from mtlzoo.data._io import ImageTooLargeError
from mtlzoo.data.folder import FolderDataset


def png_header_only(width: int, height: int) -> bytes:
    """A PNG file of a few dozen bytes that declares a ``width`` x ``height`` grey image and holds no pixel."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _tasks(root, **tasks):
    (root / "tasks.json").write_text(json.dumps({"tasks": tasks}))


def _lines(info: pytest.ExceptionInfo) -> list[str]:
    return str(info.value).splitlines()


def test_class_ids_out_of_range_are_listed_when_the_folder_is_built(scene_folder):
    root, written = scene_folder  # semseg: 8 classes, ignore index 255
    bad = written["s1"]["semseg"].copy()
    bad[0, :3] = [9, 12, 9]
    Image.fromarray(bad).save(root / "semseg" / "s1.png")
    (root / "semseg" / "s2.png").unlink()
    np.save(root / "semseg" / "s2.npy", np.full((32, 32), -3, np.int16))
    with pytest.raises(ValueError) as info:
        FolderDataset(root, split="train")
    lines = _lines(info)
    assert "2 problem(s) found" in lines[0]
    assert ("  - task 'semseg': semseg/s1.png: label value(s) 9, 12 lie outside [0, 7] and are not the ignore index "
            "255 or -1 (read as the ignore index)") in lines
    assert "  - task 'semseg': semseg/s2.npy: label value(s) -3 lie outside [0, 7]" in "\n".join(lines)
    lazy = FolderDataset(root, split="train", check_labels=False)  # no scan: the same check as each sample loads
    assert lazy[0]["semseg"].max() <= 255
    with pytest.raises(ValueError, match=r"task 'semseg': semseg/s1.png: label value\(s\) 9, 12 lie outside \[0, 7\]"):
        lazy[1]
    _tasks(root, semseg={"kind": "segmentation", "classes": 8, "ignore_index": 9}, depth={"kind": "depth"})
    (root / "semseg" / "s2.npy").unlink()
    Image.fromarray(written["s2"]["semseg"]).save(root / "semseg" / "s2.png")
    with pytest.raises(ValueError) as info:  # 9 is now the ignore index, 255 a class id out of range
        FolderDataset(root, split="train")
    text = str(info.value)
    assert "semseg/s1.png: label value(s) 12 lie outside [0, 7] and are not the ignore index 9" in text
    assert "semseg/s0.png: label value(s) 255 lie outside [0, 7]" in text


def test_an_image_level_class_id_of_minus_one_is_unlabelled(scene_folder):
    root, _ = scene_folder
    (root / "scene.json").write_text(json.dumps({"s0": -1, "s1": 0, "s2": "people", "s3": None}))
    data = create_dataset(f"folder:{root}", tasks=["scene"])
    assert [int(data[i]["scene"]) for i in range(4)] == [255, 0, 1, 255]


def test_int8_label_maps_read_minus_one_as_the_ignore_index(tmp_path):
    root = tmp_path / "int8"
    (root / "images").mkdir(parents=True)
    (root / "semseg").mkdir()
    labels = np.tile(np.arange(4, dtype=np.int8), (4, 1))
    labels[0, 0] = -1
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "images" / "a.png")
    np.save(root / "semseg" / "a.npy", labels)
    _tasks(root, semseg={"kind": "segmentation", "classes": 4})
    target = create_dataset(f"folder:{root}")[0]["semseg"]
    assert target.dtype == torch.int64 and target[0, 0] == 255 and target[1].tolist() == [0, 1, 2, 3]
    _tasks(root, semseg={"kind": "segmentation", "classes": 4, "ignore_index": -1})
    assert create_dataset(f"folder:{root}")[0]["semseg"][0, 0] == -1  # already the ignore index: kept
    labels[1, 1] = -2
    np.save(root / "semseg" / "a.npy", labels)
    with pytest.raises(ValueError, match=r"semseg/a.npy: label value\(s\) -2 lie outside \[0, 3\] and are not the "
                                         r"ignore index -1$"):
        create_dataset(f"folder:{root}")
    np.save(root / "semseg" / "a.npy", np.full((4, 4), 1.5, np.float32))
    with pytest.raises(ValueError, match=r"semseg/a.npy: label value\(s\) 1.5 are not class ids \(whole numbers\)"):
        create_dataset(f"folder:{root}")


def test_a_decompression_bomb_is_refused_before_decoding(scene_folder):
    root, _ = scene_folder
    limit = Image.MAX_IMAGE_PIXELS
    (root / "images" / "s1.png").write_bytes(png_header_only(100_000, 100_000))  # 10^10 pixels in 57 bytes
    (root / "depth" / "s2.png").write_bytes(png_header_only(60_000, 60_000))
    with pytest.raises(ValueError) as info:
        FolderDataset(root, split="train")
    lines = _lines(info)
    assert "2 problem(s) found" in lines[0]
    assert lines[1] == (f"  - images/s1.png: the image declares 10000000000 pixels, more than the limit of {limit} "
                        "pixels (PIL.Image.MAX_IMAGE_PIXELS, a guard against decompression bombs); it is refused "
                        "before decoding: resize it, or raise that limit if the file is trusted")
    assert lines[2].startswith(f"  - task 'depth': depth/s2.png: the image declares 3600000000 pixels, more than the "
                               f"limit of {limit} pixels")


def test_the_pixel_limit_is_pils_and_holds_when_samples_load(scene_folder, monkeypatch):
    root, _ = scene_folder
    data = FolderDataset(root, split="val")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 32 x 32 = 1024: above it, below PIL's 2x hard stop
    with pytest.raises(ImageTooLargeError, match=rf"^{root}/semseg/s4.png: the image declares 1024 pixels, more "
                                                 r"than the limit of 1000 pixels"):
        data[0]
    with pytest.raises(ValueError, match=r"images/s0.png: the image declares 1024 pixels"):
        FolderDataset(root, split="train")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # PIL's way of turning the check off
    assert FolderDataset(root, split="val")[0]["image"].shape == (3, 32, 32)


def test_grey_npy_images_are_repeated_on_three_channels(tmp_path):
    root = tmp_path / "grey"
    (root / "images").mkdir(parents=True)
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    np.save(root / "images" / "a.npy", grey)
    np.save(root / "images" / "b.npy", grey[..., None].astype(np.float32) / 255)
    (root / "depth").mkdir()
    for stem in "ab":
        np.save(root / "depth" / f"{stem}.npy", np.ones((4, 4), np.float32))
    _tasks(root, depth={"kind": "depth"})
    data = create_dataset(f"folder:{root}")
    for i in range(2):
        image = data[i]["image"]
        assert image.shape == (3, 4, 4)
        rgb = image * torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1) + torch.tensor([0.485, 0.456, 0.406]).view(
            3, 1, 1)
        assert torch.allclose(rgb, torch.from_numpy(grey / 255.0).float().expand(3, 4, 4), atol=1e-5)
    np.save(root / "images" / "a.npy", np.zeros((4, 4, 4), np.uint8))
    np.save(root / "images" / "b.npy", np.zeros((4, 4, 3), np.int64))
    with pytest.raises(ValueError) as info:
        create_dataset(f"folder:{root}")
    text = str(info.value)
    assert ("images/a.npy: an image array of shape (4, 4, 4); expected (H, W, 3) RGB, or (H, W) or (H, W, 1) grey"
            in text)
    assert "images/b.npy: an image array of dtype int64; expected uint8 (0-255) or float (0-1)" in text


def test_unreadable_images_and_maps_are_listed_problems(scene_folder):
    root, _ = scene_folder
    (root / "images" / "s3.png").write_bytes(b"not a png")
    cut = (root / "semseg" / "s1.png").read_bytes()
    (root / "semseg" / "s1.png").write_bytes(cut[:len(cut) // 2])  # the header reads, the pixels do not
    with pytest.raises(ValueError) as info:
        FolderDataset(root, split="train")
    text = str(info.value)
    assert "  - images/s3.png is not a readable image (UnidentifiedImageError: " in text
    assert "  - task 'semseg': semseg/s1.png: cannot be decoded (OSError: image file is truncated" in text
