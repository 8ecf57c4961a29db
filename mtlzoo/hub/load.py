"""Loading checkpoints: strict by default, safetensors only unless told otherwise, hashes checked.

``from_pretrained`` accepts a checkpoint folder, ``"hf-hub:org/name[@revision]"`` or a registered
pretrained name (``"squadnet_tiny.synthscenes"``, or an architecture with weights: its default tag).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mtlzoo.checkpoint import published_directory
from mtlzoo.hub.cache import bundled_weights_dir, fetch_hub_checkpoint, hub_offline, parse_hub_name
from mtlzoo.hub.files import (
    CONFIG_NAME,
    PICKLE_WEIGHTS_NAMES,
    WEIGHTS_NAME,
    CheckpointNotFoundError,
    read_json,
    sha256_file,
)
from mtlzoo.models.base import MultiTaskModel
from mtlzoo.models.factory import MODELS, create_model_from_config, split_model_name
from mtlzoo.models.pretrained import PRETRAINED_CFGS, PretrainedCfg, resolve_pretrained
from mtlzoo.registry import close_matches
from mtlzoo.tasks import resolve_tasks

_SHOWN_KEYS = 10


def find_weights(folder: str | os.PathLike, *, trust_pickle: bool = False) -> Path:
    """The weight file of ``folder``: ``model.safetensors``; a pickle file only when ``trust_pickle``.

    A pickle file (``pytorch_model.bin``...) can run code when unpickled, so it is refused unless
    ``trust_pickle=True``, and even then :func:`read_weights` reads it with ``torch.load(weights_only=True)``.
    """
    folder = Path(folder)
    if (folder / WEIGHTS_NAME).is_file():
        return folder / WEIGHTS_NAME
    pickles = [folder / name for name in PICKLE_WEIGHTS_NAMES if (folder / name).is_file()]
    if not pickles:
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else "the folder does not exist"
        raise CheckpointNotFoundError(f"{folder} holds no weights: expected {WEIGHTS_NAME}; found {present}")
    if not trust_pickle:
        raise ValueError(
            f"{folder} holds only {pickles[0].name}, a pickle file (unpickling can run arbitrary code), and mtlzoo "
            f"loads {WEIGHTS_NAME} only. If you trust its source, pass trust_pickle=True (it is then read with "
            f"torch.load(weights_only=True)); convert it once with "
            f"mtlzoo.from_pretrained(folder, trust_pickle=True).save_pretrained(folder).")
    return pickles[0]


def read_weights(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Tensor]:
    """The state dict in a safetensors file, or in a (trusted) pickle file read with ``weights_only=True``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=str(torch.device(map_location)))
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} must hold a flat state dict {{name: tensor}}, got {type(state).__name__}"
                         + (f" with keys {sorted(state)[:_SHOWN_KEYS]}" if isinstance(state, Mapping) else ""))
    return dict(state)


def verify_sha256(path: Path, expected: Mapping[str, str | None]) -> str:
    """Hash ``path`` and compare it with every known expected value (``{where it comes from: sha256}``)."""
    actual = sha256_file(path)
    for source, sha in expected.items():
        if sha and sha.lower() != actual:
            raise ValueError(f"{path} has sha256 {actual} but {source} expects {sha}: the file is corrupt, partial "
                             f"or from another revision; delete it and fetch it again")
    return actual


def _listed(keys: list[str]) -> str:
    more = f" ... and {len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else ""
    return ", ".join(keys[:_SHOWN_KEYS]) + more


