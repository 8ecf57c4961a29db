"""The balancer registry: names are the API (``create_balancer("cagrad", c=0.4)``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mtlzoo.balancers.base import Balancer
from mtlzoo.registry import Registry

BALANCERS: Registry[Callable[..., Balancer]] = Registry("balancer")


def register_balancer(name: str) -> Callable[[Callable[..., Balancer]], Callable[..., Balancer]]:
    """Decorator registering a balancer class (or factory) under ``name``."""
    return BALANCERS.register(name)


def create_balancer(name: str, tasks: Sequence[Any] | None = None, model: Any = None, **kwargs: Any) -> Balancer:
    """Build the balancer registered as ``name`` with the method's keyword arguments.

    ``tasks`` (task names or objects with a ``name``) or ``model`` (anything with ``task_names``)
    bind the balancer at once, so that learnable weights (uw, gradnorm) exist when the optimizer
    is built over ``balancer.parameters()``.
    """
    names = _task_names(name, tasks, model)
    factory = BALANCERS.get(name)
    try:
        balancer = factory(**kwargs)
    except TypeError as err:
        raise TypeError(f"bad arguments for balancer {name!r}: {err}") from None
    return balancer.bind(names) if names is not None else balancer


def _task_names(name: str, tasks: Sequence[Any] | None, model: Any) -> list[str] | None:
    if tasks is not None and model is not None:
        raise ValueError(f"create_balancer({name!r}): pass tasks= or model=, not both")
    if model is not None:
        if not hasattr(model, "task_names"):
            raise TypeError(f"create_balancer({name!r}, model=...) needs a model with task_names (a mtlzoo model), "
                            f"got {type(model).__name__}; pass tasks=[names] instead")
        return list(model.task_names)
    if tasks is None:
        return None
    if isinstance(tasks, str) or not isinstance(tasks, Sequence):
        raise TypeError(f"create_balancer({name!r}, tasks=...) expects a list of task names or Task objects, "
                        f"got {tasks!r}")
    names = [t if isinstance(t, str) else getattr(t, "name", None) for t in tasks]
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"create_balancer({name!r}, tasks=...) expects task names or objects with a name, "
                        f"got {tasks!r}")
    return names


def list_balancers(pattern: str = "*") -> list[str]:
    """Sorted names of the registered balancers matching the fnmatch ``pattern``."""
    return BALANCERS.names(pattern)
