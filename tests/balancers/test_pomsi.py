"""POMSI (reconstruction, methods.md 3.2) against hand-written transcriptions of its two steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from balancer_toys import (
    apply_to_jacobian,
    one_thread,  # noqa: F401  (autouse fixture)
)

from mtlzoo.balancers import StepContext, create_balancer
from mtlzoo.balancers.pcgrad import random_orders


def _orders_drawn(seed: int, jac: torch.Tensor) -> list[list[int]]:
    """The task orders drawn inside ``apply_to_jacobian(..., seed)`` (the RNG only), each row without its own task."""
    torch.manual_seed(seed)
    torch.randn(jac.shape[1], dtype=torch.float64)
    orders = random_orders(jac.shape[0], jac.device, exclude_self=True)
    return [[j for j in row.tolist() if j != i] for i, row in enumerate(orders)]


def _project_off_others(jac: torch.Tensor, i: int, order: list[int]) -> torch.Tensor:
    g = jac[i].clone()
    for j in order:
        dot = g @ jac[j]
        if dot < 0:
            g = g - dot / (jac[j] @ jac[j]) * jac[j]
    return g


@pytest.mark.parametrize("seed", [178, 312])
def test_projection_visits_only_the_other_tasks(seed):
    """Draws where the projected gradient conflicts with its own original: a visit to the task itself would
    project it once more (methods.md 3.2: "iterating over the other tasks j != t, never t itself")."""
    jac = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    orders = _orders_drawn(seed, jac)
    projected = [_project_off_others(jac, i, orders[i]) for i in range(3)]
    assert min(float(g @ jac[i]) for i, g in enumerate(projected)) < 0, "not a self-conflicting draw"
    update = apply_to_jacobian(create_balancer("pomsi"), jac, seed)  # phi = 0 at the first step: lambda = 1
    torch.testing.assert_close(update, sum(projected), rtol=1e-10, atol=1e-12)


def test_orthogonal_gradients_of_norms_1_10_100_end_with_equal_magnitudes():
    """All cosines 0, so h is the same for every task and the targets are the mean magnitude (methods.md 3.2)."""
    balancer = create_balancer("pomsi").bind(["a", "b", "c"])
    norms = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)
    gramian = torch.diag(norms.square())
    ctx = StepContext(["a", "b", "c"], norms, [], norms, [], None, "parameters")
    for _ in range(3000):
        balancer.weights(gramian, ctx)
    magnitudes = 3 * torch.softmax(balancer.phi, 0) * norms
    assert float(magnitudes.max() / magnitudes.min()) < 1.03, magnitudes


def _transcribed_run(jacobians: list[np.ndarray], steps: int, lr: float, similarity: str, kappa: float
                     ) -> tuple[list[np.ndarray], np.ndarray]:
    """methods.md 3.2 step by step in numpy (two tasks, so the projection order is fixed): the update of every
    step and the final phi. Gradients are divided by their RMS norm, as the package's normalised Gramian is."""
    T = jacobians[0].shape[0]
    phi, m, v = np.zeros(T), np.zeros(T), np.zeros(T)
    updates = []
    for k in range(steps):
        jac = jacobians[k % len(jacobians)]
        jac = jac / np.sqrt((jac**2).sum(1).mean())
        g_tilde = np.stack([_np_project(jac, i) for i in range(T)])
        n = np.linalg.norm(g_tilde, axis=1)
        p = np.exp(phi - phi.max())
        p /= p.sum()
        lam = T * p
        updates.append(lam @ g_tilde)
        unit = jac / np.linalg.norm(jac, axis=1, keepdims=True)
        cos = unit @ unit.T
        rho = (cos.sum(1) - 1) / (T - 1)
        h = (1 + rho) / 2 if similarity == "linear" else np.exp(-kappa * (1 - rho))
        mags = lam * n
        target = mags.mean() * h / h.mean()
        s = np.sign(mags - target)
        grad = s * n * lam - p * (s * n * lam).sum()  # d/dphi of sum_t |lam_t n_t - target_t|, lam = T softmax(phi)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        phi = phi - lr * (m / (1 - 0.9 ** (k + 1))) / (np.sqrt(v / (1 - 0.999 ** (k + 1))) + 1e-8)
    return updates, phi


def _np_project(jac: np.ndarray, i: int) -> np.ndarray:
    g = jac[i].copy()
    for j in range(jac.shape[0]):
        if j != i and g @ jac[j] < 0:
            g = g - (g @ jac[j]) / (jac[j] @ jac[j]) * jac[j]
    return g


@pytest.mark.parametrize("similarity", ["linear", "exp"])
def test_weights_follow_a_numpy_transcription_of_the_reconstruction(similarity):
    rng = np.random.default_rng(0)
    jacobians = [rng.normal(size=(2, 6)) * np.array([[1.0], [20.0]]) for _ in range(3)]
    jacobians[0][1] = -jacobians[0][0] * 20 + jacobians[0][1] * 0.5  # one conflicting pair: projections happen
    expected_updates, expected_phi = _transcribed_run(jacobians, 40, 0.025, similarity, 0.7)
    balancer = create_balancer("pomsi", similarity=similarity, kappa=0.7)
    for k, expected in enumerate(expected_updates):
        jac = torch.from_numpy(jacobians[k % 3])
        scale = float(jac.square().sum(1).mean().sqrt())  # the package's update is in normalised units
        update = apply_to_jacobian(balancer, jac, k) / scale
        np.testing.assert_allclose(update.numpy(), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(balancer.phi.numpy(), expected_phi, rtol=1e-9, atol=1e-12)


def test_opposite_gradients_give_finite_equal_targets():
    """Two opposite gradients: h = (1 + rho) / 2 is zero for both, so the targets fall back to the mean."""
    jac = torch.tensor([[1.0, 0.0], [-3.0, 0.0]], dtype=torch.float64)
    balancer = create_balancer("pomsi")
    for seed in range(3):
        assert torch.isfinite(apply_to_jacobian(balancer, jac, seed)).all()
    assert torch.isfinite(balancer.phi).all()


def test_rejects_an_unknown_similarity_map():
    with pytest.raises(ValueError, match="similarity must be one of"):
        create_balancer("pomsi", similarity="cosine")