def load_state(model: torch.nn.Module, state: Mapping[str, Tensor], strict: bool = True) -> dict[str, list[str]]:
    """Copy ``state`` into ``model``; strict: every key must match in name and shape, else a ValueError lists them.

    With ``strict=False`` the matching tensors load and the mismatches are returned
    (``{"missing", "unexpected", "mismatched"}``).
    """
    expected = model.state_dict()
    report = {
        "missing": [k for k in expected if k not in state],
        "unexpected": [k for k in state if k not in expected],
        "mismatched": [f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
                       for k in expected if k in state and state[k].shape != expected[k].shape],
    }
    if strict and any(report.values()):
        lines = [f"{what} keys ({len(keys)}): {_listed(keys)}" for what, keys in report.items() if keys]
        raise ValueError(f"checkpoint does not match {getattr(model, 'architecture', type(model).__name__)}: "
                         + "; ".join(lines) + ". Pass strict=False to load only the tensors that match.")
    usable = {k: v for k, v in state.items() if k in expected and v.shape == expected[k].shape}
    model.load_state_dict(usable, strict=False)
    return report


def adapt_tasks(model: MultiTaskModel, tasks: Any) -> MultiTaskModel:
    """Give a loaded model the requested tasks: keep identical ones, add new heads, replace changed, drop others.

    Kept tasks stay in checkpoint order (some architectures index task-owned parts by position); new
    and changed tasks are appended with freshly initialised heads (via ``add_task`` / ``remove_task``).
    """
    wanted = resolve_tasks(tasks)
    names = [t.name for t in wanted]
    current = {t.name: t for t in model.tasks}
    for task in wanted:
        if task.name not in current:
            model.add_task(task)
    for task in wanted:
        if task.name in current and current[task.name] != task:
            model.remove_task(task.name)
            model.add_task(task)
    for name in list(current):
        if name not in names:
            model.remove_task(name)
    return model


def load_checkpoint(folder: str | os.PathLike, *, strict: bool = True, trust_pickle: bool = False,
                    map_location: str | torch.device = "cpu", sha256: str | None = None, tasks: Any = None,
                    **model_kwargs: Any) -> MultiTaskModel:
    """Rebuild the model of a checkpoint folder (config.json + weights), load its weights; returns it in eval mode.

    ``sha256`` (e.g. from a pretrained config) and the hash recorded in config.json are both checked.
    ``model_kwargs`` override the saved model arguments; ``tasks`` adapts the heads (see :func:`adapt_tasks`).
    """
    folder = published_directory(folder)  # a crash while replacing it may have left only the copy set aside
    if not (folder / CONFIG_NAME).is_file():
        raise CheckpointNotFoundError(f"{folder} is not a checkpoint folder: it has no {CONFIG_NAME}")
    config = read_json(folder / CONFIG_NAME)
    missing = [key for key in ("architecture", "tasks") if key not in config]
    if missing:
        raise ValueError(f"{folder / CONFIG_NAME} lacks {missing}; was it written by mtlzoo's save_pretrained?")
    path = find_weights(folder, trust_pickle=trust_pickle)
    recorded = config.get("weights") or {}
    expected = {"the pretrained config": sha256}
    if recorded.get("file") == path.name:
        expected[f"{CONFIG_NAME}"] = recorded.get("sha256")
    actual = verify_sha256(path, expected)
    state = read_weights(path, map_location)
    args = {**config.get("model_args", {}), **model_kwargs}
    if args.get("encoder_weights") is not None:
        args["encoder_weights"] = None  # the checkpoint holds the weights: never download ImageNet ones
    model = create_model_from_config({"architecture": config["architecture"], "tasks": config["tasks"], **args})
    load_state(model, state, strict=strict)
    model.checkpoint_info = {"source": str(folder), "sha256": actual, "preprocessing": config.get("preprocessing"),
                             "results": config.get("results"), "training": config.get("training")}
    if tasks is not None:
        adapt_tasks(model, tasks)
    return model.to(map_location).eval()


def _locate_pretrained(cfg: PretrainedCfg, cache_dir: str | os.PathLike | None) -> Path:
    """HF cache first, then the bundled copy under ``weights/``, then a download (unless offline)."""
    try:
        return fetch_hub_checkpoint(cfg.hub_id, cfg.revision, cache_dir=cache_dir, local_files_only=True)
    except CheckpointNotFoundError as err:
        cache_error = err
    bundled = bundled_weights_dir() / cfg.bundled if cfg.bundled else None
    if bundled is not None and (bundled / CONFIG_NAME).is_file():
        return bundled
    if hub_offline():
        raise CheckpointNotFoundError(f"pretrained weights {cfg.name!r} are not bundled with this copy of mtlzoo "
                                      f"and {cache_error}") from None
    return fetch_hub_checkpoint(cfg.hub_id, cfg.revision, cache_dir=cache_dir)


