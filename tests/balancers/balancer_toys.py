"""Helpers for the balancer tests: a tiny two-stage model, batches and Jacobian families.

(A module of its own, not a conftest.py: ``from conftest import ...`` clashes between test folders.)
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: extra intra-op threads only add contention on a shared CPU (import it into a test module)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class ToyModel(nn.Module):
    """A shared trunk and one linear head per task, with the MultiTaskModel parameter split."""

    def __init__(self, tasks: tuple[str, ...] = ("a", "b", "c"), width: int = 8, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.trunk = nn.Sequential(nn.Linear(4, width), nn.Tanh(), nn.Linear(width, width))
        self.heads = nn.ModuleDict({t: nn.Linear(width, 1) for t in tasks})

    def encode(self, x: Tensor) -> tuple[Tensor, ...]:
        return (self.trunk(x),)

    def decode(self, features: tuple[Tensor, ...]) -> dict[str, Tensor]:
        return {t: head(features[0]) for t, head in self.heads.items()}

    def losses(self, x: Tensor, y: Tensor) -> tuple[dict[str, Tensor], tuple[Tensor, ...]]:
        feats = self.encode(x)
        out = self.decode(feats)
        return {t: ((o.squeeze(-1) - y[:, i]) ** 2).mean() for i, (t, o) in enumerate(out.items())}, feats

    def shared_parameters(self):
        return self.trunk.parameters()

    def task_parameters(self, task: str):
        return self.heads[task].parameters()


def toy_batch(n: int = 6, tasks: int = 3, seed: int = 1) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randn(n, tasks, generator=g) * torch.tensor([1.0, 10.0, 0.1])[:tasks]


def jacobian_families(seed: int = 0) -> dict[str, Tensor]:
    """Named (T, P) float64 matrices: random, rank deficient, zero row, one task, 10 tasks, scales."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    base = r(3, 20)
    fams = {
        "random": base,
        "rank_deficient": torch.stack([base[0], base[1], 2 * base[0] - base[1]]),
        "zero_row": torch.cat([base[:2], torch.zeros(1, 20, dtype=torch.float64)]),
        "single": r(1, 20),
        "ten_tasks": r(10, 30),
        "conflicting": torch.tensor([[1.0, 0.0, 0.2], [-0.9, 0.3, 0.0], [0.1, -1.0, 0.5]], dtype=torch.float64),
    }
    for s in (1e-8, 1e8):
        fams[f"scaled_{s:g}"] = base * s
    fams["mixed_scales"] = base * torch.tensor([[1e-4], [1.0], [1e4]], dtype=torch.float64)
    return fams


def apply_to_jacobian(balancer, jac: Tensor, seed: int = 0) -> Tensor:
    """Run ``balancer.backward`` on linear losses ``L_t = J_t . x`` and return ``x.grad`` (= the update)."""
    torch.manual_seed(seed)
    x = torch.randn(jac.shape[1], dtype=torch.float64, requires_grad=True)
    losses = {f"t{i}": jac[i] @ x for i in range(jac.shape[0])}
    balancer.backward(losses, [x])
    return x.grad
