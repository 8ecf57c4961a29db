"""User code the CLI and the loaders import before resolving names: ``--import MODULE``, ``imports:`` and plugins.

A plugin is any module that registers things when imported (``register_model``, ``register_balancer``,
``register_task_kind``, data sets, protocols). A package makes its module found without being named by
declaring an entry point in the ``mtlzoo.plugins`` group::

    [project.entry-points."mtlzoo.plugins"]
    my_models = "my_package.models"
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points
from types import ModuleType

ENTRY_POINT_GROUP = "mtlzoo.plugins"
_loaded_entry_points: set[str] = set()


def import_modules(names: Iterable[str]) -> list[ModuleType]:
    """Import each module name (``pkg.mod``); a name that does not import raises a ValueError naming it and why."""
    modules = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a module to import is a dotted name such as 'my_package.models', got {name!r}")
        try:
            modules.append(importlib.import_module(name.strip()))
        except ImportError as err:
            raise ValueError(f"cannot import module {name!r} ({err}); is it on PYTHONPATH or installed?") from err
    return modules


def load_entry_point_plugins() -> list[str]:
    """Import every module declared in the ``mtlzoo.plugins`` entry-point group (each once); returns their names."""
    names = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value not in _loaded_entry_points:
            try:
                ep.load()
            except Exception as err:
                raise ValueError(f"mtlzoo plugin {ep.name!r} ({ep.value}, entry point group {ENTRY_POINT_GROUP!r}) "
                                 f"failed to import: {err}") from err
            _loaded_entry_points.add(ep.value)
        names.append(ep.value)
    return names


def defining_package(module: str) -> str | None:
    """The installed distribution providing top-level package of ``module`` (for a ``pip install`` hint), or None."""
    from importlib.metadata import packages_distributions

    dists = packages_distributions().get(module.partition(".")[0]) or []
    return dists[0] if dists else None
