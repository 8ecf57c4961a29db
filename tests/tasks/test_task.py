import json

import pytest
import torch

import mtlzoo
from mtlzoo.tasks import HIGHER, LOWER, TASK_KINDS, resolve_tasks, stack_losses


def test_task_json_round_trip_for_every_preset_task():
    for preset in mtlzoo.list_task_presets():
        for task in mtlzoo.task_preset(preset):
            assert mtlzoo.Task.from_json(task.to_json()) == task
            assert json.loads(task.to_json())["channels"] == task.channels


def test_task_defaults_come_from_the_kind():
    assert mtlzoo.Task("depth", "depth").channels == 1
    assert mtlzoo.Task("normals", "normals").channels == 3
    assert mtlzoo.Task("edge", "edge").pos_weight == 0.95
    assert mtlzoo.Task("sal", "saliency").pos_weight is None
    assert mtlzoo.Task("n", "normals").loss == "l1"


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "seg", "kind": "segmentation"}, "needs channels"),
    ({"name": "seg", "kind": "segmantation", "channels": 3}, "segmentation"),
    ({"name": "n", "kind": "normals", "loss": "l2"}, "cosine"),
    ({"name": "bad name", "kind": "depth"}, "identifier"),
    ({"name": "e", "kind": "edge", "pos_weight": 2.0}, r"\(0, 1\)"),
    ({"name": "d", "kind": "depth", "head": "asp"}, "aspp"),
])
def test_bad_tasks_say_what_is_accepted(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mtlzoo.Task(**kwargs)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="accepted"):
        mtlzoo.Task.from_dict({"name": "d", "kind": "depth", "colour": "red"})


def test_presets_have_the_documented_tasks():
    names = {p: [t.name for t in mtlzoo.task_preset(p)] for p in mtlzoo.list_task_presets()}
    assert names["nyud"] == ["semseg", "depth", "normals", "edge"]
    assert names["pascal_context"] == ["semseg", "parts", "saliency", "normals", "edge"]
    assert names["nyuv2_mtan"] == ["semseg", "depth", "normals"]
    assert names["cityscapes2"] == ["semseg", "depth"]
    assert names["synthscenes"] == ["semseg", "depth", "normals", "edge", "saliency", "parts"]
    assert mtlzoo.task_preset("nyud")[0].channels == 40
    assert mtlzoo.task_preset("nyuv2_mtan")[0].ignore_index == -1
    with pytest.raises(ValueError, match="nyud"):
        mtlzoo.task_preset("nyu")


def test_resolve_tasks_rejects_duplicates_and_single_tasks():
    with pytest.raises(ValueError, match="distinct"):
        resolve_tasks([mtlzoo.Task("d", "depth"), {"name": "d", "kind": "depth"}])
    with pytest.raises(TypeError, match="list"):
        resolve_tasks(mtlzoo.Task("d", "depth"))


def test_every_kind_declares_directions_for_its_metrics():
    for name in TASK_KINDS.names():
        kind = TASK_KINDS.get(name)
        assert kind.metrics and set(kind.metrics.values()) <= {HIGHER, LOWER}
        assert kind.headline_metric in kind.metrics
    assert TASK_KINDS.get("depth").direction("rmse") == LOWER
    assert TASK_KINDS.get("normals").direction("within_11_25") == HIGHER
    with pytest.raises(ValueError, match="rmse"):
        TASK_KINDS.get("depth").direction("rmsee")


def _dense_out(channels, requires_grad=True):
    return torch.randn(2, channels, 4, 4, requires_grad=requires_grad)


def _assert_zero_in_graph(loss, out):
    assert torch.isfinite(loss) and loss.item() == 0.0
    loss.backward()
    assert out.grad is not None and torch.count_nonzero(out.grad) == 0


def test_segmentation_loss_all_ignored_is_zero_and_in_graph():
    task = mtlzoo.Task("seg", "segmentation", 5)
    out = _dense_out(5)
    _assert_zero_in_graph(task.compute_loss(out, torch.full((2, 4, 4), 255)), out)


def test_segmentation_loss_partly_ignored_equals_mean_over_valid_pixels():
    task = mtlzoo.Task("seg", "segmentation", 5, ignore_index=-1)
    out = _dense_out(5, requires_grad=False)
    target = torch.randint(0, 5, (2, 4, 4))
    target[0] = -1
    expected = torch.nn.functional.cross_entropy(out[1:], target[1:])
    assert torch.allclose(task.compute_loss(out, target), expected)


def test_depth_loss_without_valid_pixels_is_zero_and_in_graph():
    out = _dense_out(1)
    _assert_zero_in_graph(mtlzoo.Task("d", "depth").compute_loss(out, torch.zeros(2, 1, 4, 4)), out)


