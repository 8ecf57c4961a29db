"""folder: data sets (tasks.json + files) read back exactly as written, and every problem of a bad folder named."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mtlzoo.data import create_dataset, dataset_protocol, dataset_tasks
from mtlzoo.data.folder import FolderDataset
from mtlzoo.data.partial import WithUnlabelled, unlabelled_target
from mtlzoo.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from mtlzoo.tasks import TASK_KINDS, Task


def test_targets_follow_the_documented_conventions(scene_folder):
    root, written = scene_folder
    data = create_dataset(f"folder:{root}", split="val")
    assert isinstance(data, FolderDataset) and len(data) == 2 and data.ids == ["s4", "s5"]
    assert data.task_kinds() == {"semseg": "segmentation", "depth": "depth", "normals": "normals",
                                 "scene": "classification"}
    sample, stored = data[0], written["s4"]
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = torch.from_numpy(stored["rgb"]).permute(2, 0, 1).float() / 255
    assert torch.allclose(sample["image"], (rgb - mean) / std, atol=1e-6)
    assert sample["semseg"].dtype == torch.int64 and np.array_equal(sample["semseg"].numpy(), stored["semseg"])
    assert 255 in sample["semseg"]  # void survives
    assert sample["depth"].shape == (1, 32, 32)
    np.testing.assert_allclose(sample["depth"][0].numpy(), stored["depth_mm"] / 1000.0, rtol=1e-6)  # mm -> m
    assert (sample["depth"][0][stored["depth_mm"] == 0] == 0).all()
    np.testing.assert_array_equal(sample["normals"].permute(1, 2, 0).numpy(), stored["normals"])
    assert sample["scene"].dtype == torch.int64 and int(sample["scene"]) == ["empty", "people"].index(stored["scene"])
    assert data.name == "folder:scenes" and dataset_protocol(f"folder:{root}") == "generic"
    assert [t.to_dict() for t in dataset_tasks(f"folder:{root}")] == [
        Task("semseg", "segmentation", 8).to_dict(), Task("depth", "depth").to_dict(),
        Task("normals", "normals").to_dict(), Task("scene", "classification", 2).to_dict()]


def test_task_subsets_splits_and_csv_labels(scene_folder):
    root, written = scene_folder
    (root / "scene.json").unlink()
    rows = "".join(f"{stem}.png,{value['scene']}\n" for stem, value in written.items())
    (root / "scene.csv").write_text("image,scene\n" + rows)
    data = create_dataset("folder", root=root, split="train", tasks=["scene"])
    assert len(data) == 4 and set(data[2]) == {"image", "scene"}
    assert int(data[2]["scene"]) == 1 and int(data[0]["scene"]) == 0  # s2 shows a figure, s0 does not
    with pytest.raises(ValueError, match="Did you mean: semseg"):
        create_dataset("folder", root=root, tasks=["semsegg"])
    with pytest.raises(FileNotFoundError, match=r"splits/test.txt .*\['train', 'val'\]"):
        create_dataset(f"folder:{root}", split="test")
    with pytest.raises(ValueError, match="already names its root"):
        create_dataset(f"folder:{root}", root="elsewhere")
    with pytest.raises(ValueError, match=r"'folder' needs its location: folder:PATH \(or the option root=PATH\)"):
        create_dataset("folder")
    with pytest.raises(ValueError, match="'folder:' names no location"):
        create_dataset("folder:")
    with pytest.raises(ValueError, match=r"size must be two positive integers \[H, W\], got \[32\]"):
        create_dataset(f"folder:{root}", size=[32])
    (root / "splits" / "train.txt").write_text("s0\ns9\nx1\n")
    with pytest.raises(ValueError, match=r"splits/train.txt names 2 image\(s\) not in images/: s9, x1"):
        create_dataset(f"folder:{root}")
    (root / "splits" / "train.txt").write_text("\n")
    with pytest.raises(ValueError, match="splits/train.txt lists no image"):
        create_dataset(f"folder:{root}")


def test_image_level_vectors_from_json_csv_and_npy(tmp_path):
    root = tmp_path / "vectors"
    (root / "images").mkdir(parents=True)
    for stem in ("a", "b"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / f"{stem}.jpg")
    (root / "tags.json").write_text(json.dumps({"a": ["cat", "dog"], "b": []}))
    (root / "size.csv").write_text("a,1.5,2\nb,3,4\n")
    (root / "pose").mkdir()
    np.save(root / "pose" / "a.npy", np.array([1.0, 2.0, 3.0]))
    np.save(root / "pose" / "b.npy", np.array([4.0, 5.0, 6.0]))
    (root / "tasks.json").write_text(json.dumps({"tasks": [
        {"name": "tags", "kind": "multilabel", "classes": ["cat", "dog", "bird"]},
        {"name": "size", "kind": "regression", "channels": 2},
        {"name": "pose", "kind": "regression", "channels": 3}]}))
    sample = create_dataset(f"folder:{root}")[0]
    assert sample["tags"].tolist() == [1.0, 1.0, 0.0] and sample["size"].tolist() == [1.5, 2.0]
    assert sample["pose"].tolist() == [1.0, 2.0, 3.0]
    (root / "pose" / "b.npy").unlink()
    (root / "size.csv").write_text("image,size\nA.PNG,1;2\nb,3,4,5\n")
    with pytest.raises(ValueError) as info:
        create_dataset(f"folder:{root}")
    assert "3 problem(s)" in str(info.value).splitlines()[0]
    assert "task 'pose': no .npy file in pose/ for 1 image(s): b" in str(info.value)
    assert "size.csv has no label for 1 image(s): a" in str(info.value)  # "A.PNG" is image A, not a
    assert "image 'b': label [3, 4, 5] has 3 value(s); expected 2 (channels)" in str(info.value)


def test_a_malformed_folder_lists_every_problem_in_one_error(scene_folder):
    root, _ = scene_folder
    (root / "depth" / "s1.png").unlink()
    (root / "depth" / "s3.png").unlink()
    Image.fromarray(np.zeros((16, 32), np.uint8)).save(root / "semseg" / "s2.png")
    np.save(root / "normals" / "s0.npy", np.zeros((32, 32), np.float32))
    (root / "scene.json").write_text(json.dumps({"s0": "empty", "s1": "cat", "s2": 5}))
    with pytest.raises(ValueError) as info:
        FolderDataset(root, split="train")
    lines = str(info.value).splitlines()
    assert "scenes (split 'train'): 6 problem(s) found" in lines[0]
    text = "\n".join(lines[1:])
    assert "task 'depth': no .png/.npy file in depth/ for 2 image(s): s1, s3" in text
    assert "task 'semseg': semseg/s2.png: shape (16, 32) does not match the image (32, 32)" in text
    assert "task 'normals': normals/s0.npy: shape (32, 32) does not match the image (32, 32); expected (32, 32, 3)" \
        in text
    assert "scene.json has no label for 1 image(s): s3" in text
    assert "image 's1': class 'cat' is not one of ['empty', 'people']" in text
    assert "image 's2': label 5 lies outside [0, 1]" in text


def test_images_of_different_sizes_need_a_size(tmp_path):
    root = tmp_path / "mixed"
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    for stem, (h, w) in {"a": (8, 8), "b": (12, 10)}.items():
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(root / "images" / f"{stem}.png")
        np.save(root / "depth" / f"{stem}.npy", np.full((h, w), 2.0, np.float32))
    (root / "tasks.json").write_text(json.dumps({"tasks": {"depth": {"kind": "depth"}}}))
    with pytest.raises(ValueError, match=r"images differ in size \(a.png 8x8, b.png 12x10\); pass size="):
        create_dataset(f"folder:{root}")
    data = create_dataset(f"folder:{root}", size=[6, 4])
    assert data[1]["image"].shape == (3, 6, 4) and data[1]["depth"].shape == (1, 6, 4)
    assert data[1]["depth"].eq(2.0).all()


@pytest.mark.parametrize(("declaration", "fragments"), [
    ({"tasks": {"seg": {"kind": "segmentaton", "classes": 3}}}, ["task 'seg'", "'segmentaton'", "'segmentation'"]),
    ({"tasks": {"seg": {"classes": 3}}}, ["task 'seg'", "'kind' is missing"]),
    ({"tasks": {"seg": {"kind": "segmentation", "classes": 0}}}, ["task 'seg'", "'classes' must be"]),
    ({"tasks": {"seg": {"kind": "segmentation", "classes": 3, "colour": 1}}}, ["unknown key(s) ['colour']"]),
    ({"tasks": {"seg": {"kind": "segmentation"}}}, ["task 'seg'", "needs channels="]),
    ({"tasks": {"a": {"kind": "depht"}, "b": {"kind": "normal"}}, "extra": 1},
     ["3 problem(s)", "task 'a'", "task 'b'", "top-level key 'extra'"]),
    ({"name": "x"}, ["expects a mapping with a 'tasks' entry"]),
])
def test_tasks_json_problems_name_the_task_and_key(tmp_path, declaration, fragments):
    (tmp_path / "images").mkdir()
    (tmp_path / "tasks.json").write_text(json.dumps(declaration))
    with pytest.raises(ValueError) as info:
        FolderDataset(tmp_path)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_pieces_are_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FolderDataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="has no tasks.json"):
        FolderDataset(tmp_path)
    (tmp_path / "tasks.json").write_text('{"tasks": {"d": {"kind": "depth"}')
    with pytest.raises(ValueError, match="malformed JSON at line 1"):
        FolderDataset(tmp_path)
    (tmp_path / "tasks.json").write_text('{"tasks": {"d": {"kind": "depth"}}}')
    with pytest.raises(FileNotFoundError, match="no images/ folder"):
        FolderDataset(tmp_path)


@pytest.mark.parametrize("kind", TASK_KINDS.names())
def test_unlabelled_targets_give_no_loss_and_no_gradient(kind):
    spec = TASK_KINDS.get(kind)
    task = Task("t", kind, None if spec.default_channels else 4)
    target = torch.stack([unlabelled_target(task, (6, 8))] * 2)
    example = spec.example_target(task, 2, (6, 8), torch.Generator().manual_seed(0))
    assert target.shape == example.shape
    output = torch.randn((2, task.channels, 6, 8) if spec.dense else (2, task.channels), requires_grad=True)
    loss = task.compute_loss(output, target)
    loss.backward()
    assert loss.item() == 0.0 and output.grad.abs().sum() == 0


def test_with_unlabelled_adds_the_missing_tasks(scene_folder):
    root, _ = scene_folder
    data = WithUnlabelled(create_dataset(f"folder:{root}", tasks=["scene"]), [Task("depth", "depth")])
    sample = data[0]
    assert len(data) == 4 and set(sample) == {"image", "scene", "depth"}
    assert sample["depth"].shape == (1, 32, 32) and sample["depth"].isnan().all()
