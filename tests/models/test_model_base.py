import pytest
import torch

import mtlzoo
from mtlzoo.models import create_model_from_config


@pytest.fixture
def model():
    torch.manual_seed(0)
    return mtlzoo.create_model("hps_tiny", tasks="nyud")


def test_shared_and_task_parameters_partition_the_model(model):
    shared = [id(p) for p in model.shared_parameters()]
    owned = [id(p) for t in model.task_names for p in model.task_parameters(t)]
    assert len(shared) + len(owned) == len({*shared, *owned})
    assert set(shared) | set(owned) == {id(p) for p in model.parameters()}


def test_encode_then_decode_equals_forward(model):
    model.eval()
    x = torch.randn(2, 3, 32, 48)
    rep = model.encode(x)
    assert rep.size == (32, 48) and all(isinstance(f, torch.Tensor) for f in rep.features)
    direct = model(x)
    for name, out in model.decode(rep).items():
        assert torch.equal(out, direct[name])


def test_add_and_remove_task(model):
    head = model.add_task(mtlzoo.Task("saliency", "saliency"))
    assert model.task_names[-1] == "saliency" and head is model.heads["saliency"]
    assert model(torch.randn(2, 3, 32, 32))["saliency"].shape == (2, 1, 32, 32)
    model.add_task({"name": "scene", "kind": "classification", "channels": 10})
    assert model(torch.randn(2, 3, 32, 32))["scene"].shape == (2, 10)
    with pytest.raises(ValueError, match="already exists"):
        model.add_task(mtlzoo.Task("depth", "depth"))
    removed = model.remove_task("depth")
    assert removed.kind == "depth" and "depth" not in model.heads and "depth" not in model(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown task"):
        model.remove_task("depth")


def test_config_rebuilds_the_same_architecture(model):
    model.add_task(mtlzoo.Task("sal", "saliency"))
    rebuilt = create_model_from_config(model.config)
    assert rebuilt.task_names == model.task_names
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    import json
    assert json.loads(json.dumps(model.config)) == model.config


def test_freeze_encoder_stops_shared_gradients_and_keeps_norms_in_eval(model):
    model.freeze_encoder()
    model.train()
    assert not model.encoder.training and model.heads.training
    losses = model.losses(model(torch.randn(2, 3, 32, 32)), {"depth": torch.rand(2, 1, 32, 32)} | {
        "semseg": torch.randint(0, 40, (2, 32, 32)), "normals": torch.randn(2, 3, 32, 32),
        "edge": torch.zeros(2, 1, 32, 32)})
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.shared_parameters())
    model.unfreeze_encoder()
    assert model.encoder.training and all(p.requires_grad for p in model.parameters())


def test_bad_inputs_say_what_to_change(model):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="targets lack"):
        model.losses(model(torch.randn(2, 3, 32, 32)), {"depth": torch.zeros(2, 1, 32, 32)})


def test_dense_head_on_a_vector_task_is_refused():
    with pytest.raises(ValueError, match="mlp"):
        mtlzoo.create_model("hps_tiny", tasks=[mtlzoo.Task("c", "classification", 3, head="aspp")])


def test_unfreeze_encoder_undoes_only_freeze_encoder_and_frozen_tasks_can_still_be_unfrozen(model):
    model.freeze_tasks(["depth"])
    model.freeze_encoder()
    model.unfreeze_encoder()
    model.train()
    assert all(p.requires_grad for p in model.shared_parameters()) and model.encoder.training
    assert not any(p.requires_grad for p in model.task_parameters("depth")) and not model.heads["depth"].training
    assert all(p.requires_grad for p in model.task_parameters("semseg")) and model.heads["semseg"].training
    model.unfreeze_tasks()
    model.train()
    assert all(p.requires_grad for p in model.parameters()) and model.heads["depth"].training
