"""Building blocks of the decoder-interaction families (PAD-Net, MTI-Net): task feature branches, multi-modal
distillation, and the deep-supervision record that lets ``model.losses`` add the auxiliary terms.

Multi-modal distillation refines the feature F_k of a receiving task k with messages from every other task l,
with 3x3 convolutions W (messages) and A (attention):

* ``gate="receiver"``: one attention map per receiving task, from its own feature, the attention-guided
  distillation of PAD-Net (Xu et al., CVPR 2018, Sec. 3.3, distillation module (c)):

      G_k = sigmoid(A_k conv F_k),   F^o_k = F_k + sum_{l != k} G_k * (W_{l,k} conv F_l);

* ``gate="pair"``: one attention map per (receiving, source) pair, still from F_k,
  G_{k,l} = sigmoid(A_{k,l} conv F_k) (mtlzoo's PAD-Net default before 2026-12-06; T - 2 more 3x3 convolutions per
  receiving task than the paper's unit);
* ``gate="source"``: one spatial attention per pair from the source feature, G_{k,l} = sigmoid(A_{k,l} conv F_l)
  (MTI-Net's unit, Vandenhende et al., ECCV 2020).

All parameters belong to the receiving task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlzoo.models.mtan import conv_block
from mtlzoo.tasks import Task

GATES = ("receiver", "pair", "source")


def task_branch(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU blocks: a task's feature branch (its initial prediction reads the output)."""
    return nn.Sequential(conv_block(cin, cout), conv_block(cout, cout))


def check_dense(tasks: Sequence[Task], architecture: str) -> None:
    """Refuse tasks that predict one vector per image: these decoders distil dense feature maps."""
    for task in tasks:
        if not task.dense:
            raise ValueError(f"{architecture} distils dense feature maps; task {task.name!r} of kind {task.kind!r} "
                             "is not dense (use hps / mtan / the gated models for it)")


def _conv3x3(channels: int, like: Tensor | None) -> nn.Conv2d:
    conv = nn.Conv2d(channels, channels, 3, padding=1)
    return conv if like is None else conv.to(device=like.device, dtype=like.dtype)


class Distillation(nn.Module):
    """Messages from the ``sources`` (other tasks, in order) into one receiving task (see the module docstring).

    ``messages[l]`` is W_{l,k}; the attention is ``attention`` (A_k) for ``gate="receiver"``, else ``gates[l]``."""

    def __init__(self, channels: int, sources: Sequence[str], gate: str = "receiver") -> None:
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"distillation gate {gate!r}: accepted {list(GATES)}")
        self.channels, self.gate = channels, gate
        self.messages = nn.ModuleDict()
        self.gates = nn.ModuleDict()
        self.attention = _conv3x3(channels, None) if gate == "receiver" else None
        for source in sources:
            self.add_source(source)

    def add_source(self, source: str) -> None:
        """Add the message (and, per pair, gate) convolutions of a new source task, on the unit's device and dtype."""
        like = next(self.parameters(), None)
        self.messages[source] = _conv3x3(self.channels, like)
        if self.gate != "receiver":
            self.gates[source] = _conv3x3(self.channels, like)

    def remove_source(self, source: str) -> None:
        del self.messages[source]
        if source in self.gates:
            del self.gates[source]

    def forward(self, own: Tensor, others: Sequence[Tensor]) -> Tensor:
        if len(others) != len(self.messages):
            raise ValueError(f"distillation expects {len(self.messages)} source features, got {len(others)}")
        shared_gate = torch.sigmoid(self.attention(own)) if self.attention is not None and others else None
        out = own
        for (source, message), feature in zip(self.messages.items(), others, strict=True):
            if shared_gate is not None:
                gate = shared_gate
            else:
                gate = torch.sigmoid(self.gates[source](own if self.gate == "pair" else feature))
            out = out + gate * message(feature)
        return out


class AuxRecord:
    """The auxiliary predictions of a task's last forward, tied to the final output they came with.

    Deep copies and pickles start empty (the tensors belong to one forward's graph)."""

    def __init__(self) -> None:
        self.output: Tensor | None = None
        self.predictions: list[Tensor] = []

    def set(self, output: Tensor, predictions: list[Tensor]) -> None:
        self.output, self.predictions = output, predictions

    def for_output(self, output: Tensor) -> list[Tensor] | None:
        """The predictions recorded with ``output`` (the same tensor object), else None."""
        return self.predictions if self.output is output else None

    def __deepcopy__(self, memo: dict) -> AuxRecord:
        return AuxRecord()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()


class PerForward:
    """What a shared decoder computed from one representation tensor, reused while the same tensor comes back.

    ``decode`` asks for every task's head features in turn, and ius / io's ``forward_tasks`` for some; the
    decoder shared by the tasks (after the representation) then runs once per forward, not once per task
    (its norm layers update their statistics once). Deep copies and pickles start empty, as AuxRecord."""

    def __init__(self) -> None:
        self.key: Tensor | None = None
        self.value: Any = None

    def get(self, key: Tensor, compute: Callable[[Tensor], Any]) -> Any:
        """``compute(key)``, or its result for this very tensor object if it was computed last."""
        if self.key is not key:
            self.key, self.value = None, None  # release the previous forward's graph first
            self.value, self.key = compute(key), key
        return self.value

    def __deepcopy__(self, memo: dict) -> PerForward:
        return PerForward()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()


def deep_supervision_losses(task: Task, output: Tensor, target: Tensor, record: AuxRecord,
                            weights: Sequence[float]) -> Tensor:
    """``loss(output) + sum_k w_k loss(aux_k)``, aux predictions upsampled (bilinear) to the output's size.

    Outputs that did not come from the model's last forward get the final term only (nothing was recorded
    for them)."""
    loss = task.compute_loss(output, target)
    aux = record.for_output(output)
    if aux is None:
        return loss
    for weight, prediction in zip(weights, aux, strict=True):
        if weight:
            prediction = F.interpolate(prediction, size=output.shape[-2:], mode="bilinear", align_corners=False)
            loss = loss + weight * task.compute_loss(prediction, target)
    return loss


def check_weights(weights: Sequence[float], count: int, name: str) -> list[float]:
    """``count`` non-negative finite floats, else a one-line error naming ``name``."""
    values = list(weights)
    if len(values) != count or not all(isinstance(w, int | float) and not isinstance(w, bool) and 0 <= w < float("inf")
                                       for w in values):
        raise ValueError(f"{name} must be {count} non-negative numbers, got {weights!r}")
    return [float(w) for w in values]


class DeepSupervised:
    """Mixin for models whose task heads hold an :class:`AuxRecord` (``heads[t].record``) and whose
    ``aux_weights`` list weighs the recorded predictions: ``losses`` folds them into each task's loss."""

    aux_weights: list[float]

    def losses(self, outputs: Any, targets: Any) -> dict[str, Tensor]:
        """Each task's final loss plus its weighted deep-supervision terms (one scalar per task, for balancers)."""
        missing = [t.name for t in self.tasks if t.name in outputs and t.name not in targets]
        if missing:
            raise ValueError(f"targets lack task(s) {missing}; got keys {sorted(targets)}")
        return {t.name: deep_supervision_losses(t, outputs[t.name], targets[t.name], self.heads[t.name].record,
                                                self.aux_weights) for t in self.tasks if t.name in outputs}

    def aux_predictions(self) -> dict[str, list[Tensor]]:
        """The auxiliary (initial) predictions of the last forward, per task, at feature resolution."""
        return {name: list(head.record.predictions) for name, head in self.heads.items()}
