"""Gates and extraction levels shared by the gated-expert families (MMoE, CGC, PLE, DSelect-k).

A *gate* maps its input to mixture weights over E experts: the MMoE softmax gate
``softmax(W x)`` (Ma et al., KDD 2018) or the DSelect-k gate (Hazimeh et al., NeurIPS 2021).
An *extraction level* (Tang et al., RecSys 2020) holds shared experts, task-specific experts and
one gate per task (plus a shared gate below the last level). MMoE and DSelect-k are one level
without task experts, CGC one level with them, PLE several levels. Experts return a list of
tensors (the feature maps of their encoder stages, or one vector), mixed element by element.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

GATES = ("softmax", "dselect")


def smooth_step(t: Tensor, gamma: float) -> Tensor:
    """The cubic smooth-step of DSelect-k: 0 below -gamma/2, 1 above gamma/2, C^1 in between."""
    cubic = -2.0 / gamma**3 * t**3 + 3.0 / (2.0 * gamma) * t + 0.5
    return torch.where(t <= -gamma / 2, torch.zeros_like(t), torch.where(t >= gamma / 2, torch.ones_like(t), cubic))


def binary_codes(num_experts: int) -> Tensor:
    """(num_experts, ceil(log2 num_experts)) bools: row i is i in binary, most significant bit first."""
    bits = max(1, math.ceil(math.log2(num_experts)))
    rows = [[(i >> (bits - 1 - j)) & 1 for j in range(bits)] for i in range(num_experts)]
    return torch.tensor(rows, dtype=torch.bool)


class SoftmaxSelector(nn.Module):
    """MMoE gate on a vector: ``softmax(W x + b)`` over the experts."""

    def __init__(self, in_features: int, num_experts: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_experts)

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.linear(x), dim=-1)

    def regularization(self) -> Tensor | None:
        return None


class DSelectKSelector(nn.Module):
    """Example-conditioned DSelect-k gate: k single-expert selectors mixed by a softmax.

    Selector i has logits ``z_i = Z_i x`` (m = ceil(log2 E) of them); its weight on expert l is
    ``prod_j S(z_ij)`` if bit j of l is 1 else ``1 - S(z_ij)`` (S: smooth step); the gate is
    ``sum_i softmax(A x)_i r(z_i)``. Initialisation as the authors' code: z uniform in
    +-gamma/100, A uniform in [-0.05, 0.05].
    """

    def __init__(self, in_features: int, num_experts: int, k: int = 2, gamma: float = 1.0,
                 entropy_reg: float = 0.0) -> None:
        super().__init__()
        if num_experts < 2:
            raise ValueError(f"DSelect-k needs at least 2 experts, got num_experts={num_experts}")
        if not 1 <= k <= num_experts:
            raise ValueError(f"DSelect-k: k must lie in [1, num_experts={num_experts}], got {k!r}")
        if gamma <= 0 or entropy_reg < 0:
            raise ValueError(f"DSelect-k: gamma must be > 0 and entropy_reg >= 0, got {gamma!r}, {entropy_reg!r}")
        self.k, self.gamma, self.entropy_reg = k, float(gamma), float(entropy_reg)
        self.register_buffer("codes", binary_codes(num_experts), persistent=False)
        self.bits = self.codes.shape[1]
        self.z_logits = nn.Linear(in_features, k * self.bits)
        self.w_logits = nn.Linear(in_features, k)
        for layer, bound in ((self.z_logits, self.gamma / 100), (self.w_logits, 0.05)):
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.uniform_(layer.bias, -bound, bound)
        self._selectors: Tensor | None = None

    def selector_outputs(self, x: Tensor) -> Tensor:
        """(B, k, E) weights of the k single-expert selectors."""
        s = smooth_step(self.z_logits(x).view(-1, self.k, 1, self.bits), self.gamma)
        return torch.where(self.codes, s, 1 - s).prod(dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        selectors = self.selector_outputs(x)
        needed = self.training and (self.entropy_reg > 0 or self.codes.shape[0] != 2**self.bits)
        self._selectors = selectors if needed else None  # kept for regularization() only when it has a term
        mix = torch.softmax(self.w_logits(x), dim=-1)
        return (mix.unsqueeze(-1) * selectors).sum(dim=1)

    def __getstate__(self) -> dict:
        """Copies and pickles drop the pending selector outputs (a graph tensor; EMA deep-copies the model)."""
        return {**self.__dict__, "_selectors": None}

    def regularization(self) -> Tensor | None:
        """Entropy of each selector (times ``entropy_reg``), plus, when E is not a power of 2, the
        authors' ``1 / sum(reachable weights)`` term (shifted by -1 so it is 0 when nothing leaks);
        batch mean. None outside training, before a forward, or when neither term applies."""
        selectors, self._selectors = self._selectors, None
        if selectors is None:
            return None
        total = selectors.new_zeros(())
        if self.entropy_reg > 0:
            entropy = -(selectors * torch.log(selectors.clamp_min(1e-12))).sum(dim=-1)
            total = total + self.entropy_reg * entropy.sum(dim=-1).mean()
        if self.codes.shape[0] != 2**self.bits:
            total = total + (1.0 / selectors.sum(dim=-1).clamp_min(1e-12) - 1.0).sum(dim=-1).mean()
        return total


class Gate(nn.Module):
    """A selector on the gate input: vectors as they are, feature maps average-pooled to 4x4 and flattened."""

    def __init__(self, in_features: int, num_experts: int, kind: str = "softmax", spatial: bool = False,
                 **dselect: float) -> None:
        super().__init__()
        if kind not in GATES:
            raise ValueError(f"gate must be one of {list(GATES)}, got {kind!r}")
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten()) if spatial else nn.Identity()
        features = in_features * 16 if spatial else in_features
        self.selector = (SoftmaxSelector(features, num_experts) if kind == "softmax"
                         else DSelectKSelector(features, num_experts, **dselect))
        self.register_buffer("last_weights", torch.full((num_experts,), 1.0 / num_experts), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        weights = self.selector(self.pool(x))
        self.last_weights = weights.detach().mean(dim=0)
        return weights


def mix(weights: Tensor, experts: Sequence[Sequence[Tensor]]) -> list[Tensor]:
    """Element-wise mixture of expert outputs (each a list of tensors) with (B, E) weights."""
    out = []
    for j in range(len(experts[0])):
        stacked = torch.stack([e[j] for e in experts], dim=1)
        w = weights.view(*weights.shape, *([1] * (stacked.dim() - 2)))
        out.append((w * stacked).sum(dim=1))
    return out


class ExtractionLevel(nn.Module):
    """Shared experts, ``num_task`` experts per task, a gate per task and an optional shared gate."""

    def __init__(self, tasks: Sequence[str], make_expert: Callable[[], nn.Module], make_gate: Callable[[int], Gate],
                 num_shared: int, num_task: int, shared_gate: bool) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.shared = nn.ModuleList([make_expert() for _ in range(num_shared)])
        self.task_experts = nn.ModuleDict({t: nn.ModuleList([make_expert() for _ in range(num_task)])
                                           for t in self.tasks})
        self.gates = nn.ModuleDict({t: make_gate(num_task + num_shared) for t in self.tasks})
        self.shared_gate = make_gate(num_shared + len(self.tasks) * num_task) if shared_gate else None

    def expert_names(self, task: str | None) -> list[str]:
        """Names of the experts the gate of ``task`` (None: the shared gate) mixes, in mixing order."""
        shared = [f"shared{i}" for i in range(len(self.shared))]
        if task is None:
            return [f"{t}{i}" for t in self.tasks for i in range(len(self.task_experts[t]))] + shared
        return [f"{task}{i}" for i in range(len(self.task_experts[task]))] + shared

    def run_shared(self, x: Tensor) -> list[list[Tensor]]:
        """Outputs of the shared experts on the shared input."""
        return [expert(x) for expert in self.shared]

    def run_task(self, task: str, x: Tensor, shared_outputs: list[list[Tensor]]) -> tuple[list[list[Tensor]],
                                                                                            list[Tensor]]:
        """The task's own expert outputs and its gated mixture (over its experts, then the shared ones)."""
        own = [expert(x) for expert in self.task_experts[task]]
        return own, mix(self.gates[task](x), own + shared_outputs)

    def run_shared_gate(self, x: Tensor, task_outputs: Sequence[list[list[Tensor]]],
                        shared_outputs: list[list[Tensor]]) -> list[Tensor]:
        """The shared gate's mixture over every expert of the level (all tasks', then the shared ones)."""
        experts = [out for outputs in task_outputs for out in outputs] + shared_outputs
        return mix(self.shared_gate(x), experts)


