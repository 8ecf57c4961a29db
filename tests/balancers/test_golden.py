"""Golden values from hand computations on 2x2 and 3x3 cases."""

from __future__ import annotations

import math

import pytest
import torch
from balancer_toys import (
    apply_to_jacobian,
    one_thread,  # noqa: F401  (autouse fixture)
)

from mtlzoo.balancers import create_balancer

CONFLICT_2 = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)  # g1 . g2 = -1
ORTHO_3 = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
R2 = math.sqrt(2)

GOLDEN = [
    # min ||w g1 + (1 - w) g2||^2 = (2w - 1)^2 + (1 - w)^2  ->  w = 0.6
    ("mgda", {}, CONFLICT_2, [0.2, 0.4]),
    # g1 - (-1/2) g2 = (0.5, 0.5); g2 - (-1) g1 = (0, 1); summed
    ("pcgrad", {}, CONFLICT_2, [0.5, 1.5]),
    # the two projections above averaged (each already lies in the dual cone)
    ("upgrad", {}, CONFLICT_2, [0.25, 0.75]),
    # equal projections on u1, u2 with a1 + a2 = 1  ->  a2 = sqrt(2) - 1
    ("imtl", {}, CONFLICT_2, [3 - 2 * R2, R2 - 1]),
    # orthogonal, norms 1, 2, 3: w ~ 1 / ||g||^2 = (36, 9, 4) / 49
    ("mgda", {}, ORTHO_3, [36 / 49, 18 / 49, 12 / 49]),
    # no conflict: the mean
    ("upgrad", {}, ORTHO_3, [1 / 3, 2 / 3, 1.0]),
    # no conflict: the sum
    ("pcgrad", {}, ORTHO_3, [1.0, 2.0, 3.0]),
    # alpha_t ~ 1 / ||g_t||  ->  every projection equals 6 / 11
    ("imtl", {}, ORTHO_3, [6 / 11, 6 / 11, 6 / 11]),
    # sigma_min = 1: every aligned gradient becomes a unit vector, summed
    ("aligned_mtl", {}, ORTHO_3, [1.0, 1.0, 1.0]),
    # alpha_t^2 G_tt / ||G||_F = 1 with ||G||_F = sqrt(98)  ->  d_t = 98^(1/4)
    ("nash_mtl", {"max_norm": 0}, ORTHO_3, [98**0.25] * 3),
    # same, then clipped to norm 1
    ("nash_mtl", {}, ORTHO_3, [1 / math.sqrt(3)] * 3),
    # no conflict and c = 0: CAGrad is the mean gradient
    ("cagrad", {"c": 0.0}, ORTHO_3, [1 / 3, 2 / 3, 1.0]),
]


@pytest.mark.parametrize(("name", "kwargs", "jac", "expected"), GOLDEN,
                         ids=[f"{g[0]}-{i}" for i, g in enumerate(GOLDEN)])
def test_golden(name, kwargs, jac, expected):
    d = apply_to_jacobian(create_balancer(name, **kwargs), jac)
    torch.testing.assert_close(d, torch.tensor(expected, dtype=torch.float64), rtol=1e-7, atol=1e-9)


def test_cagrad_two_orthogonal_unit_gradients():
    """g1 = e1, g2 = e2, c = 0.4: by symmetry w = (1/2, 1/2), so d = g0 (1 + c ||g0|| / ||g0||) / (1 + c^2)."""
    jac = torch.eye(2, dtype=torch.float64)
    d = apply_to_jacobian(create_balancer("cagrad", c=0.4), jac)
    torch.testing.assert_close(d, torch.full((2,), 0.5 * 1.4 / 1.16, dtype=torch.float64))


def test_aligned_mtl_two_conflicting_gradients():
    """G = [[1, -1], [-1, 2]]: B = sigma_min G^{-1/2}, update G B 1 = sigma_min G^{1/2} 1 (hand eigensystem)."""
    lam = torch.tensor([(3 - 5**0.5) / 2, (3 + 5**0.5) / 2], dtype=torch.float64)
    vec = torch.stack([torch.tensor([1.0, (1 - lam[0]).item()]), torch.tensor([1.0, (1 - lam[1]).item()])], 1)
    vec = (vec / vec.norm(dim=0)).double()
    alpha = lam[0].sqrt() * vec @ torch.diag(lam.rsqrt()) @ vec.T @ torch.ones(2, dtype=torch.float64)
    d = apply_to_jacobian(create_balancer("aligned_mtl"), CONFLICT_2)
    torch.testing.assert_close(d, CONFLICT_2.T @ alpha)


def _orders_used(seed: int, jac: torch.Tensor, exclude_self: bool) -> torch.Tensor:
    """The task orders the balancer draws inside ``apply_to_jacobian(..., seed)``."""
    from mtlzoo.balancers.pcgrad import random_orders

    torch.manual_seed(seed)
    torch.randn(jac.shape[1], dtype=torch.float64)
    return random_orders(jac.shape[0], jac.device, exclude_self)


@pytest.mark.parametrize("seed", range(3))
def test_pcgrad_matches_the_vector_algorithm(seed):
    jac = torch.randn(4, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    orders = _orders_used(seed, jac, exclude_self=False)
    expected = torch.zeros(7, dtype=torch.float64)
    for i in range(4):
        g = jac[i].clone()
        for j in orders[i].tolist():
            dot = g @ jac[j]
            if dot < 0:
                g = g - dot / (jac[j] @ jac[j]) * jac[j]
        expected += g
    torch.testing.assert_close(apply_to_jacobian(create_balancer("pcgrad"), jac, seed), expected)


@pytest.mark.parametrize("seed", range(3))
def test_gradvac_first_step_matches_the_vector_algorithm(seed):
    """Targets start at 0, so the first step lifts every negative cosine to 0 (beta only moves the targets)."""
    jac = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    orders = _orders_used(seed, jac, exclude_self=True)
    expected = torch.zeros(6, dtype=torch.float64)
    for i in range(3):
        g = jac[i].clone()
        for j in orders[i, :2].tolist():
            cos = g @ jac[j] / (g.norm() * jac[j].norm())
            if cos < 0:
                g = g + g.norm() * (-cos) / jac[j].norm() * jac[j]
        expected += g
    torch.testing.assert_close(apply_to_jacobian(create_balancer("gradvac"), jac, seed), expected)
