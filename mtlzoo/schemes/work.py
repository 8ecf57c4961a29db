"""What a training step costs, in the units that equal-compute comparisons count.

* A **forward pass** is one pass of a batch through the shared trunk (``model.encode`` or, for a model with
  task-specific normalisation, ``model(x, task=name)``). A pass without grad counts too (FAMO's re-evaluation
  of the losses after the step).
* A **backward pass** is one loss vector pulled back through the shared trunk: a loss-level method (EW, UW,
  FAMO...) makes 1; a gradient balancer at the parameter level makes T (the per-task gradients on the shared
  parameters, whether by T autograd calls or by one batched vector-Jacobian product of T rows: the same work);
  at the feature level 1 (the per-task gradients stop at the features, after the heads only); a model with no
  shared parameters 1; IUS / IO one per task group; cs_two_phase one per task in either phase. Gradients that
  stay in the heads or the last shared layer (feature-level per-task gradients, GradNorm's norms) do not count.
* An **update** is an optimizer step actually taken: a step skipped for a NaN / inf gradient is not counted.

Every update rule reports the work of each step it ran (:attr:`StepInfo.work`) from the code path that ran, and
the work of a step before training (:meth:`UpdateRule.work_per_step`) from its structure; the trainer adds the
steps up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RECORD_KEYS = ("forward_passes", "backward_passes", "optimizer_updates")


@dataclass(frozen=True)
class Work:
    """Forward passes, backward passes and optimizer updates (see the module docstring for what each counts)."""

    forward: int = 0
    backward: int = 0
    updates: int = 0

    def __add__(self, other: Work) -> Work:
        if not isinstance(other, Work):
            return NotImplemented
        return Work(self.forward + other.forward, self.backward + other.backward, self.updates + other.updates)

    def to_dict(self) -> dict[str, int]:
        """``{forward_passes, backward_passes, optimizer_updates}``: how records and checkpoints name the counts."""
        return dict(zip(RECORD_KEYS, (self.forward, self.backward, self.updates), strict=True))

    @classmethod
    def from_dict(cls, data: Mapping[str, int]) -> Work:
        """The inverse of :meth:`to_dict`; a missing key is a one-line ValueError naming it."""
        missing = [key for key in RECORD_KEYS if key not in data]
        if missing:
            raise ValueError(f"work counts lack {missing}; expects the keys {list(RECORD_KEYS)}")
        return cls(*(int(data[key]) for key in RECORD_KEYS))
