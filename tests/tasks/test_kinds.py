"""The two kinds added through the TaskKind mechanism: keypoints (heatmaps, PCK) and multilabel (BCE, mAP, F1).
Losses are checked against numpy transcriptions; targets, joint transforms and evaluate follow from the kinds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import mtlzoo
from mtlzoo.data.transforms import RandomHorizontalFlip, RandomScaleCrop, Resize, targets_to_tensors
from mtlzoo.tasks import Task
from mtlzoo.tasks.kinds.keypoints import render_heatmaps

KINDS = {"kp": "keypoints", "tags": "multilabel"}


def test_keypoint_loss_is_the_mean_squared_heatmap_error_over_finite_pixels():
    rng = np.random.default_rng(0)
    pred, target = rng.random((2, 3, 4, 5)), rng.random((2, 3, 4, 5))
    target[0, 1, 2, :] = np.nan
    valid = np.isfinite(target)
    expected = np.mean((pred[valid] - target[valid]) ** 2)
    loss = Task("kp", "keypoints", 3).compute_loss(torch.tensor(pred, dtype=torch.float32),
                                                   torch.tensor(target, dtype=torch.float32))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_multilabel_loss_is_binary_cross_entropy_over_the_known_entries():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, 4))
    target = rng.integers(0, 2, (5, 4)).astype(np.float32)
    target[rng.random((5, 4)) < 0.3] = -1
    known = target != -1
    p = 1 / (1 + np.exp(-logits[known]))
    expected = -np.mean(target[known] * np.log(p) + (1 - target[known]) * np.log(1 - p))
    loss = Task("tags", "multilabel", 4).compute_loss(torch.tensor(logits, dtype=torch.float32),
                                                      torch.from_numpy(target))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    out = torch.zeros(2, 4, requires_grad=True)
    empty = Task("tags", "multilabel", 4).compute_loss(out, -torch.ones(2, 4))
    empty.backward()
    assert empty.item() == 0.0 and out.grad is not None


@pytest.mark.parametrize("task, pred, target, match", [
    (Task("kp", "keypoints", 3), torch.rand(2, 3, 4, 4), torch.zeros(2, 3, 4, 4, dtype=torch.long),
     r"task 'kp'.*float heatmaps \(B, 3, H, W\)"),
    (Task("kp", "keypoints", 3), torch.rand(2, 3, 4, 4), torch.rand(2, 2, 4, 4), r"task 'kp'.*\(2, 2, 4, 4\)"),
    (Task("tags", "multilabel", 4), torch.rand(2, 4), torch.full((2, 4), 2.0), r"task 'tags'.*2.*-1 \(ignore\)"),
    (Task("tags", "multilabel", 4), torch.rand(2, 4), torch.zeros(2, 3), r"task 'tags'.*\(2, 3\).*\(B, 4\)"),
])
def test_bad_targets_of_the_new_kinds_name_the_task(task, pred, target, match):
    with pytest.raises(ValueError, match=match):
        task.compute_loss(pred, target)


def test_new_kinds_need_their_channels():
    for kind in ("keypoints", "multilabel"):
        with pytest.raises(ValueError, match="needs channels"):
            Task("t", kind)


def test_render_heatmaps_puts_the_peak_on_visible_keypoints_only():
    heat = render_heatmaps(torch.tensor([[[3.0, 1.0, 1.0], [0.0, 0.0, 0.0]]]), (4, 6))
    assert heat.shape == (1, 2, 4, 6) and heat[0, 0, 1, 3] == 1.0 and heat[0, 0].argmax() == 1 * 6 + 3
    assert not heat[0, 1].any()
    with pytest.raises(ValueError, match=r"\(B, K, 3\)"):
        render_heatmaps(torch.zeros(1, 2, 2), (4, 6))


def _sample():
    g = torch.Generator().manual_seed(0)
    points = torch.tensor([[[2.0, 3.0, 1.0], [8.0, 5.0, 1.0], [5.0, 5.0, 0.0]]])
    return {"image": torch.randn(3, 12, 16, generator=g), "kp": render_heatmaps(points, (12, 16), sigma=1.0)[0],
            "tags": torch.tensor([1.0, 0.0, -1.0, 1.0])}


def test_a_flip_swaps_left_right_keypoint_channels_and_leaves_image_labels_alone():
    sample = _sample()
    flipped = RandomHorizontalFlip(p=1.0, kinds=KINDS, swaps={"kp": [(0, 1)]})(sample)
    assert torch.equal(flipped["kp"][0], sample["kp"][1].flip(-1))
    assert torch.equal(flipped["kp"][1], sample["kp"][0].flip(-1))
    assert torch.equal(flipped["kp"][2], sample["kp"][2])  # invisible: all zero
    assert torch.equal(flipped["tags"], sample["tags"])


def test_scaling_resamples_heatmaps_bilinearly_and_leaves_image_labels_alone():
    sample = _sample()
    resized = Resize((24, 32), kinds=KINDS)(sample)
    expected = torch.nn.functional.interpolate(sample["kp"][None], size=(24, 32), mode="bilinear",
                                               align_corners=False)[0]
    assert torch.allclose(resized["kp"], expected) and torch.equal(resized["tags"], sample["tags"])
    zoomed = RandomScaleCrop(scales=(1.5,), kinds=KINDS)(sample)
    assert zoomed["kp"].shape == sample["kp"].shape and torch.equal(zoomed["tags"], sample["tags"])


def test_loaded_arrays_become_the_tensors_the_losses_read():
    arrays = {"kp": np.zeros((12, 16, 3), np.float32), "tags": np.array([1, 0, -1, 1])}
    tensors = targets_to_tensors(arrays, KINDS)
    assert tensors["kp"].shape == (3, 12, 16) and tensors["tags"].dtype == torch.float32
    with pytest.raises(ValueError, match="keypoint"):
        targets_to_tensors(arrays, {"kp": "keypoint"})


def test_a_model_with_the_new_kinds_trains_and_is_evaluated():
    torch.manual_seed(0)
    tasks = [Task("kp", "keypoints", 3), Task("tags", "multilabel", 4)]
    model = mtlzoo.create_model("hps_tiny", tasks=tasks)
    g = torch.Generator().manual_seed(0)
    points = torch.cat([torch.randint(0, 32, (4, 3, 2), generator=g).float(), torch.ones(4, 3, 1)], -1)
    batch = {"image": torch.randn(4, 3, 32, 32, generator=g), "kp": render_heatmaps(points, (32, 32)),
             "tags": torch.randint(0, 2, (4, 4), generator=g).float()}
    losses = model.losses(model(batch["image"]), {"kp": batch["kp"], "tags": batch["tags"]})
    mtlzoo.create_balancer("ew").backward(losses, model)
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(p.grad is not None for p in model.task_parameters("kp"))
    result = mtlzoo.evaluate(model, [batch], protocol="mtan_nyuv2", progress=False)
    assert set(result["kp"]) == {"pck"} and set(result["tags"]) == {"map", "f1"}
    assert 0.0 <= result["kp"]["pck"] <= 1.0 and not math.isnan(result["tags"]["map"])
