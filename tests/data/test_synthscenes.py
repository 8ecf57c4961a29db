import os
import time

import numpy as np
import pytest
import torch

from mtlzoo.data import GENERATOR_VERSION, SynthScenes, create_dataset, list_datasets, render_scene
from mtlzoo.data._image import _cast, _rays
from mtlzoo.data._numerics import numerics_for
from mtlzoo.data._render import camera_intrinsics, intersect
from mtlzoo.data._scene import sample_scene
from mtlzoo.metrics import create_meter
from mtlzoo.tasks import SYNTHSCENES_CLASSES, task_preset

SIZE = (48, 64)


@pytest.fixture(scope="module")
def scenes():
    return [render_scene(0, "train", i, SIZE) for i in range(12)]


def test_same_inputs_give_identical_bytes():
    a, b = render_scene(3, "val", 7, SIZE), render_scene(3, "val", 7, SIZE)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    for other in (render_scene(3, "val", 8, SIZE), render_scene(3, "test", 7, SIZE), render_scene(4, "val", 7, SIZE)):
        assert a["rgb"].tobytes() != other["rgb"].tobytes()


def test_label_conventions(scenes):
    for s in scenes:
        void = s["semseg"] == 255
        valid = s["depth"] > 0
        assert s["rgb"].dtype == np.uint8 and s["rgb"].shape == (*SIZE, 3)
        assert s["semseg"][~void].max() < len(SYNTHSCENES_CLASSES)
        assert not valid[void].any() and (s["normals"][~valid] == 0).all()
        assert 0.5 <= s["depth"][valid].min() and s["depth"].max() <= 10.0
        assert np.allclose(np.linalg.norm(s["normals"][valid], axis=-1), 1.0, atol=1e-4)
        assert (s["saliency"][~void] == (s["semseg"][~void] >= 3)).all() and (s["saliency"][void] == 255).all()
        assert set(np.unique(s["edge"])) <= {0, 1, 255}
        figure = s["semseg"] == SYNTHSCENES_CLASSES.index("figure")
        if figure.any():
            assert (s["parts"][figure] > 0).all() and (s["parts"][~figure & ~void] == 0).all()
        else:
            assert (s["parts"] == 255).all()
    assert any((s["parts"] != 255).any() for s in scenes)  # some figure, some void, some depth holes
    assert any((s["semseg"] == 255).any() for s in scenes)
    assert any(((s["depth"] == 0) & (s["semseg"] != 255)).any() for s in scenes)


def test_normals_face_the_camera_and_match_depth_on_planes(scenes):
    k_inv = np.linalg.inv(camera_intrinsics(SIZE, numerics_for(GENERATOR_VERSION)))
    v, u = np.mgrid[0:SIZE[0], 0:SIZE[1]] + 0.5
    rays = np.stack([u, v, np.ones_like(u)], -1) @ k_inv.T
    for s in scenes:
        valid = s["depth"] > 0
        assert (np.einsum("hwc,hwc->hw", s["normals"], rays)[valid] < 0).all()
        points = rays * s["depth"][..., None]
        fd = np.cross(points[1:-1, 2:] - points[1:-1, :-2], points[2:, 1:-1] - points[:-2, 1:-1])
        fd /= np.linalg.norm(fd, axis=-1, keepdims=True) + 1e-12
        inst = s["instance"]
        plane = (inst[1:-1, 1:-1] >= 0) & (inst[1:-1, 1:-1] < 6)  # room faces are planes
        for dy, dx in ((0, 1), (1, 0), (2, 1), (1, 2)):
            plane &= inst[dy:dy + SIZE[0] - 2, dx:dx + SIZE[1] - 2] == inst[1:-1, 1:-1]
            plane &= valid[dy:dy + SIZE[0] - 2, dx:dx + SIZE[1] - 2]
        cos = np.einsum("hwc,hwc->hw", -fd, s["normals"][1:-1, 1:-1])[plane]  # cross(dx, dy) points away
        assert plane.sum() > 100 and np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 0.5


def test_edges_are_instance_boundaries(scenes):
    for s in scenes:
        inst = s["instance"]
        change = np.zeros(inst.shape, bool)
        change[:, :-1] |= inst[:, :-1] != inst[:, 1:]
        change[:-1] |= inst[:-1] != inst[1:]
        void = s["semseg"] == 255
        assert ((s["edge"] == 1) == (change & ~void)).all()


@pytest.mark.parametrize("version", [1, 3])
def test_culling_by_projected_box_changes_nothing(version):
    num = numerics_for(version)
    for i in range(4):
        scene = sample_scene(np.random.default_rng([0, 0, i, version]), version)
        dirs = num.matmul(_rays(SIZE, num), scene.rotation.T)
        t, ids, _ = _cast(scene, dirs, SIZE, num)
        for j, solid in enumerate(scene.solids):  # a full-image test never finds a closer hit
            full = intersect(np.zeros(3, np.float32), dirs, solid.primitive, num)
            assert (full >= t - 1e-5).all()
            assert np.allclose(full[ids == 6 + j], t[ids == 6 + j], atol=1e-5)


def test_scene_is_resolution_independent():
    small, large = render_scene(1, "train", 2, (48, 64)), render_scene(1, "train", 2, (96, 128))
    assert (large["semseg"][::2, ::2] == small["semseg"]).mean() > 0.9


