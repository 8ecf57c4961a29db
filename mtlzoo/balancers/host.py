"""The one host round trip of a step: small tensors to numpy (float64) in one copy, results back in one.

A T x T problem is a few hundred bytes; solved on the device it costs tens to hundreds of tiny kernel
launches, on the host a few microseconds of numpy. So a balancer sends what its solve reads (the
Gramian, loss values, ``ctx.finite``, random keys) to the host with :func:`to_host` (one device->host
copy: the step's one synchronisation), solves there, and sends weights and new state back with
:func:`to_device` (one host->device copy). On the CPU both copies are free.

State that lives in buffers (Nash-MTL's warm start, GradVac's targets, POMSI's Adam moments) is not
copied to the host every step: :class:`HostState` keeps the host copy that was last written to the
buffers and trusts it while the buffers are the same tensors at the same version (Python-side
counters: no sync), so a ``load_state_dict``, a ``.to(device)`` or any in-place edit makes it fetch
them again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def to_host(*tensors: Tensor) -> list[np.ndarray]:
    """Float64 numpy copies of small tensors (any dtype, one device), made with one device->host copy."""
    device = tensors[0].device  # (a default ``StepContext.finite`` lives on the CPU whatever the Gramian's device)
    flat = tensors[0] if len(tensors) == 1 else torch.cat([(t if t.device == device else t.to(device)).flatten()
                                                           for t in tensors])  # cat promotes dtypes
    if flat.requires_grad:
        flat = flat.detach()
    if flat.dtype == torch.bfloat16:  # numpy has no bfloat16
        flat = flat.float()
    host = flat.cpu().numpy().astype(np.float64, copy=False)  # converted on the host: no conversion kernel
    if len(tensors) == 1:
        return [host]
    out, start = [], 0
    for t in tensors:
        out.append(host[start:start + t.numel()].reshape(t.shape))
        start += t.numel()
    return out


def to_device(like: Tensor, *arrays: np.ndarray | float) -> list[Tensor]:
    """Float64 tensors on ``like``'s device from host arrays, made with one host->device copy (views of it)."""
    parts = [np.array(a, dtype=np.float64).reshape(-1) for a in arrays]  # copies: the tensors own their memory
    packed = torch.from_numpy(parts[0] if len(parts) == 1 else np.concatenate(parts))
    if like.device.type != "cpu":
        packed = packed.to(like.device)
    if len(parts) == 1:
        return [packed]
    return list(packed.split([p.size for p in parts]))


class HostState:
    """The host copy of some buffers of a module (float64 or integer), valid while the buffers are untouched."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self._seen: list[tuple[Tensor, int]] | None = None
        self._arrays: list[np.ndarray] = []

    def _valid(self, module: torch.nn.Module) -> bool:
        if self._seen is None:
            return False
        return all(getattr(module, n) is t and not t.is_inference() and t._version == v
                   for n, (t, v) in zip(self.names, self._seen, strict=True))

    def fetch(self, module: torch.nn.Module, *tensors: Tensor) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``to_host(*tensors)`` and the buffers' values: the host copy when it is valid, else the buffers
        travel in the same device->host copy."""
        if self._valid(module):
            return to_host(*tensors), self._arrays
        arrays = to_host(*tensors, *(getattr(module, n) for n in self.names))
        return arrays[:len(tensors)], arrays[len(tensors):]

    def write(self, module: torch.nn.Module, arrays: Sequence[np.ndarray], device_parts: Sequence[Tensor]) -> None:
        """Copy ``device_parts`` (flat views from :func:`to_device` holding ``arrays``) into the buffers, in
        one foreach call, and keep ``arrays`` as the host copy."""
        buffers = [getattr(module, n) for n in self.names]
        torch._foreach_copy_([b if b.dim() == 1 else b.view(-1) for b in buffers], list(device_parts))
        self.remember(module, arrays)

    def remember(self, module: torch.nn.Module, arrays: Sequence[np.ndarray]) -> None:
        """Record that the buffers now hold ``arrays`` (after the caller wrote them)."""
        buffers = [getattr(module, n) for n in self.names]
        self._seen = None if any(b.is_inference() for b in buffers) else [(b, b._version) for b in buffers]
        # rounded as the buffers store them (float32 state), so that the host copy equals a reloaded one
        self._arrays = [np.asarray(a).astype(_NUMPY[b.dtype]).astype(np.float64).reshape(b.shape)
                        for a, b in zip(arrays, buffers, strict=True)]
        for a in self._arrays:
            a.flags.writeable = False  # handed out by fetch: a caller must not edit the host copy in place


_NUMPY = {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: np.float32,
          torch.int64: np.int64, torch.int32: np.int32, torch.bool: np.bool_}
