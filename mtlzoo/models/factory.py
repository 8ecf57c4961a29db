"""Names are the API: the model registry, ``create_model`` (the one entry point) and ``list_models``.

``create_model`` takes a registered name (``"hps_resnet50"``), a pretrained tag (``"hps_tiny.synthscenes"``
with ``pretrained=True``), ``"hf-hub:org/name[@revision]"`` or ``"local-dir:PATH"``; the last two name a
checkpoint, whose config.json rebuilds the model and whose weights load. ``from_pretrained`` is the same
thing by another name. Files are read by :mod:`mtlzoo.hub` (plain dicts and tensors); this module builds.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mtlzoo.checkpoint import published_directory
from mtlzoo.hub.cache import HUB_PREFIX, fetch_hub_checkpoint, parse_hub_name
from mtlzoo.hub.files import CONFIG_NAME
from mtlzoo.hub.load import CheckpointFiles, locate_pretrained, read_checkpoint
from mtlzoo.models.builder import adapt_tasks, load_state
from mtlzoo.models.pretrained import PRETRAINED_CFGS, PretrainedCfg, resolve_pretrained
from mtlzoo.plugins import defining_package, load_entry_point_plugins
from mtlzoo.registry import Registry, close_matches, unknown_name_error
from mtlzoo.tasks import Task, resolve_tasks

if TYPE_CHECKING:  # annotations only: models.base reaches this module (save_pretrained -> export)
    from mtlzoo.models.base import MultiTaskModel

LOCAL_PREFIX = "local-dir:"
_LOAD_OPTIONS = ("strict", "trust_pickle", "map_location", "cache_dir", "revision")

MODELS: Registry[Callable[..., MultiTaskModel]] = Registry("model")


def register_model(fn: Callable[..., MultiTaskModel]) -> Callable[..., MultiTaskModel]:
    """Register a model entry point under its function name (``hps_resnet50``, ``squadnet_tiny``...)."""
    return MODELS.register(fn.__name__)(fn)


def split_model_name(name: str) -> tuple[str, str | None]:
    """``"squadnet_tiny.synthscenes"`` -> ``("squadnet_tiny", "synthscenes")``."""
    arch, _, tag = name.partition(".")
    return arch, tag or None


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Sorted registered architecture names matching ``pattern`` (fnmatch).

    With ``pretrained=True``: the ``arch.tag`` names that have pretrained weights.
    """
    if not pretrained:
        return MODELS.names(pattern)
    return sorted(n for n in PRETRAINED_CFGS.names() if fnmatch.fnmatchcase(n, pattern))


def create_model(name: str, tasks: str | Iterable[Task | Mapping[str, Any]] | None = None,
                 pretrained: bool = False, **kwargs: Any) -> MultiTaskModel:
    """Build a model by name, e.g. ``create_model("hps_resnet50", tasks="nyud")``.

    ``name`` may carry a pretrained tag (``"squadnet_tiny.synthscenes"``, with ``pretrained=True``; a
    bare architecture then loads its default tag) or name a checkpoint (``"hf-hub:org/name[@rev]"``,
    ``"local-dir:PATH"``). ``tasks`` is a preset name or a list of Task / dict; for loaded weights it
    defaults to the checkpoint's tasks and otherwise adapts the heads. Loading options: ``strict``,
    ``trust_pickle``, ``map_location``, ``cache_dir``, ``revision``; other keywords go to the model.
    """
    if not isinstance(name, str):
        raise TypeError(f"create_model expects a model name (str), got {type(name).__name__}")
    if name.startswith((HUB_PREFIX, LOCAL_PREFIX)):
        return _load_named_checkpoint(name, tasks=tasks, **kwargs)
    arch, tag = split_model_name(name)
    entry = MODELS.get(arch)
    if pretrained:
        return load_pretrained_cfg(resolve_pretrained(arch, tag), tasks=tasks, **kwargs)
    if tag is not None:
        raise ValueError(f"{name!r} names pretrained weights; pass pretrained=True or use {arch!r}")
    if tasks is None:
        raise ValueError(f"create_model({arch!r}) needs tasks=: a preset name (e.g. 'nyud') or a list of Task")
    model = entry(tasks=tasks, **kwargs)
    model.architecture = arch
    model.model_kwargs = dict(kwargs)
    return model


def create_model_from_config(config: Mapping[str, Any]) -> MultiTaskModel:
    """Rebuild a model (random weights) from ``model.config``."""
    config = dict(config)
    if "architecture" not in config:
        raise ValueError(f"a model config needs an 'architecture' key; got keys {sorted(config)}")
    arch = config.pop("architecture")
    if arch not in MODELS:
        raise unknown_name_error("model", arch, MODELS.names())
    return create_model(arch, **config)


def _require_registered(config: Mapping[str, Any], source: Path) -> None:
    """A checkpoint's architecture must be registered; else say which module (or package) registers it."""
    arch = config["architecture"]
    if arch not in MODELS:
        load_entry_point_plugins()
    if arch in MODELS:
        return
    module = config.get("architecture_module")
    if module:
        package = defining_package(module)
        hint = (f"it was registered by module {module!r} when saved: `import {module}` first (from the CLI: "
                f"`mtlzoo --import {module} ...`)"
                + (f"; it comes from the installed package {package!r}" if package else
                   "; if that module is not installed, install the package that provides it"))
    else:
        hint = ("import the module that registers it first (from the CLI: `mtlzoo --import MODULE ...`) or install "
                "the package providing it")
    near = close_matches(arch, MODELS.names())
    raise ValueError(f"{source} holds a {arch!r} model, which no imported module registers; {hint}"
                     + (f". Registered names close to it: {', '.join(near)}" if near else ""))


