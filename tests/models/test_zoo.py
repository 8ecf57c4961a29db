"""One parametrised test covers the zoo: every registered model obeys the MultiTaskModel contract."""

import pytest
import torch

import mtlzoo

HEAVY = {"squadnet_base", "mtan_segnet", "cross_stitch", "stl_resnet18", "cross_stitch_resnet18", "nddr_resnet18",
         "invpt_vit_base"}  # one ResNet column per task, a 44 M SegNet, or a ViT-B
VECTOR = mtlzoo.list_models("*_mlp")  # models named *_mlp take vectors (B, D)
VECTOR_TASKS = [{"name": "score", "kind": "regression"}, {"name": "label", "kind": "classification", "channels": 3}]


def _params(models):
    return [pytest.param(m, marks=pytest.mark.slow) if m in HEAVY else m for m in models]


@pytest.mark.parametrize("name", _params(sorted(set(mtlzoo.list_models("*_*")) - set(VECTOR))))
@pytest.mark.parametrize("preset", ["nyud", "pascal_context"])
def test_model_forward_backward_shapes(name, preset):
    torch.manual_seed(0)
    model = mtlzoo.create_model(name, tasks=preset)
    x = torch.randn(2, 3, 64, 64)
    outputs = model(x)
    tasks = mtlzoo.task_preset(preset)
    assert list(outputs) == [t.name for t in tasks]
    for task in tasks:
        assert outputs[task.name].shape == (2, task.channels, 64, 64)
    targets = {t.name: _target(t) for t in tasks}
    losses = model.losses(outputs, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    shared = list(model.shared_parameters())
    assert shared or name.startswith("stl"), "only single-task models share no parameters"
    assert not shared or any(p.grad is not None and p.grad.abs().sum() > 0 for p in shared)
    for task in tasks:
        assert any(p.grad is not None for p in model.task_parameters(task.name))


@pytest.mark.parametrize("name", VECTOR)
def test_vector_model_forward_backward_shapes(name):
    torch.manual_seed(0)
    model = mtlzoo.create_model(name, tasks=VECTOR_TASKS)
    x = torch.randn(4, model.input_dim)
    outputs = model(x)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {"score": (4, 1), "label": (4, 3)}
    losses = model.losses(outputs, {"score": torch.randn(4), "label": torch.randint(0, 3, (4,))})
    sum(losses.values()).backward()
    shared = list(model.shared_parameters())
    assert shared or name.startswith("stl"), "only single-task models share no parameters"
    assert not shared or any(p.grad is not None and p.grad.abs().sum() > 0 for p in shared)
    for task in model.task_names:
        assert any(p.grad is not None for p in model.task_parameters(task))
    with pytest.raises(ValueError, match="expects vectors"):
        model(torch.randn(2, 3, 8, 8))


def _target(task):
    if task.kind in ("segmentation", "parts"):
        return torch.randint(0, task.channels, (2, 64, 64))
    if task.kind == "normals":
        return torch.nn.functional.normalize(torch.randn(2, 3, 64, 64), dim=1)
    if task.kind == "depth":
        return torch.rand(2, 1, 64, 64) * 5
    return (torch.rand(2, 1, 64, 64) > 0.8).float()
