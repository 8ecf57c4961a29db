"""jacobian_mode="auto": the calibration schedule, the memory rule (batched at most 1.15x the plain step's
peak, or no heavier than the loop), then time; CPU memory estimates on models either side of the budget."""

from __future__ import annotations

import pytest
import torch
from balancer_toys import (
    ToyModel,
    one_thread,  # noqa: F401  (autouse fixture)
    toy_batch,
)
from torch import nn

import mtlzoo.balancers.engine as engine
from mtlzoo.balancers import create_balancer
from mtlzoo.balancers.auto_jacobian import MEMORY_BUDGET, _saved_bytes, decide

MB = 2.0**20
FAST_BATCHED = {"batched": 0.01, "loop": 0.02}
FAST_LOOP = {"batched": 0.02, "loop": 0.01}


@pytest.mark.parametrize(("times", "memory", "expected"), [
    (FAST_BATCHED, {"batched": (1000 * MB, 100 * MB), "loop": (1000 * MB, 50 * MB)}, "batched"),  # within budget
    (FAST_LOOP, {"batched": (1000 * MB, 100 * MB), "loop": (1000 * MB, 50 * MB)}, "loop"),  # within, slower
    (FAST_BATCHED, {"batched": (1000 * MB, 150 * MB), "loop": (1000 * MB, 50 * MB)}, "batched"),  # at the budget
    (FAST_BATCHED, {"batched": (1000 * MB, 151 * MB), "loop": (1000 * MB, 50 * MB)}, "loop"),  # over it
    # over the budget, but the loop adds as much: memory does not separate them, time does
    (FAST_BATCHED, {"batched": (1000 * MB, 400 * MB), "loop": (1000 * MB, 400 * MB)}, "batched"),
    (FAST_BATCHED, {"batched": (1000 * MB, 300 * MB), "loop": (1000 * MB, 400 * MB)}, "batched"),
    (FAST_BATCHED, {}, "batched"),  # no memory figures (a resumed calibration): time alone
    (FAST_BATCHED, {"batched": (1000 * MB, 500 * MB)}, "batched"),
    ({}, {}, "loop"),
    # the H200 run of benchmarks/RESULTS.md (hps_resnet50, T = 3): plain step 5724 MB, loop 6133 MB, batched 6917
    # MB at the peak; base is at most the plain peak, so the batched path adds at least 1193 MB > 0.15 x 5724 MB
    (FAST_BATCHED, {"batched": (5724 * MB, 1193 * MB), "loop": (5724 * MB, 409 * MB)}, "loop"),
])
def test_decide_rules_out_a_batched_path_over_budget_and_heavier_than_the_loop(times, memory, expected):
    assert decide(times, memory) == expected
    if "batched" in times and "loop" in times:  # the rule is about the paths, not the order they were measured in
        assert decide(dict(reversed(list(times.items()))), memory) == expected


def test_decide_takes_the_budget():
    memory = {"batched": (1000 * MB, 180 * MB), "loop": (1000 * MB, 50 * MB)}
    assert MEMORY_BUDGET == 1.15
    assert decide(FAST_BATCHED, memory) == "loop"
    assert decide(FAST_BATCHED, memory, budget=1.2) == "batched"


def _record_paths(monkeypatch):
    """Wrap the engine's Jacobian calls to log which path each step took."""
    paths = []
    real_vjp, real_jac = engine.batched_vjp, engine.jacobian_and_heads

    def vjp(*args, **kwargs):
        paths.append("batched")
        return real_vjp(*args, **kwargs)

    def jac(losses, targets, own, batched, retain_graph=False):
        paths.append("batched" if batched else "loop")
        return real_jac(losses, targets, own, batched, retain_graph)

    monkeypatch.setattr(engine, "batched_vjp", vjp)
    monkeypatch.setattr(engine, "jacobian_and_heads", jac)
    return paths


@pytest.mark.parametrize("with_features", [True, False])
def test_calibration_warms_up_both_paths_measures_both_then_keeps_one(monkeypatch, with_features):
    paths = _record_paths(monkeypatch)
    model, (x, y) = ToyModel(), toy_batch()
    b = create_balancer("mgda")
    for _ in range(6):
        losses, feats = model.losses(x, y)
        b.backward(losses, model, features=feats if with_features else None)
    assert paths[:4] == ["batched", "loop", "batched", "loop"]
    assert b._auto_calls == 4 and set(b._auto_times) == set(b._auto_memory) == {"batched", "loop"}
    assert b._resolved_mode == decide(b._auto_times, b._auto_memory)
    assert paths[4:] == [b._resolved_mode] * 2


class _Net(nn.Module):
    """A shared trunk and a head per task on its output, with the MultiTaskModel parameter split."""

    def __init__(self, trunk: nn.Module, heads: dict[str, nn.Module]) -> None:
        super().__init__()
        self.trunk, self.heads = trunk, nn.ModuleDict(heads)

    def losses(self, x):
        feats = (self.trunk(x),)
        return {t: head(feats[0]).square().mean() for t, head in self.heads.items()}, feats

    def shared_parameters(self):
        return self.trunk.parameters()

    def task_parameters(self, task):
        return self.heads[task].parameters()