def _build(files: CheckpointFiles, *, strict: bool, map_location: str | torch.device, tasks: Any,
           model_kwargs: Mapping[str, Any]) -> MultiTaskModel:
    """Rebuild the checkpoint's model from its config, load the weights strictly, adapt the tasks."""
    config = files.config
    _require_registered(config, files.source)
    where = files.source / CONFIG_NAME
    try:
        saved_tasks = resolve_tasks(config["tasks"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: its 'tasks' do not rebuild: {_first_line(err)}") from None
    args = {**(config.get("model_args") or {}), **model_kwargs}
    if args.get("encoder_weights") is not None:
        args["encoder_weights"] = None  # the checkpoint holds the weights: never download ImageNet ones
    try:
        model = create_model_from_config({"architecture": config["architecture"], "tasks": saved_tasks, **args})
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {config['architecture']!r} cannot be built with the model arguments "
                         f"{sorted(args)} (saved model_args and keywords passed): {_first_line(err)}") from err
    load_state(model, files.state, strict=strict)
    model.checkpoint_info = {"source": str(files.source), "sha256": files.sha256,
                             "preprocessing": config.get("preprocessing"), "results": config.get("results"),
                             "training": config.get("training")}
    if tasks is not None:
        adapt_tasks(model, tasks)
    return model.to(map_location).eval()


def _first_line(err: BaseException) -> str:
    """An exception as one line: its type when it has no message."""
    return (str(err).splitlines() or [type(err).__name__])[0]


def load_checkpoint(folder: str | os.PathLike, *, strict: bool = True, trust_pickle: bool = False,
                    map_location: str | torch.device = "cpu", sha256: str | None = None, tasks: Any = None,
                    **model_kwargs: Any) -> MultiTaskModel:
    """Rebuild the model of a checkpoint folder (config.json + weights), load its weights; returns it in eval mode.

    ``sha256`` (e.g. from a pretrained config) and the hash recorded in config.json are both checked.
    ``model_kwargs`` override the saved model arguments; ``tasks`` adapts the heads (see :func:`adapt_tasks`).
    """
    files = read_checkpoint(folder, trust_pickle=trust_pickle, map_location=map_location, sha256=sha256)
    return _build(files, strict=strict, map_location=map_location, tasks=tasks, model_kwargs=model_kwargs)


def load_pretrained_cfg(cfg: PretrainedCfg, tasks: Any = None, *, cache_dir: str | os.PathLike | None = None,
                        **options: Any) -> MultiTaskModel:
    """Build and load the weights a PretrainedCfg names (what ``create_model("arch.tag", pretrained=True)`` calls)."""
    folder = locate_pretrained(cfg.name, cfg.hub_id, cfg.revision, cfg.bundled, cache_dir)
    model = load_checkpoint(folder, sha256=cfg.sha256, tasks=tasks, **options)
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


def _load_named_checkpoint(name: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                           **options: Any) -> MultiTaskModel:
    """``"local-dir:PATH"`` or ``"hf-hub:org/name[@revision]"``: rebuild and load that checkpoint."""
    if name.startswith(LOCAL_PREFIX):
        if revision is not None:
            raise ValueError(f"revision={revision!r} applies to 'hf-hub:' names, not to {name!r}")
        return load_checkpoint(Path(name[len(LOCAL_PREFIX):]).expanduser(), **options)
    repo_id, pinned = parse_hub_name(name)
    if pinned and revision and pinned != revision:
        raise ValueError(f"{name!r} pins revision {pinned!r} but revision={revision!r} was also given")
    revision = pinned or revision
    folder = fetch_hub_checkpoint(repo_id, revision, cache_dir=cache_dir,
                                  trust_pickle=options.get("trust_pickle", False))
    return load_checkpoint(folder, sha256=_known_sha256(repo_id, revision), **options)


def from_pretrained(name: str | os.PathLike, *, strict: bool = True, trust_pickle: bool = False,
                    map_location: str | torch.device = "cpu", revision: str | None = None,
                    cache_dir: str | os.PathLike | None = None, tasks: Any = None,
                    **model_kwargs: Any) -> MultiTaskModel:
    """``create_model(name, pretrained=True)`` by another name; a bare folder path also works (as ``local-dir:``).

    Strict by default (a mismatch names the missing and unexpected keys); safetensors only unless
    ``trust_pickle=True``; the weights' sha256 is checked against config.json and, for registered
    checkpoints, the pretrained config; hub revisions are pinned by ``@revision`` or ``revision=``.
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"from_pretrained expects a folder, 'hf-hub:org/name' or a pretrained name, got "
                        f"{type(name).__name__}")
    options = {"strict": strict, "trust_pickle": trust_pickle, "map_location": map_location, "tasks": tasks,
               "cache_dir": cache_dir, **model_kwargs}
    text = os.fspath(name)
    if text.startswith((HUB_PREFIX, LOCAL_PREFIX)):
        return create_model(text, pretrained=True, revision=revision, **options)
    arch, tag = split_model_name(text)
    if text in PRETRAINED_CFGS or (tag is None and arch in MODELS and PRETRAINED_CFGS.names(f"{arch}.*")):
        return create_model(text, pretrained=True, **options)
    if published_directory(text).is_dir():
        return create_model(LOCAL_PREFIX + text, pretrained=True, **options)
    near = close_matches(text, PRETRAINED_CFGS.names())
    raise ValueError(f"{text!r} is not a checkpoint folder, an 'hf-hub:org/name[@revision]' id, or a pretrained "
                     f"model name" + (f". Did you mean: {', '.join(near)}?" if near else "")
                     + f" Pretrained models: {PRETRAINED_CFGS.names() or 'none registered'}")
