"""Every random-number generator a run draws from (torch CPU and CUDA, NumPy, Python), as checkpointable state."""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def get_state() -> dict[str, Any]:
    """The current states of all generators, as tensors and plain values (no pickle needed)."""
    return {"torch": torch.get_rng_state(), "numpy": _numpy_rng_state(), "python": _python_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`get_state` returned (a checkpoint without CUDA states leaves the GPUs' as they are)."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(_numpy_rng_from(state["numpy"]))
    random.setstate(_python_rng_from(state["python"]))
    _set_cuda_rng(state.get("cuda"))


def _set_cuda_rng(states: list[torch.Tensor] | None) -> None:
    """Restore the CUDA generators a checkpoint saved (none on a CPU checkpoint or a CPU-only machine)."""
    if not states or not torch.cuda.is_available():
        return
    if len(states) != torch.cuda.device_count():
        warnings.warn(f"the checkpoint holds the RNG state of {len(states)} GPU(s), this machine has "
                      f"{torch.cuda.device_count()}: restoring the first ones only", stacklevel=3)
    for device, state in enumerate(states[: torch.cuda.device_count()]):
        torch.cuda.set_rng_state(state, device)


def _numpy_rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _numpy_rng_from(state: Mapping[str, Any]) -> tuple:
    keys = state["keys"].numpy().astype(np.uint32)
    return state["name"], keys, state["pos"], state["has_gauss"], state["gauss"]


def _python_rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _python_rng_from(state: Mapping[str, Any]) -> tuple:
    return state["version"], tuple(int(v) for v in state["internal"].tolist()), state["gauss"]