def _calibrate(model, x, with_features, steps=4):
    b = create_balancer("upgrad")
    for _ in range(steps):
        losses, feats = model.losses(x)
        b.backward(losses, model, features=feats if with_features else None)
    return b


def _conv_net(depth: int, tasks: str, cin: int = 2, width: int = 4) -> _Net:
    torch.manual_seed(0)
    layers = [nn.Conv2d(cin, width, 3, padding=1)]
    for _ in range(depth - 1):
        layers += [nn.GELU(), nn.Conv2d(width, width, 3, padding=1)]
    return _Net(nn.Sequential(*layers), {t: nn.Conv2d(width, 1, 1) for t in tasks})


@pytest.mark.parametrize("with_features", [True, False])
def test_cpu_estimate_rules_out_batched_when_its_rows_break_the_budget(with_features):
    """Six tasks on a shallow conv trunk: six rows of activation gradients at once are far more than 15% of what
    the step keeps, one row is not; the loop is kept whatever the times (the figure the H200 run showed)."""
    model = _conv_net(depth=6, tasks="abcdef")
    b = _calibrate(model, torch.randn(4, 2, 32, 32), with_features)
    base, batched = b._auto_memory["batched"]
    _, loop = b._auto_memory["loop"]
    assert base + loop <= MEMORY_BUDGET * base < base + batched
    assert b._resolved_mode == "loop"
    assert decide(FAST_BATCHED, b._auto_memory) == "loop"


@pytest.mark.parametrize("with_features", [True, False])
def test_cpu_estimate_lets_time_decide_when_the_jacobian_dominates_both(with_features):
    """An MLP whose parameters outweigh its activations: a 3-row Jacobian breaks the budget on either path (the loop
    even holds it twice while stacking rows), so memory does not rule the batched path out."""
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(64, 256), nn.Tanh(), nn.Linear(256, 256))
    model = _Net(trunk, {t: nn.Linear(256, 1) for t in "abc"})
    b = _calibrate(model, torch.randn(4, 64), with_features)
    base, batched = b._auto_memory["batched"]
    _, loop = b._auto_memory["loop"]
    shared = sum(p.numel() * 4 for p in trunk.parameters())
    assert batched >= 3 * shared > (MEMORY_BUDGET - 1) * base and loop >= batched
    assert b._resolved_mode == min(b._auto_times, key=b._auto_times.get)
    assert decide(FAST_BATCHED, b._auto_memory) == "batched"
    assert decide(FAST_LOOP, b._auto_memory) == "loop"


def test_cpu_estimate_keeps_batched_when_activations_dominate():
    """Two tasks on a deep narrow conv trunk: the Jacobian and two rows of activation gradients stay within 15% of
    the saved activations, so memory allows the batched path and time decides."""
    model = _conv_net(depth=16, tasks="ab")
    b = _calibrate(model, torch.randn(4, 2, 32, 32), with_features=False)
    base, extra = b._auto_memory["batched"]
    activation = 4 * 4 * 32 * 32 * 4
    assert 2 * activation < extra <= (MEMORY_BUDGET - 1) * base
    assert b._resolved_mode == min(b._auto_times, key=b._auto_times.get)
    assert decide(FAST_BATCHED, b._auto_memory) == "batched"
    assert decide(FAST_LOOP, b._auto_memory) == "loop"


def test_saved_bytes_counts_each_storage_once():
    """Parameters, their gradients and saved activations, a storage shared by several nodes counted once."""
    w = nn.Parameter(torch.randn(8, 16))
    w.grad = torch.zeros_like(w)
    x = torch.randn(32, 8)
    h = torch.tanh(x @ w)  # mm saves x and w; tanh saves its output h (32 x 16)
    loss = (h * h).sum() + h.sum()  # mul saves h twice: the same storage
    base, largest = _saved_bytes([loss], [w])
    assert largest == h.numel() * 4
    assert base == 2 * w.numel() * 4 + x.numel() * 4 + h.numel() * 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_calibration_measures_the_allocator():
    """On CUDA the figures come from the allocator: base is what was allocated when the call started (at least the
    model), extra the peak above it (at least the Jacobian the call returns); six tasks on a shallow conv trunk
    put the batched path's rows of activation gradients over the budget, as on the H200 run."""
    mlp = _Net(nn.Sequential(nn.Linear(256, 1024), nn.Tanh(), nn.Linear(1024, 1024)),
               {t: nn.Linear(1024, 1) for t in "abc"}).cuda()
    b = _calibrate(mlp, torch.randn(8, 256, device="cuda"), with_features=True)
    shared = sum(p.numel() * 4 for p in mlp.trunk.parameters())
    for mode in ("batched", "loop"):
        base, extra = b._auto_memory[mode]
        assert base >= sum(p.numel() * 4 for p in mlp.parameters()) and extra >= 3 * shared, mode
    assert b._resolved_mode == decide(b._auto_times, b._auto_memory)
    model = _conv_net(depth=6, tasks="abcdef").cuda()
    b = _calibrate(model, torch.randn(8, 2, 128, 128, device="cuda"), with_features=True)
    base, batched = b._auto_memory["batched"]
    assert base + batched > MEMORY_BUDGET * base and batched > b._auto_memory["loop"][1], b._auto_memory
    assert b._resolved_mode == "loop"
