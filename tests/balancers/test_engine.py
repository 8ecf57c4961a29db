"""The gradient engine: what it writes into .grad, on every path."""

from __future__ import annotations

import pytest
import torch
from balancer_toys import (
    ToyModel,
    one_thread,  # noqa: F401  (autouse fixture)
    toy_batch,
)

from mtlzoo.balancers import GramianBalancer, create_balancer, list_balancers
from mtlzoo.balancers.engine import balanced_backward


class _Fixed(GramianBalancer):
    """Known weights, to check the engine's bookkeeping."""

    def __init__(self, weights, scale_heads=True, **kw):
        super().__init__(**kw)
        self.w = torch.tensor(weights, dtype=torch.float64)
        self.scale_heads = scale_heads

    def weights(self, gramian, ctx):
        self.seen_gramian = gramian
        return self.w.to(gramian.device)


def _manual(model, weights, x, y, level="parameters", scale_heads=True):
    """Reference: one backward per task, combined by hand."""
    model.zero_grad()
    losses, feats = model.losses(x, y)
    grads = {}
    if level == "parameters":
        for i, t in enumerate(losses):
            g = torch.autograd.grad(losses[t], list(model.parameters()), retain_graph=True, allow_unused=True)
            for (n, _), gi in zip(model.named_parameters(), g, strict=True):
                is_head = n.startswith(f"heads.{t}.")
                if gi is None or (n.startswith("heads.") and not is_head):
                    continue
                w = weights[i] if (not is_head or scale_heads) else 1.0
                grads[n] = grads.get(n, 0) + w * gi
        return grads
    z = [torch.autograd.grad(losses[t], feats[0], retain_graph=True)[0] for t in losses]
    combined = sum(w * zi for w, zi in zip(weights, z, strict=True))
    enc = torch.autograd.grad(feats[0], list(model.trunk.parameters()), combined, retain_graph=True)
    grads.update({f"trunk.{n}": g for (n, _), g in zip(model.trunk.named_parameters(), enc, strict=True)})
    for i, t in enumerate(losses):
        g = torch.autograd.grad(losses[t], list(model.heads[t].parameters()), retain_graph=True)
        for (n, _), gi in zip(model.heads[t].named_parameters(), g, strict=True):
            grads[f"heads.{t}.{n}"] = (weights[i] if scale_heads else 1.0) * gi
    return grads


@pytest.mark.parametrize(("level", "with_features"), [("parameters", True), ("parameters", False), ("features", True)])
@pytest.mark.parametrize("mode", ["batched", "loop"])
@pytest.mark.parametrize("scale_heads", [True, False])
def test_engine_matches_per_task_backward(level, mode, with_features, scale_heads):
    weights = [0.5, 2.0, -1.0]
    model, (x, y) = ToyModel(), toy_batch()
    expected = _manual(model, weights, x, y, level, scale_heads)
    model.zero_grad()
    losses, feats = model.losses(x, y)
    b = _Fixed(weights, scale_heads, level=level, jacobian_mode=mode)
    info = b.backward(losses, model, features=feats if with_features else None)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[n].float(), rtol=1e-5, atol=1e-6, msg=n)
    torch.testing.assert_close(info.weights, b.w)
    assert info.grad_norms.shape == (3,) and info.cosines.shape == (3, 3)


def test_gramian_is_that_of_the_shared_parameters():
    model, (x, y) = ToyModel(), toy_batch()
    losses, _ = model.losses(x, y)
    rows = []
    for t in losses:
        g = torch.autograd.grad(losses[t], list(model.trunk.parameters()), retain_graph=True)
        rows.append(torch.cat([gi.reshape(-1) for gi in g]).double())
    jac = torch.stack(rows)
    b = _Fixed([1.0, 1.0, 1.0])
    b.backward(losses, model)
    torch.testing.assert_close(b.seen_gramian, jac @ jac.T, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("level", ["parameters", "features"])
def test_plain_parameter_sequence_gives_heads_their_own_gradient(level):
    weights = [0.5, 2.0, -1.0]
    model, (x, y) = ToyModel(), toy_batch()
    expected = _manual(model, weights, x, y, level)
    model.zero_grad()
    losses, feats = model.losses(x, y)
    _Fixed(weights, level=level).backward(losses, list(model.trunk.parameters()), features=feats)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[n].float(), rtol=1e-5, atol=1e-6, msg=n)


def test_gradients_accumulate_like_backward():
    model, (x, y) = ToyModel(), toy_batch()
    b = create_balancer("mgda")
    for _ in range(2):
        losses, feats = model.losses(x, y)
        b.backward(losses, model, features=feats)
    once = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    losses, feats = model.losses(x, y)
    b.backward(losses, model, features=feats)
    for n, p in model.named_parameters():
        torch.testing.assert_close(once[n], 2 * p.grad, msg=n)


