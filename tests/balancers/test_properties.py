"""Properties of the gradient balancers over generated Jacobian families (TorchJD-style)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from balancer_toys import (
    apply_to_jacobian,
    jacobian_families,
    one_thread,  # noqa: F401  (autouse fixture)
)

from mtlzoo.balancers import create_balancer
from mtlzoo.balancers.aligned_mtl import balance_matrix

GRADIENT_METHODS = ["mgda", "pcgrad", "graddrop", "gradvac", "imtl", "cagrad", "nash_mtl", "aligned_mtl",
                    "upgrad", "db_mtl", "pomsi"]
DETERMINISTIC = ["mgda", "imtl", "cagrad", "nash_mtl", "aligned_mtl", "upgrad"]
FAMILIES = jacobian_families()


def _make(name: str, **kw):
    if name == "graddrop":
        kw.setdefault("level", "parameters")
    return create_balancer(name, **kw)


def _conflict(jac: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Most negative projection of ``d`` on the rows of ``jac``, relative to ``||g_i|| ||J||`` (a numerically
    zero update counts as non-conflicting)."""
    scale = (jac.norm(dim=1) * jac.norm()).clamp_min(1e-300)
    return (jac @ d / scale).min()


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_output_is_finite(name, family):
    d = apply_to_jacobian(_make(name), FAMILIES[family])
    assert d.shape == (FAMILIES[family].shape[1],)
    assert torch.isfinite(d).all()


@pytest.mark.parametrize("family", ["random", "rank_deficient", "zero_row", "single", "ten_tasks", "conflicting",
                                    "scaled_1e-08", "scaled_1e+08", "mixed_scales"])
@pytest.mark.parametrize("name", ["mgda", "upgrad"])
def test_non_conflicting(name, family):
    jac = FAMILIES[family]
    assert _conflict(jac, apply_to_jacobian(_make(name), jac)) >= -1e-9


@pytest.mark.parametrize("family", ["random", "ten_tasks", "conflicting", "scaled_1e-08", "scaled_1e+08"])
def test_nash_is_non_conflicting_on_full_rank(family):
    jac = FAMILIES[family]
    assert _conflict(jac, apply_to_jacobian(_make("nash_mtl"), jac)) > 0


@pytest.mark.parametrize("seed", range(5))
def test_pcgrad_two_tasks_non_conflicting(seed):
    jac = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    jac[1] = -jac[0] + 0.3 * jac[1]
    assert _conflict(jac, apply_to_jacobian(_make("pcgrad"), jac, seed)) >= -1e-9


@pytest.mark.parametrize("family", ["random", "ten_tasks", "conflicting", "mixed_scales"])
def test_cagrad_worst_improvement_beats_mean_gradient(family):
    """CAGrad maximises the worst task improvement in a ball around g0 (before rescaling)."""
    jac = FAMILIES[family]
    d = apply_to_jacobian(_make("cagrad", c=0.4, rescale=0), jac)
    g0 = jac.mean(0)
    assert (jac @ d).min() >= (jac @ g0).min() - 1e-9 * jac.norm() ** 2
    assert (d - g0).norm() <= 0.4 * g0.norm() * (1 + 1e-6)


@pytest.mark.parametrize("family", ["random", "ten_tasks", "conflicting", "rank_deficient", "zero_row"])
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_permutation_invariance(name, family):
    if name == "imtl" and family in ("rank_deficient", "zero_row"):
        pytest.skip("IMTL-G's system is singular there; its regularised solution depends on the reference task")
    jac = FAMILIES[family]
    perm = torch.randperm(jac.shape[0], generator=torch.Generator().manual_seed(3))
    d = apply_to_jacobian(_make(name), jac)
    d_perm = apply_to_jacobian(_make(name), jac[perm])
    torch.testing.assert_close(d_perm, d, rtol=1e-6, atol=1e-9 * d.norm().item() + 1e-12)


@pytest.mark.parametrize("scale", [1e-8, 1e-3, 1e3, 1e8])
@pytest.mark.parametrize("name", ["mgda", "cagrad", "aligned_mtl", "upgrad", "imtl"])
def test_linear_in_global_scale(name, scale):
    jac = FAMILIES["conflicting"]
    d = apply_to_jacobian(_make(name), jac)
    torch.testing.assert_close(apply_to_jacobian(_make(name), jac * scale), d * scale, rtol=1e-6, atol=0)


def test_nash_linear_in_global_scale_without_clipping():
    jac = FAMILIES["random"]
    d = apply_to_jacobian(_make("nash_mtl", max_norm=0), jac)
    torch.testing.assert_close(apply_to_jacobian(_make("nash_mtl", max_norm=0), 1e4 * jac), 1e4 * d, rtol=1e-6,
                               atol=0)


def test_upgrad_linear_under_row_scaling():
    jac = FAMILIES["conflicting"]
    c1, c2 = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64), torch.tensor([3.0, 0.1, 1.0], dtype=torch.float64)
    d1 = apply_to_jacobian(_make("upgrad"), c1[:, None] * jac)
    d2 = apply_to_jacobian(_make("upgrad"), c2[:, None] * jac)
    d12 = apply_to_jacobian(_make("upgrad"), (2 * c1 + 0.5 * c2)[:, None] * jac)
    torch.testing.assert_close(d12, 2 * d1 + 0.5 * d2, rtol=1e-6, atol=1e-10)


