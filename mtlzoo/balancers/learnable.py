"""Learnable balancer weights (uw, gradnorm) must be in an optimizer: refuse to train them silently frozen.

Two mistakes leave them at their initial value without a word: building the optimizer before the
weights exist (they are created when the balancer binds its tasks), and leaving them out of the
optimizer. The first is caught at the first call; the second when a call finds the model's
gradients cleared or its weights stepped while the balancer's own gradients sit untouched since
the previous call. Both checks read only Python-side version counters and object ids (no host sync).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from torch import Tensor, nn

_ADVICE = ("create it with create_balancer(name, tasks=[...]) or create_balancer(name, model=model) "
           "(or call balancer.bind(task_names)) before building the optimizer over "
           "list(model.parameters()) + list(balancer.parameters())")


def _learnable(balancer: nn.Module) -> list[Tensor]:
    return [p for p in balancer.parameters() if p.requires_grad]


def _grad_mark(p: Tensor) -> tuple[int, int] | None:
    return None if p.grad is None else (id(p.grad), p.grad._version)


def check_learnable(balancer: Any, tasks: Sequence[str]) -> None:
    """Bind ``balancer`` to ``tasks``; raise if its learnable weights cannot be in the caller's optimizer."""
    was_bound = balancer.tasks is not None
    balancer.bind(tasks)
    name = type(balancer).__name__
    if not was_bound and _learnable(balancer):
        raise ValueError(f"{name} created its learnable weights on this first backward call, after your optimizer "
                         "was built, so they would never train; " + _ADVICE)
    seen = balancer.__dict__.get("_learnable_seen")
    if seen is None:
        return
    (ref_alive, ref_version, ref_mark), own = seen
    ref = ref_alive()
    if ref is None:
        return
    ref_touched = ref.grad is None or ref._version != ref_version or _grad_mark(ref) != ref_mark
    own_untouched = all(p.grad is not None and p._version == v and _grad_mark(p) == mark for p, v, mark in own)
    if ref_touched and own_untouched:
        raise ValueError(f"{name}'s learnable weights were neither stepped nor had their gradients cleared since the "
                         f"last call, while the model's were: add balancer.parameters() to the optimizer that steps "
                         f"the model (they sit in no optimizer, so they would never train)")


def record_learnable(balancer: Any, model_or_params: nn.Module | Iterable[Tensor], info: Any) -> Any:
    """Remember the version marks :func:`check_learnable` compares at the next call; return ``info``."""
    own = _learnable(balancer)
    if not own:  # most balancers: nothing to check, and no walk over the model's parameters
        return info
    params = model_or_params.parameters() if isinstance(model_or_params, nn.Module) else model_or_params
    ref = next((p for p in params if isinstance(p, Tensor) and p.grad is not None), None)
    if ref is None:
        return info
    marks = [(p, p._version, _grad_mark(p)) for p in own]
    balancer._learnable_seen = ((weakref.ref(ref), ref._version, _grad_mark(ref)), marks)
    return info
