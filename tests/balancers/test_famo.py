"""FAMO against a numpy transcription of the reference update rule (Cranial-XIX/FAMO, famo.py and the trainers)."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from balancer_toys import one_thread  # noqa: F401  (autouse fixture)

import mtlzoo
from mtlzoo.balancers import create_balancer
from mtlzoo.schemes import SingleStep

TASKS = ["a", "b", "c"]
LR, GAMMA, EPS = 0.025, 0.001, 1e-8


def _loss_sequence(steps: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Losses before and after each model step: tasks decrease at different speeds, with noise."""
    rng = np.random.default_rng(0)
    before = np.exp(-np.outer(np.arange(steps), [0.02, 0.1, 0.3])) * [2.0, 1.0, 0.5] * rng.uniform(0.9, 1.1,
                                                                                                    (steps, 3))
    after = before * np.exp(-rng.uniform(0.0, 0.2, (steps, 3)))
    return before, after


class _ReferenceFAMO:
    """The reference rule: weights from ``softmax(w)`` and the current losses; ``w`` steps (Adam with L2 decay
    ``gamma``) along ``J_softmax^T (log L_prev - log L_curr)``."""

    def __init__(self, tasks: int) -> None:
        self.w, self.m, self.v, self.t = np.zeros(tasks), np.zeros(tasks), np.zeros(tasks), 0

    def weights(self, losses: np.ndarray) -> np.ndarray:
        self.prev = losses
        z = np.exp(self.w - self.w.max())
        z /= z.sum()
        d = losses + EPS
        return z / ((z / d).sum() * d)  # d/dL_t of sum_t z_t log(D_t) / sg(c)

    def update(self, curr: np.ndarray) -> None:
        delta = np.log(self.prev + EPS) - np.log(curr + EPS)
        z = np.exp(self.w - self.w.max())
        z /= z.sum()
        grad = (np.diag(z) - np.outer(z, z)) @ delta + GAMMA * self.w
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * grad
        self.v = 0.999 * self.v + 0.001 * grad**2
        self.w = self.w - LR * (self.m / (1 - 0.9**self.t)) / (np.sqrt(self.v / (1 - 0.999**self.t)) + 1e-8)


def _backward(balancer, values: np.ndarray):
    x = torch.ones(len(TASKS), requires_grad=True)
    losses = {t: x[i] * float(values[i]) for i, t in enumerate(TASKS)}
    return balancer.backward(losses, [x])


def test_same_batch_update_matches_the_reference_rule():
    before, after = _loss_sequence()
    reference, balancer = _ReferenceFAMO(3), create_balancer("famo")
    assert balancer.needs.post_step_losses
    for pre, post in zip(before, after, strict=True):
        expected = reference.weights(pre)
        info = _backward(balancer, pre)
        np.testing.assert_allclose(info.weights.numpy(), expected, rtol=1e-5, atol=1e-7)
        reference.update(post)
        balancer.after_step({t: torch.tensor(post[i]) for i, t in enumerate(TASKS)})
    np.testing.assert_allclose(balancer.logits.numpy(), reference.w, rtol=1e-5, atol=1e-7)
    assert np.ptp(reference.w) > 0.05  # the weights did move


def test_next_batch_update_uses_the_next_steps_losses():
    before, _ = _loss_sequence()
    reference, balancer = _ReferenceFAMO(3), create_balancer("famo", update="next_batch")
    assert not balancer.needs.post_step_losses
    for k, pre in enumerate(before):
        if k:
            reference.update(pre)  # L_prev: the previous batch before its step; L_curr: this batch
        np.testing.assert_allclose(_backward(balancer, pre).weights.numpy(), reference.weights(pre), rtol=1e-5,
                                   atol=1e-7)
    np.testing.assert_allclose(balancer.logits.numpy(), reference.w, rtol=1e-5, atol=1e-7)


def _batch(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(2, 3, 32, 32, generator=gen)
    semseg = torch.randint(0, 7, (2, 32, 32), generator=gen)
    return {"image": image, "semseg": semseg, "depth": 5 * torch.rand(2, 1, 32, 32, generator=gen)}


def test_single_step_re_runs_the_model_on_the_same_batch_like_the_reference_trainer():
    """The reference trainer: weighted loss, backward, optimizer step, then (no grad) the model again on the same
    batch and ``update`` with those losses (experiments/nyuv2/trainer.py); here in torch with its own Adam on w."""
    torch.manual_seed(0)
    model = mtlzoo.create_model("hps_tiny", tasks="cityscapes2")
    reference = copy.deepcopy(model)
    rule = SingleStep(create_balancer("famo"), model, lambda p: torch.optim.SGD(p, lr=0.05))
    opt = torch.optim.SGD(reference.parameters(), lr=0.05)
    w = torch.zeros(2, requires_grad=True)
    w_opt = torch.optim.Adam([w], lr=LR, weight_decay=GAMMA)
    for seed in range(4):
        batch = _batch(seed)
        rule.step(batch)
        opt.zero_grad()
        losses = reference.losses(reference(batch["image"]), batch)
        prev = torch.stack([losses["semseg"], losses["depth"]])
        z = F.softmax(w, -1).detach()
        d = prev + EPS
        ((d.log() * z / (z / d).sum().detach()).sum()).backward()
        opt.step()
        with torch.no_grad():
            new = reference.losses(reference(batch["image"]), batch)
            delta = (prev.detach() + EPS).log() - (torch.stack([new["semseg"], new["depth"]]) + EPS).log()
        (grad,) = torch.autograd.grad(F.softmax(w, -1), w, grad_outputs=delta)
        w_opt.zero_grad()
        w.grad = grad
        w_opt.step()
    torch.testing.assert_close(rule.balancer.logits, w.detach(), rtol=1e-4, atol=1e-6)
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_a_loop_without_after_step_is_warned_once():
    balancer = create_balancer("famo")
    _backward(balancer, np.ones(3))
    with pytest.warns(RuntimeWarning, match="after_step"):
        _backward(balancer, np.ones(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _backward(balancer, np.ones(3))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="update must be one of"):
        create_balancer("famo", update="same_step")
    with pytest.raises(ValueError, match="update='same_batch'"):
        create_balancer("famo", update="next_batch").bind(TASKS).after_step({t: torch.tensor(1.0) for t in TASKS})
    balancer = create_balancer("famo").bind(TASKS)
    with pytest.raises(ValueError, match=r"missing \['c'\]"):
        balancer.after_step({"a": torch.tensor(1.0), "b": torch.tensor(1.0)})
