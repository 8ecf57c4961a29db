"""Gated-expert families train: every balancer (parameter level), the feature level, the synthscenes configs,
and ``mtlzoo diagnose`` reports expert usage per task."""

from __future__ import annotations

import pytest
import torch

from mtlzoo.balancers import list_balancers
from mtlzoo.models import create_model

FAMILIES = ["mmoe", "cgc", "ple", "dselectk"]
VECTOR_TASKS = [{"name": "a", "kind": "regression"}, {"name": "b", "kind": "classification", "channels": 3},
                {"name": "c", "kind": "regression", "loss": "mse"}]
IMAGE_TASKS = [{"name": "semseg", "kind": "segmentation", "channels": 5}, {"name": "depth", "kind": "depth"}]
FEATURE_LEVEL = ["mgda", "pcgrad", "upgrad", "cagrad", "aligned_mtl"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _vector_batch(step: int):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(16, 100, generator=g)
    return x, {"a": x[:, 0] + torch.sin(x[:, 1]), "b": (x[:, 2] > 0).long() + (x[:, 3] > 1).long(),
               "c": x[:, :4].sum(1)}


def _image_batch(step: int):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(2, 3, 32, 32, generator=g)
    return x, {"semseg": torch.randint(0, 5, (2, 32, 32), generator=g), "depth": torch.rand(2, 1, 32, 32, generator=g)}


def _train(model, method, batch_fn, steps: int, **kwargs):
    """Steps of the update rule the Trainer would use for ``method`` (a balancer or a scheme name)."""
    from mtlzoo.schemes import create_update_rule

    rule = create_update_rule(method, model, lambda params: torch.optim.Adam(params, lr=1e-3), **kwargs)
    history, info = [], None
    for step in range(steps):
        x, y = batch_fn(step)
        result = rule.step({"image": x, **y})
        history.append(result.losses)
        info = result.info
    return history, info


def _finite(model, history, info):
    assert all(torch.isfinite(v) for losses in history for v in losses.values())
    weights = getattr(info, "weights", None)
    assert weights is None or torch.isfinite(weights).all()
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("balancer", [*list_balancers(), "ius", "io"])
def test_every_balancer_trains_the_vector_models(family, balancer):
    torch.manual_seed(0)
    model = create_model(f"{family}_mlp", tasks=VECTOR_TASKS)
    _finite(model, *_train(model, balancer, _vector_batch, 3))


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("balancer", [*list_balancers(), "ius", "io"])
def test_every_balancer_trains_the_image_models(family, balancer):
    torch.manual_seed(0)
    model = create_model(f"{family}_tiny", tasks=IMAGE_TASKS)
    _finite(model, *_train(model, balancer, _image_batch, 2))


@pytest.mark.parametrize("name", [f"{f}_{s}" for f in FAMILIES for s in ("mlp", "tiny")])
@pytest.mark.parametrize("balancer", FEATURE_LEVEL)
def test_feature_level_balances_the_shared_expert_outputs(name, balancer):
    torch.manual_seed(0)
    model = create_model(name, tasks=VECTOR_TASKS if name.endswith("_mlp") else IMAGE_TASKS)
    batch = _vector_batch if name.endswith("_mlp") else _image_batch
    history, info = _train(model, balancer, batch, 2, level="features")
    _finite(model, history, info)
    assert all(p.grad is not None for p in model.encoder.levels[-1].shared.parameters())
    for task in model.task_names:  # gates and last-level task experts get their own task's gradient
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.task_parameters(task))


@pytest.mark.parametrize("family", FAMILIES)
def test_synthscenes_config_trains_and_the_loss_falls(family, tmp_path):
    from mtlzoo.config import load_config, resolve_config_path
    from mtlzoo.train.run import build_trainer

    overrides = [f"train.out_dir={tmp_path}", "train.progress=false", "data.kwargs={size: [32, 48], length: 8}",
                 "data.batch_size=4", "schedule.warmup_steps=0"]
    config = load_config(resolve_config_path(f"synthscenes_{family}"), overrides)
    assert config.model.name == f"{family}_tiny"
    trainer = build_trainer(config)
    batch = next(iter(trainer.loader))  # one fixed batch: the loss must fall on it
    totals = [float(sum(trainer.train_step(batch).losses.values())) for _ in range(12)]
    assert all(torch.isfinite(torch.tensor(totals)))
    assert sum(totals[-3:]) < 0.9 * sum(totals[:3]), totals


@pytest.mark.parametrize("name", ["ple_tiny", "mmoe_mlp"])
def test_diagnose_reports_expert_usage_per_task(name, tmp_path):
    import json

    from mtlzoo.diagnose import gradient_report, summarize, write_report

    torch.manual_seed(0)
    model = create_model(name, tasks=VECTOR_TASKS if name.endswith("_mlp") else IMAGE_TASKS)
    batch_fn = _vector_batch if name.endswith("_mlp") else _image_batch
    batches = [{"image": x, **y} for x, y in (batch_fn(s) for s in range(3))]
    report = gradient_report(model, batches, max_batches=3)
    usage = report["expert_usage"]
    assert set(model.task_names) <= set(usage)
    for levels in usage.values():
        for weights in levels.values():
            assert abs(sum(weights.values()) - 1.0) < 1e-5
    expected = {}  # the batch mean of the per-batch gate means, recomputed from the gates
    model.train()
    for batch in batches:
        model(batch["image"])
        for task in model.task_names:
            w = model.gate_weights()[task]["level1"]
            expected[task] = {e: expected.get(task, {}).get(e, 0.0) + v / 3 for e, v in w.items()}
    for task in model.task_names:
        for expert, value in expected[task].items():
            assert abs(usage[task]["level1"][expert] - value) < 1e-5
    text = summarize(report)
    first = model.task_names[0]
    assert f"expert usage of the {first} gate, level1: " in text
    write_report(report, tmp_path)
    assert json.loads((tmp_path / "diagnose.json").read_text())["expert_usage"] == usage


def test_mtlzoo_diagnose_command_prints_expert_usage(tmp_path, capsys):
    from mtlzoo.cli import main

    assert main(["diagnose", "mmoe_tiny", "--data-opt", "size=[32,48]", "--data-opt", "length=4", "--batch-size", "2",
                 "--batches", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for task in ("semseg", "depth", "normals", "edge", "saliency", "parts"):
        assert f"expert usage of the {task} gate, level1: shared0 " in out


def test_a_trained_dselect_model_deep_copies_between_forward_and_loss():
    import copy

    model = create_model("dselectk_mlp", tasks=VECTOR_TASKS, num_shared_experts=6, entropy_reg=0.01)
    x, y = _vector_batch(0)
    outputs = model(x)
    copy.deepcopy(model)  # EMA copies the model; a pending regulariser must not stop it
    model.losses(outputs, y)
    copy.deepcopy(model)
