"""CUDA checks, skipped without a GPU: on the device the balancers, the bad-step guard, mixed precision and
evaluation give the CPU's answers (CI has no GPU; these run on a lent machine, see benchmarks/RESULTS.md)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

import mtlzoo
from mtlzoo.balancers import create_balancer, list_balancers
from mtlzoo.schemes.base import optimizer_step

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "balancers"))
from balancer_toys import ToyModel, toy_batch  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# balancers that draw random numbers (weights, projection orders, drop masks): the device's generator differs
RANDOM = {"rlw", "pcgrad", "graddrop", "gradvac", "pomsi"}


@pytest.fixture(autouse=True)
def exact_cuda_math():
    """fp32 convolutions and matmuls without TF32, so CUDA and CPU results are comparable to ~1e-6."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _train_toy(name: str, device: str, steps: int = 4, bad_step: int | None = None,
               scaler: torch.amp.GradScaler | None = None) -> tuple[ToyModel, list[bool]]:
    torch.manual_seed(0)
    model = ToyModel().double().to(device)
    balancer = create_balancer(name, tasks=["a", "b", "c"]).to(device)
    optimizer = torch.optim.Adam(list(model.parameters()) + list(balancer.parameters()), lr=1e-2)
    x, y = (t.double().to(device) for t in toy_batch())
    taken_steps = []
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        losses, feats = model.losses(x, y)
        if step == bad_step:
            losses["b"] = losses["b"] * float("nan")
        balancer.backward(losses, model, features=feats, scaler=scaler)
        taken = optimizer_step(optimizer, scaler, clip_grad=1.0, sync=False)
        if scaler is not None:
            scaler.update()
        if taken and balancer.needs.post_step_losses:
            with torch.no_grad():
                balancer.after_step(model.losses(x, y)[0])
        taken_steps.append(bool(taken))
    return model, taken_steps


@pytest.mark.parametrize("name", list_balancers())
def test_every_balancer_updates_the_weights_on_cuda_as_on_the_cpu(name):
    cpu, _ = _train_toy(name, "cpu")
    cuda, _ = _train_toy(name, "cuda")
    for (key, a), b in zip(cpu.state_dict().items(), cuda.state_dict().values(), strict=True):
        assert torch.isfinite(b).all(), key
        if name not in RANDOM:
            torch.testing.assert_close(b.cpu(), a, rtol=1e-5, atol=1e-7, msg=f"{name}: {key}")


@pytest.mark.parametrize("name", list_balancers())
def test_a_nan_step_is_skipped_on_cuda_and_training_goes_on(name):
    clean, _ = _train_toy(name, "cuda", steps=2)
    model, taken = _train_toy(name, "cuda", steps=3, bad_step=2)
    assert taken == [True, True, False]
    for key, value in clean.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), (name, key)
    resumed, taken = _train_toy(name, "cuda", steps=4, bad_step=2)
    assert taken == [True, True, False, True]
    assert all(torch.isfinite(v).all() for v in resumed.state_dict().values())


@pytest.mark.parametrize("name", ["ew", "upgrad", "nash_mtl", "gradnorm", "famo", "aligned_mtl"])
def test_a_nan_step_under_an_fp16_grad_scaler_is_skipped(name):
    scaler = torch.amp.GradScaler("cuda")
    model, taken = _train_toy(name, "cuda", steps=4, bad_step=2, scaler=scaler)
    assert taken[2] is False and taken[3] is True
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())


def _tiny_synthscenes(split: str, length: int) -> list[dict[str, torch.Tensor]]:
    from mtlzoo.data import create_dataset

    data = create_dataset("synthscenes", split=split, length=length, size=(32, 48))
    return [data[i] for i in range(length)]


@pytest.mark.parametrize("amp", ["none", "fp16", "bf16"])
def test_training_on_cuda_lowers_the_loss_in_every_precision(tmp_path, amp):
    from mtlzoo.config import ScheduleConfig, TrainConfig
    from mtlzoo.schemes import create_update_rule
    from mtlzoo.train import EvalSetup, Trainer, seed_everything

    seed_everything(0)
    model = mtlzoo.create_model("hps_tiny", tasks="synthscenes")
    rule = create_update_rule("upgrad", model, lambda p: torch.optim.Adam(p, lr=3e-3))
    options = TrainConfig(steps=40, eval_every=40, log_every=1, out_dir=str(tmp_path / "run"), device="cuda",
                          progress=False, amp=amp)
    trainer = Trainer(model, rule, _tiny_synthscenes("train", 32), options=options,
                      evaluation=EvalSetup(_tiny_synthscenes("val", 8), "synthscenes", batch_size=8),
                      schedule=ScheduleConfig(name="poly"), batch_size=8)
    result = trainer.fit()
    totals = [sum(h["losses"].values()) for h in trainer.history]
    assert sum(totals[-5:]) < sum(totals[:5]), totals
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert set(result["metrics"]) == {t.name for t in model.tasks}


def test_evaluation_on_cuda_gives_the_cpu_metrics():
    from mtlzoo.metrics import evaluate

    torch.manual_seed(0)
    model = mtlzoo.create_model("hps_tiny", tasks="synthscenes").eval()
    data = _tiny_synthscenes("val", 16)
    batches = [{k: torch.stack([d[k] for d in data[i:i + 8]]) for k in data[0]} for i in range(0, 16, 8)]
    on_cpu = evaluate(copy.deepcopy(model), batches, protocol="synthscenes", device="cpu", progress=False)
    on_cuda = evaluate(copy.deepcopy(model), batches, protocol="synthscenes", device="cuda", progress=False)
    for task, metrics in on_cpu.items():
        for metric, value in metrics.items():
            assert on_cuda[task][metric] == pytest.approx(value, rel=1e-3, abs=1e-5), (task, metric)
