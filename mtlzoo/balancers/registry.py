"""The balancer registry: names are the API (``create_balancer("cagrad", c=0.4)``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mtlzoo.balancers.base import Balancer
from mtlzoo.registry import Registry

BALANCERS: Registry[Callable[..., Balancer]] = Registry("balancer")


def register_balancer(name: str) -> Callable[[Callable[..., Balancer]], Callable[..., Balancer]]:
    """Decorator registering a balancer class (or factory) under ``name``."""
    return BALANCERS.register(name)


def create_balancer(name: str, **kwargs: Any) -> Balancer:
    """Build the balancer registered as ``name`` with the method's keyword arguments."""
    factory = BALANCERS.get(name)
    try:
        return factory(**kwargs)
    except TypeError as err:
        raise TypeError(f"bad arguments for balancer {name!r}: {err}") from None


def list_balancers(pattern: str = "*") -> list[str]:
    """Sorted names of the registered balancers matching the fnmatch ``pattern``."""
    return BALANCERS.names(pattern)