def test_perfect_prediction_oracle(scenes):
    batch = {k: torch.from_numpy(np.stack([s[k] for s in scenes])) for k in ("semseg", "depth", "normals")}
    tasks = {t.name: t for t in task_preset("synthscenes")}
    seg = create_meter(tasks["semseg"], "synthscenes")
    seg.update(batch["semseg"].long(), batch["semseg"].long())
    depth = create_meter(tasks["depth"], "synthscenes")
    depth.update(batch["depth"][:, None], batch["depth"][:, None])
    normals = create_meter(tasks["normals"], "synthscenes")
    n = batch["normals"].permute(0, 3, 1, 2)
    normals.update(n, n)
    assert seg.compute()["miou"] == 1.0 and depth.compute()["rmse"] == 0.0
    assert normals.compute()["mean"] == pytest.approx(0.0, abs=1e-3)


def test_dataset_items_cache_and_errors(tmp_path):
    assert "synthscenes" in list_datasets()
    ds = create_dataset("synthscenes", split="val", size=SIZE, length=3, tasks=["semseg", "depth"])
    item = ds[1]
    assert set(item) == {"image", "semseg", "depth"} and item["image"].shape == (3, *SIZE)
    assert item["semseg"].dtype == torch.int64 and item["depth"].shape == (1, *SIZE)
    assert ds.name == f"synthscenes-v{GENERATOR_VERSION}" and len(ds) == 3 and len(SynthScenes("test")) == 500
    cached = SynthScenes("val", size=SIZE, length=3, cache_dir=tmp_path)
    first = cached[2]
    again = SynthScenes("val", size=SIZE, length=3, cache_dir=tmp_path)[2]  # read back from the shard
    assert list(tmp_path.rglob("*.npz")) and all(torch.equal(first[k], again[k]) for k in first)
    assert torch.equal(first["depth"], SynthScenes("val", size=SIZE, length=3)[2]["depth"])
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(ValueError, match="saliency"):
        SynthScenes(tasks=["salency"])
    with pytest.raises(ValueError, match="val"):
        SynthScenes("valid")
    with pytest.raises(ValueError, match="version"):
        render_scene(0, "train", 0, SIZE, version=9)


def test_mirrored_figure_swaps_left_and_right_parts():
    from mtlzoo.data.synthscenes import FLIP_SWAPS
    from mtlzoo.data.transforms import RandomHorizontalFlip

    index = next(i for i in range(40) if (render_scene(0, "train", i, SIZE)["parts"] == 3).any())
    sample = SynthScenes("train", size=SIZE, length=index + 1)[index]
    left, right = (sample["parts"] == 3).nonzero()[:, 1], (sample["parts"] == 4).nonzero()[:, 1]
    if len(right):  # figures face the camera: their left arm shows on the image's right
        assert left.float().mean() > right.float().mean()
    flipped = RandomHorizontalFlip(p=1.0, swaps=FLIP_SWAPS)(sample)
    assert torch.equal(flipped["parts"] == 4, (sample["parts"] == 3).flip(-1))


def test_shuffled_reads_keep_decoded_shards_in_memory(tmp_path, monkeypatch):
    from mtlzoo.data import synthscenes as module

    monkeypatch.setattr(module, "SHARD_SIZE", 4)
    dataset = module.SynthScenes("val", size=(24, 32), length=12, cache_dir=tmp_path, cached_shards=2)
    loads = []
    original = dataset._load_or_render
    monkeypatch.setattr(dataset, "_load_or_render", lambda shard: loads.append(shard) or original(shard))
    for index in (0, 5, 1, 6, 2, 7):
        dataset[index]
    assert loads == [0, 1]
    dataset[9]
    dataset[0]
    assert loads == [0, 1, 2, 0]  # shard 0 was the least recently used of the two kept


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"not a zip file", lambda b: b""])
def test_a_damaged_cache_shard_is_rendered_again(tmp_path, damage):
    fresh = SynthScenes("val", size=(24, 32), length=3, cache_dir=tmp_path)[1]
    (shard,) = tmp_path.rglob("shard*.npz")
    shard.write_bytes(damage(shard.read_bytes()))
    with pytest.warns(UserWarning, match="rendering it again"):
        again = SynthScenes("val", size=(24, 32), length=3, cache_dir=tmp_path)[1]
    assert all(torch.equal(fresh[k], again[k]) for k in fresh)
    with np.load(shard) as stored:  # and the shard on disk is whole again
        assert len(stored["rgb"]) == 3


def test_orphaned_temporary_shards_are_removed(tmp_path):
    from mtlzoo.checkpoint import TMP_PREFIX

    folder = tmp_path / f"synthscenes-v{GENERATOR_VERSION}-val-seed0-24x32"
    folder.mkdir()
    old, live = folder / f"{TMP_PREFIX}shard00000.npz.abc", folder / f"{TMP_PREFIX}shard00000.npz.def"
    old.write_bytes(b"half a shard")
    live.write_bytes(b"a worker is writing this one")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    SynthScenes("val", size=(24, 32), length=2, cache_dir=tmp_path)[0]
    assert not old.exists() and live.exists()
    assert [p.name for p in folder.iterdir() if not p.name.startswith(TMP_PREFIX)] == ["shard00000.npz"]
