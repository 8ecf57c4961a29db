"""Gated-expert models on vectors (input (B, D)), as in the papers: MLP experts, linear gates, MLP towers.

``mmoe_mlp``, ``cgc_mlp``, ``ple_mlp`` and ``dselectk_mlp`` take per-example tasks only
(classification, regression); each task's tower is the MLP head. Same trunk and parameter
split as the image models (:mod:`mtlzoo.models.gated`); models named ``*_mlp`` take vectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from mtlzoo.models.experts import Gate, GatedTrunk
from mtlzoo.models.factory import register_model
from mtlzoo.models.gated import GatedModel, gate_options
from mtlzoo.tasks import Task

TaskSpec = str | Iterable[Task | Mapping[str, Any]]


def mlp(in_features: int, hidden: Sequence[int]) -> nn.Sequential:
    """Linear + ReLU for each width in ``hidden``."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.ReLU(inplace=True)]
        in_features = width
    return nn.Sequential(*layers)


class MLPExpert(nn.Module):
    """An MLP expert; returns its output as a one-element list (the trunk's expert interface)."""

    def __init__(self, in_features: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.body = mlp(in_features, hidden)

    def forward(self, x: Tensor) -> list[Tensor]:
        return [self.body(x)]


def check_vector_options(model: nn.Module, expert_hidden: Sequence[int]) -> None:
    """Refuse dense tasks (a vector model predicts one vector per example) and an empty or non-positive
    ``expert_hidden``, each with a one-line error naming what is accepted."""
    dense = [t.name for t in model.tasks if t.dense]
    if dense:
        raise ValueError(f"{type(model).__name__} predicts one vector per example; tasks {dense} are dense "
                         "(use classification or regression tasks, or an image model)")
    if not expert_hidden or any(int(w) < 1 for w in expert_hidden):
        raise ValueError(f"expert_hidden must be a non-empty list of positive widths, got {expert_hidden!r}")


class VectorInput:
    """What a model on vectors of ``input_dim`` numbers says of its input: its shape, and a check of a batch."""

    input_dim: int
    architecture: str

    @property
    def input_shape(self) -> tuple[int]:
        """Shape of one input example (``mtlzoo.models.info`` builds its dummy input from it)."""
        return (self.input_dim,)

    def check_input(self, x: Tensor) -> None:
        """Reject inputs that are not (B, input_dim)."""
        if x.dim() != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"{self.architecture} expects vectors of shape (B, {self.input_dim}), "
                             f"got {tuple(x.shape)}")


class GatedMLP(VectorInput, GatedModel):
    """Vector MMoE / CGC / PLE / DSelect-k: MLP experts of widths ``expert_hidden`` at each level."""

    def __init__(self, tasks: TaskSpec, input_dim: int = 100, expert_hidden: Sequence[int] = (64,),
                 num_levels: int = 1, num_shared_experts: int = 4, num_task_experts: int = 0, gate: str = "softmax",
                 dselect_k: int = 2, dselect_gamma: float = 1.0, entropy_reg: float = 0.0,
                 head_width: int | None = 32) -> None:
        super().__init__(tasks, head=None, head_width=head_width, in_chans=input_dim)
        check_vector_options(self, expert_hidden)
        self.input_dim, self.expert_hidden = int(input_dim), [int(w) for w in expert_hidden]
        self._gate_kwargs = gate_options(gate, dselect_k, dselect_gamma, entropy_reg)
        self.maps_per_level = [1] * num_levels
        self.encoder = GatedTrunk(self.task_names, lambda i: MLPExpert(self._level_in(i), self.expert_hidden),
                                  self._make_gate, num_levels, num_shared_experts, num_task_experts)
        self.build_heads()

    def _level_in(self, level: int) -> int:
        return self.input_dim if level == 0 else self.expert_hidden[-1]

    def _make_gate(self, level: int, num_experts: int) -> Gate:
        return Gate(self._level_in(level), num_experts, **self._gate_kwargs)

    def head_in_channels(self, task: Task) -> list[int]:
        return [self.expert_hidden[-1]]

    def _size(self, x: Tensor) -> tuple[int, int]:
        return (1, 1)

    def _head_input(self, maps: list[Tensor]) -> list[Tensor]:
        return [maps[-1][:, :, None, None]]  # the MLP head pools (B, C, 1, 1) to (B, C)


def _register(family: str, doc: str, **layout: Any) -> None:
    def entry(tasks: TaskSpec, **kwargs: Any) -> GatedMLP:
        return GatedMLP(tasks, **{**layout, **kwargs})

    entry.__name__ = f"{family}_mlp"
    entry.__doc__ = f"{doc} Input (B, input_dim=100); MLP experts (64 units), MLP towers (32 units)."
    register_model(entry)


_register("mmoe", "MMoE on vectors (Ma et al., KDD 2018): 4 shared experts, a softmax gate per task.")
_register("cgc", "CGC on vectors (Tang et al., RecSys 2020): 1 shared + 1 task-specific expert per task.",
          num_shared_experts=1, num_task_experts=1)
_register("ple", "PLE on vectors (Tang et al., RecSys 2020): 2 extraction levels of 1 shared + 1 task expert per task.",
          num_levels=2, num_shared_experts=1, num_task_experts=1)
_register("dselectk", "DSelect-k on vectors (Hazimeh et al., NeurIPS 2021): 4 shared experts, k=2 DSelect gates.",
          gate="dselect")
