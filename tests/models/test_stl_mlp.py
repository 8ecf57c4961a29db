"""stl_mlp: per task, the vector gated network built for that task alone; nothing shared."""

import pytest
import torch
from family_checks import check_partition

import mtlzoo
from mtlzoo.models import create_model_from_config
from mtlzoo.models.stl_mlp import OWN

TASKS = [{"name": "a", "kind": "regression"}, {"name": "b", "kind": "classification", "channels": 3}]
SIZES = {"input_dim": 6, "expert_hidden": [5], "head_width": 4}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(**kwargs):
    torch.manual_seed(0)
    return mtlzoo.create_model("stl_mlp", tasks=TASKS, **{**SIZES, **kwargs})


def _batch(n: int = 4, seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, {"a": torch.randn(n, generator=g), "b": torch.randint(0, 3, (n,), generator=g)}


def test_nothing_is_shared_and_a_task_loss_reaches_only_its_own_network():
    model = _model(num_shared_experts=3)
    check_partition(model)
    assert list(model.shared_parameters()) == []
    x, targets = _batch()
    for task in model.task_names:
        model.zero_grad(set_to_none=True)
        model.losses(model(x), targets)[task].backward()
        assert all(p.grad is not None for p in model.task_parameters(task))
        other = next(t for t in model.task_names if t != task)
        assert all(p.grad is None for p in model.task_parameters(other))


@pytest.mark.parametrize(("family", "layout"), [
    ("mmoe", {"num_shared_experts": 3}),
    ("cgc", {"num_shared_experts": 2, "num_task_experts": 1}),
    ("ple", {"num_levels": 2, "num_shared_experts": 2, "num_task_experts": 1}),
])
def test_each_task_is_the_family_built_for_that_task_alone(family, layout):
    """Copy a task's column and tower into ``<family>_mlp`` built for that one task: identical outputs, and the
    same number of parameters (the per-task capacity of the multi-task model)."""
    model = _model(**layout).eval()
    x, _ = _batch()
    with torch.no_grad():
        out = model(x)
    for task in TASKS:
        alone = mtlzoo.create_model(f"{family}_mlp", tasks=[task], **SIZES, **layout).eval()
        name = task["name"]
        trunk = model.encoder.columns[name].trunk.state_dict()
        alone.encoder.load_state_dict({k.replace(f".{OWN}.", f".{name}."): v for k, v in trunk.items()})
        alone.heads[name].load_state_dict(model.heads[name].state_dict())
        with torch.no_grad():
            assert torch.equal(alone(x)[name], out[name])
        assert sum(p.numel() for p in alone.parameters()) == sum(p.numel() for p in model.task_parameters(name))


def test_round_trips_through_config_and_save_pretrained(tmp_path):
    model = _model(num_levels=2, num_task_experts=1).eval()
    rebuilt = create_model_from_config(model.config)
    assert rebuilt.config == model.config and rebuilt.config["num_levels"] == 2
    loaded = mtlzoo.from_pretrained(str(model.save_pretrained(tmp_path / "stl_mlp"))).eval()
    x, _ = _batch()
    with torch.no_grad():
        assert all(torch.equal(model(x)[t], loaded(x)[t]) for t in model.task_names)
    assert loaded.input_shape == (6,)


def test_add_remove_and_freeze_keep_the_columns_in_step():
    model = _model()
    model.add_task({"name": "c", "kind": "regression"})
    assert list(model.encoder.columns) == model.task_names and model(_batch()[0])["c"].shape == (4, 1)
    model.remove_task("a")
    assert list(model.encoder.columns) == model.task_names == ["b", "c"]
    check_partition(model)
    model.freeze_encoder()
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.heads.parameters())


def test_a_balancer_has_nothing_to_balance():
    """With nothing shared, PCGrad's update is the summed-loss one (each task's gradient on its own network)."""
    grads = {}
    for method in ("pcgrad", "ew"):
        model = _model()
        balancer = mtlzoo.create_balancer(method)
        balancer.bind(model.task_names)
        x, targets = _batch()
        balancer.backward(model.losses(model(x), targets), model)
        grads[method] = [p.grad.clone() for p in model.parameters()]
    assert all(torch.allclose(a, b) for a, b in zip(grads["pcgrad"], grads["ew"], strict=True))


def test_bad_inputs_and_options_are_refused_on_one_line():
    with pytest.raises(ValueError, match=r"expects vectors of shape \(B, 6\)"):
        _model()(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="dense"):
        mtlzoo.create_model("stl_mlp", tasks=[{"name": "depth", "kind": "depth"}])
    with pytest.raises(ValueError, match="expert_hidden must be a non-empty list"):
        _model(expert_hidden=[])
    with pytest.raises(ValueError, match="num_shared_experts >= 1"):
        _model(num_shared_experts=0)
