"""Single-task baselines of the vector families (``*_mlp``): one network per task, each the very network that
task reads in the multi-task model, with nothing shared.

In a gated model on vectors (:mod:`mtlzoo.models.gated_mlp`) a task's prediction is its tower applied to its
gate's mixture of the experts; ``stl_mlp`` gives every task its own copy of those experts, its gate and its
tower, i.e. the multi-task model built for that task alone. This is the single-task baseline of Vandenhende et
al.'s delta_m ("Multi-Task Learning for Dense Prediction Tasks: A Survey", TPAMI: each task trained alone on the
same backbone and head) and the vector form of ``stl_tiny`` (one ``hps_tiny`` network per task): each task gets
the capacity it has in the multi-task model, so delta_m measures what sharing does, not what capacity does. One
small MLP per task (a single expert) would give each task an eighth of the units its gate reads in the 8-expert
MMoE recipe, and delta_m would credit the multi-task models with capacity rather than with sharing.

The layout options are the gated models' (``num_levels``, ``num_shared_experts``, ``num_task_experts``), so
``--single-task`` on a CGC or PLE config keeps its per-task network; with one task, shared and task experts
are all private. Gates are softmax gates (a DSelect-k model's baseline mixes the same experts densely).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from torch import Tensor, nn

from mtlzoo.models.base import Representation
from mtlzoo.models.columns import IndependentColumns
from mtlzoo.models.experts import Gate, GatedTrunk
from mtlzoo.models.factory import register_model
from mtlzoo.models.gated_mlp import MLPExpert, VectorInput, check_vector_options
from mtlzoo.models.stl import IndependentTaskModels, TaskSpec

OWN = "own"  # the one task of a column's trunk


class GatedColumn(nn.Module):
    """A vector gated trunk for one task: its experts and softmax gates, returning its last mixture as a
    (B, C, 1, 1) map (what the MLP head pools), the experts' output units in ``out_channels``."""

    def __init__(self, input_dim: int, expert_hidden: Sequence[int], num_levels: int, num_shared_experts: int,
                 num_task_experts: int) -> None:
        super().__init__()
        widths = [int(w) for w in expert_hidden]
        level_in = [input_dim] + [widths[-1]] * (num_levels - 1)
        self.trunk = GatedTrunk([OWN], lambda i: MLPExpert(level_in[i], widths), lambda i, e: Gate(level_in[i], e),
                                num_levels, num_shared_experts, num_task_experts)
        self.out_channels = [widths[-1]]

    def forward(self, x: Tensor) -> list[Tensor]:
        prefix, shared_last = self.trunk(x)
        return [self.trunk.task(OWN, x, prefix[OWN], shared_last)[-1][:, :, None, None]]


class SingleTaskMLPs(VectorInput, IndependentTaskModels):
    """T independent vector networks (a :class:`GatedColumn` + the task's MLP tower each) behind the multi-task
    contract; input (B, ``input_dim``)."""

    def __init__(self, tasks: TaskSpec, input_dim: int = 100, expert_hidden: Sequence[int] = (64,),
                 num_levels: int = 1, num_shared_experts: int = 4, num_task_experts: int = 0,
                 head_width: int | None = 32) -> None:
        super().__init__(tasks, head=None, head_width=head_width, in_chans=input_dim)
        check_vector_options(self, expert_hidden)
        self.input_dim = int(input_dim)
        self.encoder = IndependentColumns(self.task_names, partial(GatedColumn, self.input_dim, list(expert_hidden),
                                                                   num_levels, num_shared_experts, num_task_experts))
        self.build_heads()

    def encode(self, x: Tensor) -> Representation:
        """Every task's (B, C, 1, 1) mixture, in task order."""
        self.check_input(x)
        return Representation(tuple(f for features in self.encoder(x) for f in features), (1, 1))


@register_model
def stl_mlp(tasks: TaskSpec, input_dim: int = 100, expert_hidden: Sequence[int] = (64,), num_levels: int = 1,
            num_shared_experts: int = 4, num_task_experts: int = 0, head_width: int | None = 32) -> SingleTaskMLPs:
    """Single-task baselines on vectors: per task, the vector MMoE / CGC / PLE network for that task alone (MLP
    experts of 64 units, a softmax gate, an MLP tower of 32 units), nothing shared."""
    return SingleTaskMLPs(tasks, input_dim=input_dim, expert_hidden=expert_hidden, num_levels=num_levels,
                          num_shared_experts=num_shared_experts, num_task_experts=num_task_experts,
                          head_width=head_width)
