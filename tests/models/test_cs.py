"""Connection-strength model: folded all-task forward, per-task BN ownership, strengths by hand."""

import pytest
import torch

import mtlzoo
from mtlzoo.models import create_model, create_model_from_config
from mtlzoo.models.task_bn import ConvTaskBN


def _targets(tasks, b, h, w):
    out = {}
    for task in tasks:
        if task.kind in ("segmentation", "parts"):
            out[task.name] = torch.randint(0, task.channels, (b, h, w))
        elif task.kind == "normals":
            out[task.name] = torch.nn.functional.normalize(torch.randn(b, 3, h, w), dim=1)
        elif task.kind == "depth":
            out[task.name] = torch.rand(b, 1, h, w) * 5
        else:
            out[task.name] = (torch.rand(b, 1, h, w) > 0.8).float()
    return out


@pytest.mark.parametrize("name", ["cs_tiny", "cs_resnet18"])
@pytest.mark.parametrize("preset", ["nyud", "pascal_context"])
def test_shapes_and_gradients(name, preset):
    torch.manual_seed(0)
    model = create_model(name, tasks=preset)
    tasks = mtlzoo.task_preset(preset)
    seen = []
    model.encoder.stem.conv.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    outputs = model(torch.randn(2, 3, 32, 32))
    assert seen == [2 * len(tasks)]  # one conv call for all tasks
    for task in tasks:
        assert outputs[task.name].shape == (2, task.channels, 32, 32)
    sum(model.losses(outputs, _targets(tasks, 2, 32, 32)).values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.shared_parameters())
    for task in tasks:
        assert all(p.grad is not None for p in model.task_parameters(task.name))


@pytest.mark.parametrize("train", [True, False])
def test_single_task_forward_equals_folded_forward(train):
    torch.manual_seed(0)
    model = create_model("cs_tiny", tasks="nyud").train(train)
    for layer in model.priority_layers().values():
        for norm in layer.bn.norms.values():
            torch.nn.init.uniform_(norm.weight, 0.5, 1.5)
            norm.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 32, 32)
    folded = model(x)
    for task in model.task_names:
        single = model(x, task=task)
        assert list(single) == [task]
        torch.testing.assert_close(single[task], folded[task], rtol=1e-4, atol=1e-5)


def test_task_bn_receives_only_its_own_task_gradient():
    torch.manual_seed(0)
    model = create_model("cs_tiny", tasks="nyud")
    out = model(torch.randn(2, 3, 32, 32))
    out["depth"].square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.task_parameters("depth"))
    for other in ("semseg", "normals", "edge"):
        assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.task_parameters(other))
    shared = {id(p) for p in model.shared_parameters()}
    owned = [id(p) for t in model.task_names for p in model.task_parameters(t)]
    assert len(owned) == len(set(owned)) and not shared & set(owned)
    assert len(shared) + len(owned) == len(list(model.parameters()))


def test_connection_strength_equals_hand_computation():
    torch.manual_seed(0)
    layer = ConvTaskBN(2, 3, 3, ["a", "b"])
    with torch.no_grad():
        layer.conv.weight.copy_(torch.randn(3, 2, 3, 3))
        for norm in layer.bn.norms.values():
            norm.weight.uniform_(0.2, 2.0)
            norm.running_var.uniform_(0.5, 3.0)
    weight = layer.conv.weight.tolist()
    expected = []
    for name in ("a", "b"):
        norm = layer.bn.norms[name]
        raw = []
        for p in range(3):
            s_pq = sum(weight[p][q][m][n] ** 2 for q in range(2) for m in range(3) for n in range(3)) / 9
            raw.append(norm.weight[p].item() ** 2 / (norm.running_var[p].item() + norm.eps) * s_pq)
        expected.append([r / sum(raw) for r in raw])
    strength = layer.connection_strength()
    torch.testing.assert_close(strength, torch.tensor(expected), rtol=1e-5, atol=1e-7)
    assert layer.top_priority().tolist() == [int(expected[1][p] > expected[0][p]) for p in range(3)]


def test_model_strengths_and_priority_groups_cover_every_paired_layer():
    model = create_model("cs_tiny", tasks="nyud")
    layers = model.priority_layers()
    strengths = model.connection_strengths()
    groups = model.priority_groups()
    assert set(strengths) == set(groups) == set(layers)
    for name, layer in layers.items():
        assert strengths[name].shape == (4, layer.conv.out_channels)
        torch.testing.assert_close(strengths[name].sum(dim=1), torch.ones(4))
        assert groups[name].shape == (layer.conv.out_channels,) and int(groups[name].max()) < 4


def test_add_remove_task_and_config_round_trip():
    model = create_model("cs_tiny", tasks="nyud")
    model.add_task(mtlzoo.Task("saliency", "saliency"))
    assert model.encoder.stem.bn.tasks == model.task_names
    assert model(torch.randn(2, 3, 32, 32))["saliency"].shape == (2, 1, 32, 32)
    model.remove_task("depth")
    assert all(layer.bn.tasks == model.task_names for layer in model.priority_layers().values())
    rebuilt = create_model_from_config(create_model("cs_tiny", tasks="nyud").config)
    assert rebuilt.task_names == ["semseg", "depth", "normals", "edge"]
    with pytest.raises(ValueError, match="unknown task"):
        model(torch.randn(2, 3, 32, 32), task="segmentation")
