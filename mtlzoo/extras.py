"""Optional dependencies: each belongs to a pip extra, and a missing one is named with the command that adds it."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {"segmentation_models_pytorch": "smp", "matplotlib": "plots", "tensorboard": "tensorboard",
          "datasets": "datasets"}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the mtlzoo extra that installs it."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (one of the optional dependencies in :data:`EXTRAS`) or say which extra installs it."""
    top = module.partition(".")[0]
    if top not in EXTRAS:
        raise ValueError(f"{module!r} is not an optional dependency of mtlzoo; optional ones: {sorted(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        extra = EXTRAS[top]
        raise MissingExtraError(f"{purpose} needs {top!r}, which is not installed ({err}); install it with "
                                f"pip install 'mtlzoo[{extra}]'") from None
