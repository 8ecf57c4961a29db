"""hf: data sets from Hugging Face ``datasets`` (save_to_disk folders and parquet files, offline)."""

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mtlzoo.data import create_dataset, dataset_protocol, dataset_tasks, render_scene
from mtlzoo.data.hf import HFDataset, require_datasets

datasets = pytest.importorskip("datasets")  # the `datasets` extra; part of the dev install
SCHEMA = {"tasks": {"semseg": {"kind": "segmentation", "classes": 8}, "depth": {"kind": "depth"}}}


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No network, and the datasets cache inside the test's folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read at import: set the imported flags too
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")


def _scenes(start: int, count: int, size=(24, 32)) -> "datasets.Dataset":
    """Rendered scenes: image and semseg as images, depth (metres) as nested lists, scene as a ClassLabel."""
    rows = {"image": [], "semseg": [], "depth": [], "scene": []}
    for i in range(start, start + count):
        scene = render_scene(0, "train", i, size)
        rows["image"].append(Image.fromarray(scene["rgb"]))
        rows["semseg"].append(Image.fromarray(scene["semseg"]))
        rows["depth"].append(scene["depth"].tolist())
        rows["scene"].append(int((scene["semseg"] == 7).any()))
    features = datasets.Features({
        "image": datasets.Image(), "semseg": datasets.Image(),
        "depth": datasets.Array2D(shape=size, dtype="float32"),
        "scene": datasets.ClassLabel(names=["empty", "people"]),
    })
    return datasets.Dataset.from_dict(rows, features=features)


def test_a_save_to_disk_folder_reads_like_the_files(tmp_path):
    path = tmp_path / "saved"
    datasets.DatasetDict({"train": _scenes(0, 3), "validation": _scenes(3, 2)}).save_to_disk(str(path))
    data = create_dataset(f"hf:{path}", split="val", schema=SCHEMA)  # "val" finds "validation"
    assert isinstance(data, HFDataset) and len(data) == 2
    assert data.task_kinds() == {"semseg": "segmentation", "depth": "depth"}
    scene, sample = render_scene(0, "train", 3, (24, 32)), data[0]
    assert np.array_equal(sample["semseg"].numpy(), scene["semseg"]) and sample["semseg"].dtype == torch.int64
    np.testing.assert_array_equal(sample["depth"][0].numpy(), scene["depth"])  # arrays as stored (metres)
    assert sample["image"].shape == (3, 24, 32) and dataset_protocol(f"hf:{path}") == "generic"
    inferred = create_dataset(f"hf:{path}", split="train")  # no schema: the ClassLabel column is a task
    assert inferred.task_kinds() == {"scene": "classification"} and int(inferred[2]["scene"]) == 1
    assert [t.channels for t in dataset_tasks(f"hf:{path}")] == [2]


def test_a_list_of_class_labels_is_a_multilabel_task(tmp_path):
    tags = datasets.Sequence(datasets.ClassLabel(names=["cat", "dog", "bird"]))
    rows = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(np.zeros((4, 4, 3), np.uint8))] * 2, "tags": [[0, 2], []]},
        features=datasets.Features({"image": datasets.Image(), "tags": tags}))
    rows.save_to_disk(str(tmp_path / "tags"))
    data = create_dataset(f"hf:{tmp_path / 'tags'}")
    assert data.task_kinds() == {"tags": "multilabel"}
    assert data[0]["tags"].tolist() == [1.0, 0.0, 1.0] and data[1]["tags"].tolist() == [0.0, 0.0, 0.0]


def test_parquet_files_load_offline_with_a_tasks_json_beside_them(tmp_path):
    folder = tmp_path / "pq"
    (folder / "data").mkdir(parents=True)
    _scenes(0, 3).to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    _scenes(3, 2).to_parquet(str(folder / "data" / "test-00000-of-00001.parquet"))
    (folder / "tasks.json").write_text(json.dumps({"tasks": {**SCHEMA["tasks"], "scene": {
        "kind": "classification", "classes": ["empty", "people"]}}}))
    train = create_dataset(f"hf:{folder}", split="train", tasks=["depth", "scene"])
    assert len(train) == 3 and set(train[0]) == {"image", "depth", "scene"}
    val = create_dataset(f"hf:{folder}", split="val")  # no validation split: "val" falls back to "test"
    assert len(val) == 2 and set(val[1]) == {"image", "semseg", "depth", "scene"}
    one_file = create_dataset(f"hf:{folder / 'data' / 'test-00000-of-00001.parquet'}", schema=SCHEMA, size=[12, 16])
    assert one_file[0]["semseg"].shape == (12, 16) and one_file[0]["depth"].shape == (1, 12, 16)


def test_missing_columns_and_wrong_shapes_are_named(tmp_path):
    path = tmp_path / "saved"
    _scenes(0, 2).save_to_disk(str(path))
    schema = {"tasks": {"normals": {"kind": "normals"}, "scene": {"kind": "depth"}, "label": {"kind": "regression"}}}
    with pytest.raises(ValueError) as info:
        create_dataset(f"hf:{path}", schema=schema, image_column="rgb")
    text = str(info.value)
    assert "4 problem(s)" in text.splitlines()[0]
    assert "no image column 'rgb'" in text and "task 'normals' (normals): no column 'normals'" in text
    assert "task 'scene': column holds one ClassLabel" in text and "task 'label'" in text
    wrong = {"tasks": {"depth": {"kind": "normals"}}}
    with pytest.raises(ValueError, match=r"row 0, task 'depth' \(column 'depth'\): shape \(24, 32\) does not match"):
        create_dataset(f"hf:{path}", schema=wrong)
    unlabelled = tmp_path / "unlabelled"
    datasets.load_from_disk(str(path)).remove_columns(["scene"]).save_to_disk(str(unlabelled))
    with pytest.raises(ValueError, match="no task declared and none inferred from its columns"):
        HFDataset(unlabelled)


def test_unknown_sources_and_a_missing_package_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        create_dataset(f"hf:{tmp_path / 'nowhere' / 'x'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither a save_to_disk folder"):
        create_dataset(f"hf:{tmp_path / 'empty'}")
    with pytest.raises(FileNotFoundError, match="local cache"):
        create_dataset("hf:someone/not-cached-anywhere")
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'mtlzoo\[datasets\]'"):
        require_datasets()