class GatedTrunk(nn.Module):
    """Stacked extraction levels, split where the shared computation ends.

    ``forward`` runs every level below the last and the last level's shared experts; what it
    returns depends on no task's private parameters except each task's gate of the level below
    the last (whose mixture only that task reads). :meth:`task` runs the last level for one task.
    """

    def __init__(self, tasks: Sequence[str], make_expert: Callable[[int], nn.Module],
                 make_gate: Callable[[int, int], Gate], num_levels: int, num_shared: int, num_task: int) -> None:
        super().__init__()
        if num_levels < 1 or num_shared < 1 or num_task < 0:
            raise ValueError(f"gated experts need num_levels >= 1, num_shared_experts >= 1 and "
                             f"num_task_experts >= 0; got {num_levels}, {num_shared}, {num_task}")
        self.levels = nn.ModuleList([
            ExtractionLevel(tasks, lambda i=i: make_expert(i), lambda e, i=i: make_gate(i, e), num_shared, num_task,
                            shared_gate=i < num_levels - 1)
            for i in range(num_levels)])

    def forward(self, x: Tensor) -> tuple[dict[str, list[Tensor]], list[list[Tensor]]]:
        """Each task's mixtures from the levels below the last, and the last level's shared expert outputs."""
        tasks = self.levels[0].tasks
        inputs, shared_in = dict.fromkeys(tasks, x), x
        prefix: dict[str, list[Tensor]] = {t: [] for t in tasks}
        for level in self.levels[:-1]:
            shared_outputs = level.run_shared(shared_in)
            own = {}
            for t in tasks:
                own[t], mixed = level.run_task(t, inputs[t], shared_outputs)
                prefix[t] += mixed
                inputs[t] = mixed[-1]
            shared_in = level.run_shared_gate(shared_in, [own[t] for t in tasks], shared_outputs)[-1]
        return prefix, self.levels[-1].run_shared(shared_in)

    def task(self, task: str, x: Tensor, prefix: list[Tensor], shared_last: list[list[Tensor]]) -> list[Tensor]:
        """The task's full output list: its lower-level mixtures, then its last-level mixture."""
        _, mixed = self.levels[-1].run_task(task, prefix[-1] if prefix else x, shared_last)
        return prefix + mixed

    def private_modules(self, task: str) -> list[nn.Module]:
        """What only ``task``'s output depends on: its last-level experts and gate, and its gate one level below."""
        last = self.levels[-1]
        modules = [last.task_experts[task], last.gates[task]]
        if len(self.levels) > 1:
            modules.append(self.levels[-2].gates[task])
        return modules

    def gate_weights(self) -> dict[str, dict[str, dict[str, float]]]:
        """Batch-mean gate weights of the last forward: {gate: {level: {expert: weight}}}, gate = task or "(shared)"."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for i, level in enumerate(self.levels):
            gates = [(t, level.gates[t]) for t in level.tasks]
            if level.shared_gate is not None:
                gates.append((None, level.shared_gate))
            for task, gate in gates:
                names = level.expert_names(task)
                out.setdefault(task or "(shared)", {})[f"level{i + 1}"] = dict(zip(names, gate.last_weights.tolist(),
                                                                                  strict=True))
        return out

    def regularization(self, task: str) -> Tensor | None:
        """Sum of the DSelect-k regularisers of ``task``'s gates from the last training forward (None if none)."""
        terms = [level.gates[task].selector.regularization() for level in self.levels]
        terms = [t for t in terms if t is not None]
        return sum(terms) if terms else None
