"""The host (numpy) solvers against scipy (a test-only dependency)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from balancer_toys import one_thread  # noqa: F401  (autouse fixture)

from mtlzoo.balancers.solvers import (
    MAX_ENUMERATED_TASKS,
    _newton,
    cagrad_weights,
    min_norm_simplex,
    nash_bargaining,
    project_dual_cone,
)

scipy_optimize = pytest.importorskip("scipy.optimize")


def _gram(T: int, P: int, seed: int, rank: int | None = None) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    jac = torch.randn(rank or T, P, generator=g, dtype=torch.float64)
    if rank is not None:
        jac = torch.randn(T, rank, generator=g, dtype=torch.float64) @ jac
    jac = jac * torch.logspace(-1, 1, T, dtype=torch.float64)[:, None]
    return (jac @ jac.T).numpy()


def _slsqp(fun, x0, bounds, constraints=()):
    res = scipy_optimize.minimize(fun, x0, method="SLSQP", bounds=bounds, constraints=constraints,
                                  options={"ftol": 1e-14, "maxiter": 1000})
    return res.x


@pytest.mark.parametrize(("T", "seed", "rank"), [(2, 0, None), (3, 1, None), (5, 2, None), (6, 3, 3), (8, 4, None)])
def test_min_norm_matches_scipy(T, seed, rank):
    g = _gram(T, 12, seed, rank)
    ref = _slsqp(lambda w: w @ g @ w, np.full(T, 1 / T), [(0, 1)] * T, [{"type": "eq", "fun": lambda w: w.sum() - 1}])
    w = min_norm_simplex(g)
    assert w @ g @ w <= ref @ g @ ref + 1e-9 * np.abs(g).max()
    np.testing.assert_allclose(g @ w @ w, g @ ref @ ref, rtol=1e-5, atol=1e-10 * np.abs(g).max())


def test_min_norm_fallback_for_many_tasks():
    T = MAX_ENUMERATED_TASKS + 2
    g = _gram(T, 40, 5)
    ref = _slsqp(lambda w: w @ g @ w, np.full(T, 1 / T), [(0, 1)] * T, [{"type": "eq", "fun": lambda w: w.sum() - 1}])
    w = min_norm_simplex(g)
    assert abs(w.sum() - 1) < 1e-9 and (w >= 0).all()
    assert w @ g @ w <= ref @ g @ ref * (1 + 1e-2) + 1e-12


@pytest.mark.parametrize(("T", "seed", "rank"), [(2, 0, None), (3, 1, None), (4, 2, 2), (6, 3, None)])
def test_dual_cone_projection_matches_scipy(T, seed, rank):
    g = _gram(T, 10, seed, rank)
    lower = np.eye(T) / T
    v = project_dual_cone(g, lower)
    for i in range(T):
        u = lower[i]
        ref = _slsqp(lambda x: x @ g @ x, u + 0.1, [(ui, None) for ui in u])
        assert (v[i] >= u - 1e-12).all()
        assert v[i] @ g @ v[i] <= ref @ g @ ref + 1e-8 * np.abs(g).max()


def test_dual_cone_fallback_for_many_tasks():
    T = MAX_ENUMERATED_TASKS + 1
    gram = _gram(T, 30, 7)
    v = project_dual_cone(gram, np.eye(T) / T)
    assert (gram @ v.T >= -1e-4 * gram.diagonal().max()).all()


@pytest.mark.parametrize(("T", "seed", "c"), [(2, 0, 0.4), (3, 1, 0.4), (4, 2, 0.9), (5, 3, 0.2), (3, 4, 2.0)])
def test_cagrad_dual_matches_scipy(T, seed, c):
    gram = _gram(T, 10, seed)
    g = gram / np.sqrt(gram.diagonal()).mean() ** 2
    b = np.full(T, 1 / T)
    kappa = c * np.sqrt(b @ g @ b)
    objective = lambda w: w @ g @ b + kappa * np.sqrt(max(w @ g @ w, 0) + 1e-16)
    best = min((_slsqp(objective, x0, [(0, 1)] * T, [{"type": "eq", "fun": lambda w: w.sum() - 1}])
                for x0 in [b, *np.eye(T)]), key=objective)
    w, _ = cagrad_weights(gram, c)
    assert objective(w) <= objective(best) + 1e-7


@pytest.mark.parametrize(("T", "seed"), [(2, 0), (3, 1), (5, 2), (10, 3)])
def test_nash_solves_bargaining_system(T, seed):
    gram = _gram(T, 20, seed)
    alpha = nash_bargaining(gram, np.ones(T))
    gn = gram / np.linalg.norm(gram)
    assert (alpha > 0).all()
    np.testing.assert_allclose(gn @ alpha, 1 / alpha, rtol=1e-6, atol=0)
    ref = scipy_optimize.fsolve(lambda a: gn @ a - 1 / a, alpha * 1.1, xtol=1e-13)
    np.testing.assert_allclose(alpha, ref, rtol=1e-6)


def _twenty_newton_steps(h0: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The damped Newton iteration without the early stop (the torch path this replaced ran all 20 steps)."""
    for _ in range(20):
        r = 1 - a * (h0 @ a)
        u = np.linalg.solve(np.eye(len(a)) + h0 * np.outer(a, a), r)
        a = a + a * u / (1 + np.sqrt(max(r @ u, 0.0)))
    return a


def test_nash_early_stop_changes_nothing():
    """The solver stops once a step only rounds: the result equals twenty full steps, and a warm start
    from the solution returns it after one step."""
    gram = _gram(4, 20, 5)
    h0 = gram / np.linalg.norm(gram) + 1e-12 * np.eye(4)
    a0 = np.ones(4) * np.sqrt(4 / h0.sum())
    full = _twenty_newton_steps(h0, a0)
    np.testing.assert_allclose(_newton(h0, a0, 20), full, rtol=1e-13)
    assert not np.allclose(_newton(h0, a0, 2), full, rtol=1e-6)  # two steps are not enough from there
    np.testing.assert_allclose(nash_bargaining(gram, full, iters=1), full, rtol=1e-13)


def test_nash_non_finite_gramian_gives_nan():
    gram = np.full((3, 3), np.nan)
    assert np.isnan(nash_bargaining(gram, np.ones(3))).all()