def test_depth_loss_is_l1_over_valid_pixels():
    out = torch.ones(1, 1, 2, 2)
    target = torch.tensor([[[[2.0, 0.0], [4.0, 0.0]]]])
    assert mtlzoo.Task("d", "depth").compute_loss(out, target).item() == pytest.approx(2.0)


@pytest.mark.parametrize("loss", ["l1", "cosine"])
def test_normals_loss_masks_zero_vectors_and_is_zero_for_a_perfect_prediction(loss):
    task = mtlzoo.Task("n", "normals", loss=loss)
    target = torch.nn.functional.normalize(torch.randn(2, 3, 4, 4), dim=1)
    target[:, :, 0] = 0.0
    assert task.compute_loss(3.0 * target, target).item() == pytest.approx(0.0, abs=1e-6)
    out = _dense_out(3)
    _assert_zero_in_graph(task.compute_loss(out, torch.zeros(2, 3, 4, 4)), out)


def test_edge_loss_uses_the_positive_weight_and_ignores_255():
    task = mtlzoo.Task("e", "edge", pos_weight=0.9)
    logits = torch.zeros(1, 1, 1, 3)
    target = torch.tensor([[[[1.0, 0.0, 255.0]]]])
    log2 = torch.log(torch.tensor(2.0))
    assert task.compute_loss(logits, target).item() == pytest.approx(((0.9 + 0.1) * log2 / 2).item())
    out = _dense_out(1)
    _assert_zero_in_graph(task.compute_loss(out, torch.full((2, 1, 4, 4), 255.0)), out)


def test_saliency_weight_balances_the_batch():
    task = mtlzoo.Task("s", "saliency")
    logits = torch.zeros(1, 1, 1, 4)
    target = torch.tensor([[[[1.0, 0.0, 0.0, 0.0]]]])
    log2 = torch.log(torch.tensor(2.0)).item()
    expected = (0.75 * log2 + 3 * 0.25 * log2) / 4
    assert task.compute_loss(logits, target).item() == pytest.approx(expected)


def test_classification_and_regression_losses():
    cls = mtlzoo.Task("c", "classification", 3)
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 1, 255, 2])
    keep = labels != 255
    expected = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    assert torch.allclose(cls.compute_loss(logits, labels), expected)
    reg = mtlzoo.Task("r", "regression", 2, loss="mse")
    pred, target = torch.zeros(2, 2), torch.tensor([[1.0, float("nan")], [3.0, 1.0]])
    assert reg.compute_loss(pred, target).item() == pytest.approx((1 + 9 + 1) / 3)


def test_postprocess_gives_what_the_metrics_read():
    assert mtlzoo.Task("s", "segmentation", 3).postprocess(torch.randn(2, 3, 4, 4)).shape == (2, 4, 4)
    normals = mtlzoo.Task("n", "normals").postprocess(torch.randn(2, 3, 4, 4))
    assert torch.allclose(normals.norm(dim=1), torch.ones(2, 4, 4))
    probs = mtlzoo.Task("e", "edge").postprocess(torch.randn(2, 1, 4, 4))
    assert probs.min() >= 0 and probs.max() <= 1


def test_stack_losses_keeps_order():
    losses = {"b": torch.tensor(2.0), "a": torch.tensor(1.0)}
    assert stack_losses(losses).tolist() == [2.0, 1.0]


# ---- non-finite target pixels and target checks (issue 11, points 2 and 3) ----------------------------------------

def test_non_finite_depth_and_normals_pixels_are_invalid_in_the_loss():
    out = torch.ones(1, 1, 2, 2, requires_grad=True)
    target = torch.tensor([[[[2.0, float("nan")], [4.0, float("inf")]]]])
    loss = mtlzoo.Task("d", "depth").compute_loss(out, target)
    assert loss.item() == pytest.approx(2.0)  # |1 - 2| and |1 - 4| only
    loss.backward()
    assert torch.isfinite(out.grad).all()
    normal = torch.nn.functional.normalize(torch.randn(1, 3, 2, 2), dim=1)
    broken = normal.clone()
    broken[0, :, 0, 0] = float("nan")
    broken[0, 1, 1, 1] = float("inf")
    for loss_name in ("l1", "cosine"):
        task = mtlzoo.Task("n", "normals", loss=loss_name)
        assert task.compute_loss(3.0 * normal, broken).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kind", ["edge", "saliency"])
def test_non_finite_edge_and_saliency_pixels_are_invalid_in_the_loss(kind):
    task = mtlzoo.Task("e", kind, pos_weight=0.9)
    logits = torch.zeros(1, 1, 1, 3)
    clean = torch.tensor([[[[1.0, 0.0, 255.0]]]])
    nan = torch.tensor([[[[1.0, 0.0, float("nan")]]]])
    assert task.compute_loss(logits, nan).item() == pytest.approx(task.compute_loss(logits, clean).item())