def test_unused_parameter_and_constant_loss():
    model, (x, y) = ToyModel(), toy_batch()
    unused = torch.nn.Parameter(torch.ones(3))
    losses, feats = model.losses(x, y)
    losses["c"] = torch.zeros(())  # e.g. an empty mask: no graph
    info = create_balancer("upgrad").backward(losses, list(model.trunk.parameters()) + [unused], features=feats)
    assert unused.grad is None or (unused.grad == 0).all()
    assert torch.isfinite(info.weights).all()
    assert all(torch.isfinite(p.grad).all() for p in model.trunk.parameters())


def test_batched_failure_falls_back_to_loop(monkeypatch):
    import mtlzoo.balancers.engine as engine

    def broken(*args, **kwargs):
        raise RuntimeError("Batching rule not implemented for aten::something")

    monkeypatch.setattr(engine, "batched_vjp", broken)
    model, (x, y) = ToyModel(), toy_batch()
    losses, feats = model.losses(x, y)
    b = create_balancer("pcgrad")
    with pytest.warns(RuntimeWarning, match="looped"):
        b.backward(losses, model, features=feats)
    assert b._resolved_mode == "loop"
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(RuntimeError, match="Batching rule"):
        losses, feats = model.losses(x, y)
        create_balancer("pcgrad", jacobian_mode="batched").backward(losses, model, features=feats)


def test_scaler_unscales_before_combining_and_skips_on_inf():
    model, (x, y) = ToyModel(), toy_batch()
    losses, feats = model.losses(x, y)
    ref = create_balancer("cagrad")
    info_ref = ref.backward(losses, model, features=feats)
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    losses, feats = model.losses(x, y)
    info = create_balancer("cagrad").backward(losses, model, features=feats, scaler=scaler)
    torch.testing.assert_close(info.weights, info_ref.weights)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad / 1024.0, ref_grads[n], rtol=1e-5, atol=1e-7, msg=n)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    model.zero_grad()
    losses, feats = model.losses(x, y)
    losses["a"] = losses["a"] * float("inf")
    create_balancer("cagrad").backward(losses, model, features=feats, scaler=scaler)
    scaler.step(opt)
    scaler.update()
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    assert scaler.get_scale() < 1024.0


@pytest.mark.parametrize("name", ["ew", "mgda", "aligned_mtl_ub", "graddrop", "db_mtl"])
@pytest.mark.parametrize("with_scaler", [False, True])
def test_autocast_bfloat16(name, with_scaler):
    model, (x, y) = ToyModel(), toy_batch()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16) if with_scaler else None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses, feats = model.losses(x, y)
        info = create_balancer(name).backward(losses, model, features=feats, scaler=scaler)
    assert torch.isfinite(info.weights).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="Did you mean: cagrad"):
        create_balancer("cagard")
    with pytest.raises(ValueError, match="level"):
        create_balancer("ew", level="features")
    with pytest.raises(TypeError, match="bad arguments"):
        create_balancer("mgda", colour="red")
    model, (x, y) = ToyModel(), toy_batch()
    losses, _ = model.losses(x, y)
    with pytest.raises(ValueError, match="needs the shared features"):
        create_balancer("mgda_ub").backward(losses, model)
    b = create_balancer("ew").bind(["a", "b", "c"])
    with pytest.raises(ValueError, match="bound to tasks"):
        b.backward({"a": losses["a"], "z": losses["b"]}, model)
    with pytest.raises(TypeError, match="shared_parameters"):
        create_balancer("mgda").backward(losses, torch.nn.Linear(2, 2))


def test_balanced_backward_is_the_method():
    model, (x, y) = ToyModel(), toy_batch()
    losses, feats = model.losses(x, y)
    info = balanced_backward(create_balancer("ew"), losses, model)
    assert info.tasks == ["a", "b", "c"] and set(info.as_dict()) == {"finite", "weight/a", "weight/b", "weight/c"}
    assert len(list_balancers()) >= 22


class _MultiScale(ToyModel):
    """Two feature tensors, the second computed from the first; heads read both."""

    def __init__(self):
        super().__init__()
        self.stage2 = torch.nn.Linear(8, 8)

    def encode(self, x):
        f0 = self.trunk(x)
        return (f0, torch.tanh(self.stage2(f0)))

    def decode(self, features):
        return {t: head(features[0] + features[1]) for t, head in self.heads.items()}

    def shared_parameters(self):
        return list(self.trunk.parameters()) + list(self.stage2.parameters())


@pytest.mark.parametrize("level", ["parameters", "features"])
@pytest.mark.parametrize("mode", ["batched", "loop"])
def test_dependent_multiscale_features_are_not_double_counted(level, mode):
    weights = [0.5, 2.0, -1.0]
    model, (x, y) = _MultiScale(), toy_batch()
    losses, _ = model.losses(x, y)
    expected = {n: 0 for n, _ in model.named_parameters()}
    for i, t in enumerate(losses):
        g = torch.autograd.grad(losses[t], list(model.parameters()), retain_graph=True, allow_unused=True)
        for (n, _), gi in zip(model.named_parameters(), g, strict=True):
            if gi is not None:
                expected[n] = expected[n] + weights[i] * gi
    losses, feats = model.losses(x, y)
    _Fixed(weights, level=level, jacobian_mode=mode).backward(losses, model, features=feats)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[n], rtol=1e-5, atol=1e-6, msg=n)
