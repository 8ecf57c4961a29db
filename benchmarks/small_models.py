"""Per-step time of the gradient balancers on two small models, where fixed per-call cost dominates.

Used by ``benchmarks/balancers.py --model mlp`` and ``--model toy``. Each method step (mtlzoo and,
when installed, TorchJD) is paired with a plain summed-loss step (``sum(losses).backward()``); one
loop runs the pairs of both libraries in turn (plain, mtlzoo, plain, TorchJD, ...), so all see the
same machine load, and the figure is the median of the per-pair ratios.

* ``mlp``: a 64-256-128 ReLU trunk with 3 linear regression heads (128 -> 1), batch 256, MSE losses;
  the trunk output is the shared representation (``features``) for both libraries.
* ``toy``: the two-parameter two-task problem of the Nash-MTL paper (Navon et al., ICML 2022, after
  Liu et al.'s CAGrad toy): ``x = (x1, x2)`` is the only (shared) parameter and, with
  ``c1 = max(tanh(x2 / 2), 0)``, ``c2 = max(tanh(-x2 / 2), 0)``,

  ``f1 = 0.1 * (c1 * (log(max(|0.5 (-x1 - 7) - tanh(-x2)|, 5e-6)) + 6)
  + c2 * (((-x1 + 7)^2 + 0.1 (-x2 - 8)^2) / 10 - 20))``

  ``f2 = c1 * (log(max(|0.5 (-x1 + 3) + tanh(-x2) + 2|, 5e-6)) + 6)
  + c2 * (((-x1 - 7)^2 + 0.1 (-x2 - 8)^2) / 10 - 20)``

  (the 0.1 makes the two losses' scales differ, as in that paper), started at ``x = (-8.5, 7.5)``.
  Nothing is computed but these two scalars, so the time is the libraries' own per-call cost.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn

# mtlzoo name -> (TorchJD aggregator, its keyword arguments); defaults matched to mtlzoo's
TORCHJD = {"upgrad": ("UPGrad", {}), "mgda": ("MGDA", {}), "nash_mtl": ("NashMTL", {"n_tasks": None}),
           "aligned_mtl": ("AlignedMTL", {}), "pcgrad": ("PCGrad", {}), "imtl": ("IMTLG", {}),
           "cagrad": ("CAGrad", {"c": 0.4})}
_LOWER = 5e-6


class MLP(nn.Module):
    """A 64-256-128 ReLU trunk and one linear head per regression task."""

    def __init__(self, tasks: tuple[str, ...] = ("t0", "t1", "t2")) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU())
        self.heads = nn.ModuleDict({t: nn.Linear(128, 1) for t in tasks})

    def shared_parameters(self):
        return self.trunk.parameters()

    def task_parameters(self, task: str):
        return self.heads[task].parameters()

    def forward_losses(self, batch: tuple[Tensor, dict[str, Tensor]]) -> tuple[dict[str, Tensor], Tensor]:
        x, y = batch
        rep = self.trunk(x)
        return {t: nn.functional.mse_loss(h(rep).squeeze(-1), y[t]) for t, h in self.heads.items()}, rep


class Toy(nn.Module):
    """The Nash-MTL paper's two-parameter, two-task problem (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.x = nn.Parameter(torch.tensor([-8.5, 7.5]))

    def shared_parameters(self):
        return iter([self.x])

    def task_parameters(self, task: str):
        return iter([])

    def forward_losses(self, batch: None) -> tuple[dict[str, Tensor], None]:
        x1, x2 = self.x[0], self.x[1]
        c1 = torch.tanh(x2 * 0.5).clamp_min(0)
        c2 = torch.tanh(-x2 * 0.5).clamp_min(0)
        f1 = (0.5 * (-x1 - 7) - torch.tanh(-x2)).abs().clamp_min(_LOWER).log() + 6
        f2 = (0.5 * (-x1 + 3) + torch.tanh(-x2) + 2).abs().clamp_min(_LOWER).log() + 6
        f1_sq = ((-x1 + 7).pow(2) + 0.1 * (-x2 - 8).pow(2)) / 10 - 20
        f2_sq = ((-x1 - 7).pow(2) + 0.1 * (-x2 - 8).pow(2)) / 10 - 20
        return {"f1": 0.1 * (f1 * c1 + f1_sq * c2), "f2": f2 * c1 + f2_sq * c2}, None


