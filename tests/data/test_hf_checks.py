"""hf: data sets refuse class ids out of range and decompression bombs; grey array images and int8 label maps
holding -1 are read as documented."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from mtlzoo.data import create_dataset
from mtlzoo.data._io import ImageTooLargeError

datasets = pytest.importorskip("datasets")  # the `datasets` extra; part of the dev install
SEMSEG = {"tasks": {"semseg": {"kind": "segmentation", "classes": 5}}}


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No network, and the datasets cache inside the test's folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG file of a few dozen bytes that declares a ``width`` x ``height`` grey image and holds no pixel."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(
        b"IEND", b"")


def _png(array: np.ndarray) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def _save(tmp_path, rows: dict, features: dict) -> str:
    path = tmp_path / "saved"
    datasets.Dataset.from_dict(rows, features=datasets.Features(features)).save_to_disk(str(path))
    return str(path)


RGB = np.zeros((4, 4, 3), np.uint8)
SEG = np.tile(np.arange(4, dtype=np.uint8), (4, 1))
IMAGES = {"image": datasets.Image(), "semseg": datasets.Image()}


def test_class_ids_out_of_range_in_a_label_map_name_the_row_and_value(tmp_path):
    bad = SEG.copy()
    bad[0, 0] = 9
    path = _save(tmp_path, {"image": [_png(RGB)] * 3, "semseg": [_png(SEG), _png(SEG), _png(bad)]}, IMAGES)
    data = create_dataset(f"hf:{path}", schema=SEMSEG)  # maps are decoded lazily: row 0 is checked up front
    assert data[1]["semseg"].tolist() == SEG.tolist()
    with pytest.raises(ValueError, match=rf"^hf data set '{path}': row 2, task 'semseg' \(column 'semseg'\): label "
                                         r"value\(s\) 9 lie outside \[0, 4\] and are not the ignore index 255"):
        data[2]
    first = _save(tmp_path / "first", {"image": [_png(RGB)], "semseg": [_png(bad)]}, IMAGES)
    with pytest.raises(ValueError, match=r"row 0, task 'semseg' \(column 'semseg'\): label value\(s\) 9 lie outside"):
        create_dataset(f"hf:{first}", schema=SEMSEG)


def test_an_integer_label_column_is_scanned_when_the_data_set_is_built(tmp_path):
    rows = {"image": [_png(RGB)] * 5, "scene": [0, 9, None, -1, 7]}
    path = _save(tmp_path, rows, {"image": datasets.Image(), "scene": datasets.Value("int64")})
    schema = {"tasks": {"scene": {"kind": "classification", "classes": 5}}}
    with pytest.raises(ValueError) as info:
        create_dataset(f"hf:{path}", schema=schema)
    assert str(info.value).splitlines()[1] == (
        "  - task 'scene' (column 'scene'): row(s) 1, 4: label value(s) 7, 9 lie outside [0, 4] and are not the "
        "ignore index 255 or -1 (read as the ignore index)")
    schema["tasks"]["scene"]["classes"] = 10
    data = create_dataset(f"hf:{path}", schema=schema)
    assert [int(data[i]["scene"]) for i in range(5)] == [0, 9, 255, 255, 7]  # None and -1: unlabelled


def test_int8_label_maps_and_class_label_columns_read_minus_one_as_the_ignore_index(tmp_path):
    labels = SEG.astype(np.int8)
    labels[0, 0] = -1
    rows = {"image": [_png(RGB)], "semseg": [labels.tolist()], "scene": [-1]}
    features = {"image": datasets.Image(), "semseg": datasets.Array2D((4, 4), "int8"),
                "scene": datasets.ClassLabel(names=["a", "b"])}
    path = _save(tmp_path, rows, features)
    schema = {"tasks": {**SEMSEG["tasks"], "scene": {"kind": "classification", "classes": 2}}}
    sample = create_dataset(f"hf:{path}", schema=schema)[0]
    assert sample["semseg"][0, 0] == 255 and sample["semseg"][1].tolist() == [0, 1, 2, 3]
    assert int(sample["scene"]) == 255


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    limit = Image.MAX_IMAGE_PIXELS
    bomb = {"bytes": png_header_only(100_000, 100_000), "path": None}  # 10^10 pixels in 57 bytes
    path = _save(tmp_path, {"image": [bomb], "semseg": [_png(SEG)]}, IMAGES)
    with pytest.raises(ValueError) as info:
        create_dataset(f"hf:{path}", schema=SEMSEG)
    assert str(info.value).splitlines()[1] == (
        f"  - hf data set '{path}': row 0, column 'image': the image declares 10000000000 pixels, more than the limit "
        f"of {limit} pixels (PIL.Image.MAX_IMAGE_PIXELS, a guard against decompression bombs); it is refused before "
        "decoding: resize it, or raise that limit if the file is trusted")
    later = _save(tmp_path / "later", {"image": [_png(RGB)] * 2, "semseg": [_png(SEG), bomb]}, IMAGES)
    data = create_dataset(f"hf:{later}", schema=SEMSEG)
    with pytest.raises(ImageTooLargeError, match=rf"^hf data set '{later}': row 1, column 'semseg': the image declares "
                                                 rf"10000000000 pixels, more than the limit of {limit} pixels"):
        data[1]


def test_the_pixel_limit_is_pils(tmp_path, monkeypatch):
    path = _save(tmp_path, {"image": [_png(RGB)], "semseg": [_png(SEG)]}, IMAGES)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 16 pixels: above it, below PIL's 2x hard stop
    with pytest.raises(ValueError, match=r"row 0, column 'image': the image declares 16 pixels, more than the limit "
                                         r"of 10 pixels"):
        create_dataset(f"hf:{path}", schema=SEMSEG)


def test_grey_array_images_are_repeated_on_three_channels(tmp_path):
    grey = (np.arange(16, dtype=np.uint8).reshape(4, 4) * 10)
    rows = {"image": [grey.tolist()], "semseg": [SEG.tolist()]}
    path = _save(tmp_path, rows, {"image": datasets.Array2D((4, 4), "uint8"),
                                  "semseg": datasets.Array2D((4, 4), "uint8")})
    image = create_dataset(f"hf:{path}", schema=SEMSEG)[0]["image"]
    rgb = image * torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1) + torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    assert torch.allclose(rgb, torch.from_numpy(grey / 255.0).float().expand(3, 4, 4), atol=1e-5)
    rgba = _save(tmp_path / "rgba", {"image": [np.zeros((4, 4, 4), np.uint8).tolist()], "semseg": [SEG.tolist()]},
                 {"image": datasets.Array3D((4, 4, 4), "uint8"), "semseg": datasets.Array2D((4, 4), "uint8")})
    with pytest.raises(ValueError, match=r"row 0, column 'image': an image array of shape \(4, 4, 4\); expected "
                                         r"\(H, W, 3\) RGB, or \(H, W\) or \(H, W, 1\) grey"):
        create_dataset(f"hf:{rgba}", schema=SEMSEG)
