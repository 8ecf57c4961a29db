"""Update rules: how one training step turns a batch into parameter updates.

``create_update_rule(method, model, optimizer)`` accepts a multi-step scheme name (``ius``, ``io``,
``cs_two_phase``), a balancer name (``ew``, ``pcgrad``...) or a balancer object; balancers are
wrapped in :class:`SingleStep`, so a trainer drives every method through the same interface.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mtlzoo.registry import unknown_name_error
from mtlzoo.schemes import alternating, cs_two_phase  # noqa: F401  (registers ius, io, cs_two_phase)
from mtlzoo.schemes.alternating import AlternatingSteps
from mtlzoo.schemes.base import UPDATE_RULES, OptimizerSpec, StepInfo, UpdateRule
from mtlzoo.schemes.cs_two_phase import ConnectionStrengthTwoPhase, conserve_priority
from mtlzoo.schemes.single import SingleStep
from mtlzoo.schemes.work import Work


def list_update_rules(pattern: str = "*") -> list[str]:
    """Sorted names of the multi-step update rules (balancer names are accepted too, see ``list_balancers``)."""
    return UPDATE_RULES.names(pattern)


def create_update_rule(method: Any, model: nn.Module, optimizer: OptimizerSpec, **kwargs: Any) -> UpdateRule:
    """The update rule for ``method``: a scheme name, a balancer name or a balancer object.

    ``optimizer`` is a ``torch.optim.Optimizer`` or a factory ``params -> Optimizer`` (rules that own
    several optimizers or parameter groups use an instance as a template). ``kwargs`` go to the
    scheme, or to ``create_balancer`` for a balancer name.
    """
    if isinstance(method, str):
        rule = _named_rule(method, model, optimizer, **kwargs)
        rule.method = method
        return rule
    if not hasattr(method, "backward"):
        raise TypeError(f"method must be a rule name, a balancer name or an object with backward(losses, model); "
                        f"got {type(method).__name__}")
    if kwargs:
        raise TypeError(f"keyword arguments {sorted(kwargs)} apply to names only; configure the balancer object")
    return SingleStep(method, model, optimizer)


def _named_rule(method: str, model: nn.Module, optimizer: OptimizerSpec, **kwargs: Any) -> UpdateRule:
    if method in UPDATE_RULES:
        return UPDATE_RULES.get(method)(model, optimizer, **kwargs)
    try:
        from mtlzoo.balancers import create_balancer, list_balancers
    except ImportError:
        raise unknown_name_error("update rule", method, UPDATE_RULES.names()) from None
    if method not in list_balancers():
        raise unknown_name_error("update rule or balancer", method, UPDATE_RULES.names() + list_balancers())
    return SingleStep(create_balancer(method, **kwargs), model, optimizer)


__all__ = ["UPDATE_RULES", "AlternatingSteps", "ConnectionStrengthTwoPhase", "SingleStep", "StepInfo", "UpdateRule",
           "Work", "conserve_priority", "create_update_rule", "list_update_rules"]