def test_an_unambiguous_b_h_w_target_gets_its_channel():
    g = torch.Generator().manual_seed(0)
    out = torch.rand(2, 1, 4, 4, generator=g)
    target = torch.rand(2, 4, 4, generator=g) + 1.0
    depth = mtlzoo.Task("depth", "depth")
    assert depth.compute_loss(out, target).item() == pytest.approx(depth.compute_loss(out, target[:, None]).item())
    saliency, mask = mtlzoo.Task("s", "saliency"), torch.rand(2, 1, 4, 4, generator=g) > 0.5
    assert saliency.compute_loss(out, mask).item() == pytest.approx(saliency.compute_loss(out, mask.float()).item())
    seg = mtlzoo.Task("semseg", "segmentation", 3)
    logits, labels = torch.randn(2, 3, 4, 4, generator=g), torch.randint(0, 3, (2, 4, 4), generator=g)
    assert seg.compute_loss(logits, labels[:, None]).item() == pytest.approx(seg.compute_loss(logits, labels).item())


@pytest.mark.parametrize("task, pred, target, match", [
    (mtlzoo.Task("depth", "depth"), torch.rand(2, 1, 4, 4), torch.rand(3, 1, 4, 4),
     r"task 'depth': target shape \(3, 1, 4, 4\) does not match prediction \(2, 1, 4, 4\)"),
    (mtlzoo.Task("depth", "depth"), torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 5), r"\(B, 1, H, W\)"),
    (mtlzoo.Task("depth", "depth"), torch.rand(2, 1, 4, 4), torch.rand(2, 2, 4, 4), r"task 'depth'.*\(2, 2, 4, 4\)"),
    (mtlzoo.Task("normals", "normals"), torch.rand(2, 3, 4, 4), torch.rand(2, 4, 4), r"task 'normals'.*\(B, 3, H, W\)"),
    (mtlzoo.Task("semseg", "segmentation", 13), torch.rand(2, 13, 4, 4), torch.full((2, 4, 4), 40),
     r"task 'semseg': target labels .*40.*\[0, 12\] or the ignore index 255"),
    (mtlzoo.Task("semseg", "segmentation", 3), torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4),
     r"task 'semseg'.*integer class ids"),
    (mtlzoo.Task("semseg", "segmentation", 3), torch.rand(2, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long),
     r"task 'semseg': target shape \(1, 4, 4\) does not match prediction \(2, 3, 4, 4\); expected \(B, H, W\)"),
    (mtlzoo.Task("parts", "parts", 3, ignore_index=-1), torch.rand(2, 3, 4, 4), torch.full((2, 4, 4), -2),
     r"task 'parts'.*-2.*ignore index -1"),
    (mtlzoo.Task("edge", "edge"), torch.rand(2, 1, 4, 4), torch.full((2, 1, 4, 4), 0.5),
     r"task 'edge': target values .*0.5.*0, 1 or the ignore index 255"),
    (mtlzoo.Task("cls", "classification", 4), torch.rand(2, 4), torch.tensor([0, 4]), r"task 'cls'.*\[0, 3\]"),
    (mtlzoo.Task("cls", "classification", 4), torch.rand(2, 4), torch.tensor([0, 1, 2]),
     r"task 'cls': target shape \(3,\) does not match prediction \(2, 4\)"),
    (mtlzoo.Task("r", "regression", 2), torch.rand(2, 2), torch.rand(2, 3), r"task 'r'.*\(B, 2\)"),
])
def test_bad_targets_raise_a_value_error_naming_the_task(task, pred, target, match):
    with pytest.raises(ValueError, match=match):
        task.compute_loss(pred, target)


def test_every_kind_has_a_target_check_that_passes_good_targets_through():
    target = torch.randint(0, 3, (2, 4, 4))
    assert TASK_KINDS.get("segmentation").check_target(mtlzoo.Task("s", "segmentation", 3),
                                                        torch.rand(2, 3, 4, 4), target) is target
    for name in TASK_KINDS.names():
        assert callable(TASK_KINDS.get(name).check_target)


def test_a_user_kind_without_a_check_gets_a_batch_size_check():
    from mtlzoo.tasks import TaskKind

    kind = TaskKind(name="heat", dense=True, default_channels=1, default_head="light", losses=("mse",),
                    metrics={"mse": LOWER}, headline_metric="mse",
                    compute_loss=lambda t, o, y: (o - y).square().mean(), postprocess=lambda t, o: o)
    task = mtlzoo.Task("d", "depth")
    target = torch.rand(2, 1, 4, 4)
    assert kind.check_target(task, torch.rand(2, 1, 4, 4), target) is target
    with pytest.raises(ValueError, match=r"task 'd': target shape \(3, 1, 4, 4\) does not match"):
        kind.check_target(task, torch.rand(2, 1, 4, 4), torch.rand(3, 1, 4, 4))
