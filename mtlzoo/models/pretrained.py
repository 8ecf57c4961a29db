"""Pretrained weights as data: ``arch.tag`` -> where the weights are, their hash, what they score."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mtlzoo.registry import Registry, unknown_name_error


@dataclass(frozen=True)
class PretrainedCfg:
    """One set of pretrained weights for an architecture (in the spirit of timm's pretrained_cfg)."""

    architecture: str
    tag: str
    hub_id: str
    revision: str = "main"
    sha256: str | None = None
    tasks: str | tuple[dict[str, Any], ...] = ()
    dataset: str = ""
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    bundled: str | None = None  # folder under weights/ holding a copy, when the repo ships one

    @property
    def name(self) -> str:
        return f"{self.architecture}.{self.tag}"


PRETRAINED_CFGS: Registry[PretrainedCfg] = Registry("pretrained model")


def register_pretrained(cfg: PretrainedCfg) -> PretrainedCfg:
    """Add a pretrained config; its name is ``architecture.tag``."""
    return PRETRAINED_CFGS.register(cfg.name)(cfg)


def resolve_pretrained(arch: str, tag: str | None) -> PretrainedCfg:
    """The config for ``arch.tag``, or the first tag of ``arch`` when ``tag`` is None."""
    names = PRETRAINED_CFGS.names(f"{arch}.*")
    if tag is None:
        if not names:
            raise ValueError(f"no pretrained weights are registered for {arch!r}; "
                             f"models with weights: {PRETRAINED_CFGS.names() or 'none yet'}")
        return PRETRAINED_CFGS.get(names[0])
    name = f"{arch}.{tag}"
    if name not in PRETRAINED_CFGS:
        raise unknown_name_error("pretrained model", name, PRETRAINED_CFGS.names())
    return PRETRAINED_CFGS.get(name)


def load_pretrained(arch: str, tag: str | None, tasks: Any = None, **kwargs: Any):
    """Build ``arch`` with the weights named by ``tag`` (via :mod:`mtlzoo.hub`)."""
    from mtlzoo.hub import load_pretrained_cfg

    return load_pretrained_cfg(resolve_pretrained(arch, tag), tasks=tasks, **kwargs)