def test_imtl_direction_invariant_to_task_scales():
    jac = FAMILIES["random"]
    d = apply_to_jacobian(_make("imtl"), jac)
    d_scaled = apply_to_jacobian(_make("imtl"), torch.tensor([[10.0], [0.1], [3.0]], dtype=torch.float64) * jac)
    torch.testing.assert_close(d_scaled / d_scaled.norm(), d / d.norm(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("family", ["random", "ten_tasks", "conflicting", "mixed_scales"])
def test_imtl_equal_projections_on_unit_gradients(family):
    jac = FAMILIES[family]
    d = apply_to_jacobian(_make("imtl"), jac)
    proj = (jac / jac.norm(dim=1, keepdim=True)) @ d
    torch.testing.assert_close(proj, proj.mean().expand_as(proj), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("family", ["random", "rank_deficient", "zero_row", "ten_tasks", "conflicting",
                                    "scaled_1e-08", "scaled_1e+08"])
def test_mgda_kkt(family):
    gram = (FAMILIES[family] @ FAMILIES[family].T).numpy()
    from mtlzoo.balancers.solvers import min_norm_simplex

    w = min_norm_simplex(gram)
    assert (w >= 0).all() and abs(w.sum() - 1) < 1e-9
    grad, value = gram @ w, w @ gram @ w
    tol = 1e-7 * gram.diagonal().max()
    assert (grad >= value - tol).all()
    active = w > 1e-6
    assert np.abs(grad[active] - value).max() <= tol


@pytest.mark.parametrize("family", ["random", "ten_tasks", "conflicting", "mixed_scales"])
@pytest.mark.parametrize("mode", ["min", "median", "rmse"])
def test_aligned_system_is_orthogonal_with_equal_norms(family, mode):
    gram = FAMILIES[family] @ FAMILIES[family].T
    b, cond = balance_matrix(gram.numpy(), mode)
    b, cond = torch.from_numpy(b), torch.tensor(cond, dtype=torch.float64)
    lam, vec = torch.linalg.eigh(gram)
    kept = lam > lam.max() * len(lam) * torch.finfo(torch.float32).eps
    lam_k, vec_k = lam[kept], vec[:, kept]
    expected = {"min": lam_k.min(), "rmse": lam_k.mean(),
                "median": lam_k.sqrt().sort().values[(len(lam_k) - 1) // 2] ** 2}[mode]
    aligned = b.T @ gram @ b  # = sigma^2 I on the kept subspace (all of it unless an eigenvalue is dropped)
    torch.testing.assert_close(aligned, expected * vec_k @ vec_k.T, rtol=1e-6, atol=1e-6 * expected.item())
    torch.testing.assert_close(cond, (lam.max() / lam_k.min()).sqrt(), rtol=1e-6, atol=0)
    assert kept.all() or family == "mixed_scales"


def test_aligned_mtl_matches_procrustes_svd():
    """``G B 1`` equals ``sigma_min U V^T 1`` from an SVD of the gradient matrix (independent route)."""
    jac = FAMILIES["random"]
    u, s, vt = np.linalg.svd(jac.T.numpy(), full_matrices=False)
    expected = s.min() * (u @ vt) @ np.ones(jac.shape[0])
    d = apply_to_jacobian(_make("aligned_mtl"), jac)
    np.testing.assert_allclose(d.numpy(), expected, rtol=1e-6)


def test_aligned_mtl_task_weights_are_applied_as_b_w():
    jac = FAMILIES["random"]
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    b = torch.from_numpy(balance_matrix((jac @ jac.T).numpy())[0])
    d = apply_to_jacobian(_make("aligned_mtl", task_weights=w.tolist()), jac)
    torch.testing.assert_close(d, jac.T @ (b @ w))


def test_aligned_mtl_aligned_gradients_are_not_opposed():
    """Each aligned gradient (columns of ``J^T B``) has a positive projection on the update."""
    jac = FAMILIES["conflicting"]
    b = torch.from_numpy(balance_matrix((jac @ jac.T).numpy())[0])
    d = apply_to_jacobian(_make("aligned_mtl"), jac)
    assert ((jac.T @ b).T @ d > 0).all()


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None, derandomize=True)
@given(T=st.integers(1, 6), P=st.integers(1, 8), seed=st.integers(0, 2**16), log_scale=st.floats(-8, 8))
def test_random_jacobians_upgrad_and_mgda_never_conflict(T, P, seed, log_scale):
    jac = torch.randn(T, P, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 10**log_scale
    for name in ("upgrad", "mgda"):
        d = apply_to_jacobian(_make(name), jac)
        assert torch.isfinite(d).all()
        assert _conflict(jac, d) >= -1e-7  # the solvers' 1e-10 ridge, e.g. when the dual cone is {0}
