"""stl_*: independent encoders per task; no shared parameters; balancers reduce to each task's own gradient."""

import pytest
import torch
from family_checks import (
    TASKS,
    balancer_steps,
    batch,
    check_info,
    check_partition,
    check_private_gradients,
    check_round_trips,
    train_config_losses,
)

import mtlzoo


@pytest.fixture
def model():
    torch.manual_seed(0)
    return mtlzoo.create_model("stl_tiny", tasks=TASKS)


def test_nothing_is_shared_and_each_task_owns_its_encoder(model):
    check_partition(model)
    assert list(model.shared_parameters()) == []
    encoder_ids = {id(p) for p in model.encoder.columns["depth"].parameters()}
    assert encoder_ids <= {id(p) for p in model.task_parameters("depth")}
    check_private_gradients(model)


def test_outputs_equal_separately_built_single_task_networks(model):
    """Each task's output is its own encoder + head applied to the image, untouched by the other tasks."""
    x = batch()["image"]
    model.eval()
    with torch.no_grad():
        out = model(x)
        for task in model.task_names:
            features = model.encoder.columns[task](x)
            assert torch.equal(out[task], model.heads[task](features, (x.shape[-2], x.shape[-1])))


def test_info_gives_parameters_and_flops():
    check_info("stl_tiny")

def test_round_trips(model, tmp_path):
    check_round_trips(model, tmp_path)


def test_add_and_remove_task_keep_columns_in_step(model):
    model.add_task({"name": "edge", "kind": "edge"})
    assert list(model.encoder.columns) == model.task_names
    assert model(batch()["image"])["edge"].shape == (2, 1, 32, 32)
    model.remove_task("depth")
    assert list(model.encoder.columns) == model.task_names == ["semseg", "normals", "edge"]
    check_partition(model)


def test_freeze_encoder_freezes_every_column(model):
    model.freeze_encoder()
    assert all(not p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.heads.parameters())
    model.unfreeze_encoder()
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", ["mgda", "pcgrad", "nash_mtl", "gradnorm", "uw"])
def test_every_balancer_trains_each_task_alone(name):
    """With nothing shared there is nothing to balance: every balancer's update equals the summed-loss one."""
    grads = {}
    for method in (name, "ew"):
        torch.manual_seed(0)
        model = mtlzoo.create_model("stl_tiny", tasks=TASKS)
        balancer = mtlzoo.create_balancer(method)
        balancer.bind(model.task_names)
        data = batch()
        losses = model.losses(model(data["image"]), {k: v for k, v in data.items() if k != "image"})
        info = balancer.backward(losses, model)
        assert torch.equal(info.weights.float(), torch.ones(3))
        grads[method] = [p.grad.clone() for p in model.parameters()]
    for a, b in zip(grads[name], grads["ew"], strict=True):
        assert torch.allclose(a, b)


def test_feature_level_is_refused():
    with pytest.raises(ValueError, match="no shared representation"):
        balancer_steps("stl_tiny", "mgda_ub", steps=1)


@pytest.mark.parametrize("balancer", mtlzoo.list_balancers())
def test_every_balancer_at_the_parameter_level_and_feature_level_refused(balancer):
    if mtlzoo.create_balancer(balancer).level == "features":
        with pytest.raises(ValueError, match="no shared representation"):
            balancer_steps("stl_tiny", balancer)
    else:
        balancer_steps("stl_tiny", balancer)


def test_config_trains_and_the_loss_falls(tmp_path):
    totals = train_config_losses("synthscenes_stl", tmp_path)
    assert sum(totals[-6:]) < 0.9 * sum(totals[:6])


def test_a_frozen_task_keeps_its_outputs_while_others_train(model):
    """freeze_tasks freezes the task's encoder as well as its head, batch-norm statistics included."""
    model.freeze_tasks(["depth"])
    model.train()
    x = batch()["image"]
    before = model.eval()(x)["depth"].detach().clone()
    model.train()
    model(x * 3 + 1)  # a training-mode forward updates the running statistics of every trainable column
    assert torch.equal(model.eval()(x)["depth"], before)
    assert all(not p.requires_grad for p in model.encoder.columns["depth"].parameters())


def test_generic_entry_takes_any_encoder():
    model = mtlzoo.create_model("stl", tasks=TASKS, encoder="resnet18", output_stride=16, head="light", head_width=16)
    assert model.config["encoder"] == "resnet18"
    assert model(batch()["image"])["normals"].shape == (2, 3, 32, 32)


def test_diagnose_says_a_single_task_model_shares_nothing(model):
    from mtlzoo.diagnose import gradient_report

    with pytest.raises(ValueError, match="single-task model"):
        gradient_report(model, [batch()], max_batches=1)