def build(name: str) -> tuple[nn.Module, object, list[str]]:
    """The model, its fixed batch and its task names."""
    torch.manual_seed(0)
    if name == "toy":
        return Toy(), None, ["f1", "f2"]
    model = MLP()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 64, generator=g)
    y = {t: torch.randn(256, generator=g) for t in model.heads}
    return model, (x, y), list(model.heads)


def _step(model: nn.Module, batch: object, tasks: list[str], method: str, library: str) -> Callable[[], None]:
    """One training step (forward, backward, Adam step) of ``method`` as a closure."""
    if library == "plain":
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def plain() -> None:
            opt.zero_grad(set_to_none=True)
            losses, _ = model.forward_losses(batch)
            torch.stack(list(losses.values())).sum().backward()
            opt.step()
        return plain
    if library == "torchjd":
        return _torchjd_step(model, batch, tasks, method)
    from mtlzoo.balancers import create_balancer

    balancer = create_balancer(method, tasks=tasks)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    features = isinstance(model, MLP)

    def ours() -> None:
        opt.zero_grad(set_to_none=True)
        losses, rep = model.forward_losses(batch)
        balancer.backward(losses, model, features=[rep] if features else None)
        opt.step()
    return ours


def _torchjd_step(model: nn.Module, batch: object, tasks: list[str], method: str) -> Callable[[], None]:
    import torchjd.aggregation as agg
    from torchjd.autojac import backward, jac_to_grad, mtl_backward

    warnings.filterwarnings("ignore", message=".*not DPP.*")  # cvxpy, inside TorchJD's NashMTL
    cls, kwargs = TORCHJD[method]
    kwargs = {k: len(tasks) if v is None else v for k, v in kwargs.items()}
    aggregator = getattr(agg, cls)(**kwargs)
    shared = list(model.shared_parameters())
    heads = [list(model.task_parameters(t)) for t in tasks]
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def theirs() -> None:
        opt.zero_grad(set_to_none=True)
        losses, rep = model.forward_losses(batch)
        if rep is None:
            backward(list(losses.values()), inputs=shared)
        else:
            mtl_backward(list(losses.values()), features=rep, tasks_params=heads, shared_params=shared)
        jac_to_grad(shared, aggregator)
        opt.step()
    return theirs


def paired(name: str, method: str, libraries: list[str], steps: int = 60, warmup: int = 10,
           clock: Callable[[], float] = time.perf_counter) -> dict[str, dict]:
    """Per library: median ms per step of ``method``, of the plain steps paired with it, and the median of
    the paired ratios. Every round runs ``plain, library`` for each library (the libraries' order
    alternates between rounds), so all of them see the same machine load. ``clock`` is wall time by default;
    ``time.process_time`` counts this process's CPU time only, which other jobs on a shared machine disturb less."""
    model, batch, tasks = build(name)
    base = _step(model, batch, tasks, "sum", "plain")
    steps_of = {lib: _step(model, batch, tasks, method, lib) for lib in libraries}
    pairs: dict[str, list[tuple[float, float]]] = {lib: [] for lib in libraries}
    for i in range(warmup + steps):
        for lib in libraries if i % 2 == 0 else libraries[::-1]:
            times = []
            for fn in (base, steps_of[lib]):
                start = clock()
                fn()
                times.append(clock() - start)
            if i >= warmup:
                pairs[lib].append((times[0], times[1]))
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return {lib: {"ms": 1000 * med([t for _, t in p]), "plain_ms": 1000 * med([b for b, _ in p]),
                  "ratio": med([t / b for b, t in p])} for lib, p in pairs.items()}


def table(name: str, methods: list[str], steps: int = 60, torchjd: bool = True,
          clock: Callable[[], float] = time.perf_counter) -> str:
    """A markdown table of both libraries' figures for every method, all measured in this one run
    (rows also go to stderr as they are measured)."""
    rows = ["| method | mtlzoo ms/step | mtlzoo x plain | TorchJD ms/step | TorchJD x plain | plain ms/step |",
            "|---|---|---|---|---|---|"]
    for method in methods:
        libraries = ["mtlzoo", "torchjd"] if torchjd and method in TORCHJD else ["mtlzoo"]
        res = paired(name, method, libraries, steps, clock=clock)
        ours, theirs = res["mtlzoo"], res.get("torchjd")
        cells = f"{theirs['ms']:.2f} | {theirs['ratio']:.2f}x" if theirs else "- | -"
        plain = f"{ours['plain_ms']:.2f}" + (f" / {theirs['plain_ms']:.2f}" if theirs else "")
        rows.append(f"| {method} | {ours['ms']:.2f} | {ours['ratio']:.2f}x | {cells} | {plain} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return "\n".join(rows)
