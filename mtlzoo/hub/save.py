"""Writing checkpoint folders: model.safetensors + config.json + README.md, each written atomically.

Plain data in (a state dict and the config dict); :func:`mtlzoo.models.export.save_pretrained` builds
that config from a model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from mtlzoo.hub.card import render_model_card
from mtlzoo.hub.files import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, sha256_file, write_atomic, write_json

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"dtype must be one of {list(_DTYPES)} (or None to keep the model's), got {dtype!r}")


def state_for_saving(model: torch.nn.Module, dtype: str | torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors with no shared storage (what safetensors accepts).

    Floating tensors are cast to ``dtype`` when given (e.g. ``"float16"`` halves the file); integer
    buffers (BatchNorm counters) keep their type.
    """
    dtype = _resolve_dtype(dtype)
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in model.state_dict().items():
        tensor = value.detach()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensor = tensor.to("cpu").contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen and tensor.numel():
            tensor = tensor.clone()
        seen.add(pointer)
        tensors[key] = tensor
    return tensors


def write_checkpoint(folder: str | os.PathLike, tensors: dict[str, torch.Tensor], config: dict[str, Any], *,
                     repo_id: str | None = None) -> Path:
    """Write ``tensors`` and ``config`` (plus the weights' file, sha256 and dtype) and a model card into ``folder``.

    Weights first, then config.json (which records their sha256), then the card; each through a
    temporary file moved into place, so a crash never leaves a half-written file.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"save_directory {str(folder)!r} exists and is not a folder")
    from safetensors.torch import save_file

    weights = write_atomic(folder / WEIGHTS_NAME, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values() if t.is_floating_point()})
    config = {**config, "weights": {"file": WEIGHTS_NAME, "sha256": sha256_file(weights),
                                    "dtype": ",".join(dtypes) or "none"}}
    write_json(folder / CONFIG_NAME, config)
    write_atomic(folder / CARD_NAME, render_model_card(config, repo_id=repo_id))
    return folder