def load_pretrained_cfg(cfg: PretrainedCfg, tasks: Any = None, *, strict: bool = True,
                        map_location: str | torch.device = "cpu", cache_dir: str | os.PathLike | None = None,
                        trust_pickle: bool = False, **model_kwargs: Any) -> MultiTaskModel:
    """Build and load the weights a PretrainedCfg names (what ``create_model("arch.tag", pretrained=True)`` calls)."""
    folder = _locate_pretrained(cfg, cache_dir)
    model = load_checkpoint(folder, strict=strict, trust_pickle=trust_pickle, map_location=map_location,
                            sha256=cfg.sha256, tasks=tasks, **model_kwargs)
    if model.architecture != cfg.architecture:
        raise ValueError(f"{folder} holds a {model.architecture!r} model, but {cfg.name!r} is a {cfg.architecture!r}")
    model.checkpoint_info["pretrained"] = cfg.name
    return model


def _known_sha256(repo_id: str, revision: str | None) -> str | None:
    """The sha256 a registered pretrained config records for ``repo_id@revision``, if any."""
    for name in PRETRAINED_CFGS:
        cfg = PRETRAINED_CFGS.get(name)
        if cfg.hub_id == repo_id and (revision is None or revision == cfg.revision):
            return cfg.sha256
    return None


def from_pretrained(name: str | os.PathLike, *, strict: bool = True, trust_pickle: bool = False,
                    map_location: str | torch.device = "cpu", revision: str | None = None,
                    cache_dir: str | os.PathLike | None = None, tasks: Any = None,
                    **model_kwargs: Any) -> MultiTaskModel:
    """Load a model from a folder, ``"hf-hub:org/name[@revision]"``, or a pretrained name (``"arch.tag"``).

    Strict by default (a mismatch names the missing and unexpected keys); safetensors only unless
    ``trust_pickle=True``; the weights' sha256 is checked against config.json and, for registered
    checkpoints, the pretrained config; hub revisions are pinned by ``@revision`` or ``revision=``.
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"from_pretrained expects a folder, 'hf-hub:org/name' or a pretrained name, got "
                        f"{type(name).__name__}")
    options = {"strict": strict, "trust_pickle": trust_pickle, "map_location": map_location, "tasks": tasks,
               **model_kwargs}
    if isinstance(name, str) and name.startswith("hf-hub:"):
        repo_id, pinned = parse_hub_name(name)
        if pinned and revision and pinned != revision:
            raise ValueError(f"{name!r} pins revision {pinned!r} but revision={revision!r} was also given")
        revision = pinned or revision
        folder = fetch_hub_checkpoint(repo_id, revision, cache_dir=cache_dir, trust_pickle=trust_pickle)
        return load_checkpoint(folder, sha256=_known_sha256(repo_id, revision), **options)
    if isinstance(name, str):
        arch, tag = split_model_name(name)
        if name in PRETRAINED_CFGS or (tag is None and arch in MODELS and PRETRAINED_CFGS.names(f"{arch}.*")):
            return load_pretrained_cfg(resolve_pretrained(arch, tag), cache_dir=cache_dir, **options)
    if published_directory(name).is_dir():
        return load_checkpoint(name, **options)
    near = close_matches(str(name), PRETRAINED_CFGS.names())
    raise ValueError(f"{str(name)!r} is not a checkpoint folder, an 'hf-hub:org/name[@revision]' id, or a pretrained "
                     f"model name" + (f". Did you mean: {', '.join(near)}?" if near else "")
                     + f" Pretrained models: {PRETRAINED_CFGS.names() or 'none registered'}")
