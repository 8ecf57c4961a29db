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
    default: bool = False  # the weights a bare architecture name (``create_model(arch, pretrained=True)``) loads

    @property
    def name(self) -> str:
        return f"{self.architecture}.{self.tag}"


PRETRAINED_CFGS: Registry[PretrainedCfg] = Registry("pretrained model")


def register_pretrained(cfg: PretrainedCfg) -> PretrainedCfg:
    """Add a pretrained config; its name is ``architecture.tag``; at most one tag per architecture is the default."""
    if cfg.default and default_tag(cfg.architecture) not in (None, cfg.tag):
        raise ValueError(f"{cfg.name!r} is marked default, but {cfg.architecture}.{default_tag(cfg.architecture)} "
                         "already is; an architecture has one default tag")
    return PRETRAINED_CFGS.register(cfg.name)(cfg)


def default_tag(arch: str) -> str | None:
    """The tag a bare ``arch`` name loads with ``pretrained=True`` (the one marked ``default``), or None."""
    tags = [PRETRAINED_CFGS.get(n).tag for n in PRETRAINED_CFGS.names(f"{arch}.*") if PRETRAINED_CFGS.get(n).default]
    return tags[0] if tags else None


def resolve_pretrained(arch: str, tag: str | None) -> PretrainedCfg:
    """The config for ``arch.tag``, or for ``arch``'s default tag when ``tag`` is None."""
    names = PRETRAINED_CFGS.names(f"{arch}.*")
    if tag is None:
        if not names:
            raise ValueError(f"no pretrained weights are registered for {arch!r}; "
                             f"models with weights: {PRETRAINED_CFGS.names() or 'none yet'}")
        if default_tag(arch) is None:
            raise ValueError(f"{arch!r} has no default pretrained tag; name one of {names}")
        return PRETRAINED_CFGS.get(f"{arch}.{default_tag(arch)}")
    name = f"{arch}.{tag}"
    if name not in PRETRAINED_CFGS:
        raise unknown_name_error("pretrained model", name, PRETRAINED_CFGS.names())
    return PRETRAINED_CFGS.get(name)


def _bundled_synthscenes(arch: str, sha256: str, headline: dict[str, dict[str, float]], data_version: int,
                         **model_kwargs: Any) -> PretrainedCfg:
    """Register a synthscenes checkpoint shipped under ``weights/<arch>.synthscenes`` (see weights/README.md),
    trained and scored on version ``data_version`` of the generator."""
    name = f"{arch}.synthscenes"
    return register_pretrained(PretrainedCfg(
        architecture=arch, tag="synthscenes", hub_id=f"mtlzoo/{name}", sha256=sha256, tasks="synthscenes",
        dataset=f"synthscenes-v{data_version}", model_kwargs=model_kwargs,
        results={"protocol": "synthscenes", "metrics": headline},
        bundled=name, default=True,
    ))


# Trained on synthscenes by weights/train_bundled.py; val split, synthscenes protocol. hps_tiny and cs_tiny:
# version 3 (the portable generator), the leaderboard's best method for each (DB-MTL, IUS), 3 seeds on the CPU
# (seed 0 shipped); squadnet_tiny: version 1, the earlier recipe (its retraining waits for a GPU, see
# weights/README.md).
_bundled_synthscenes(
    "hps_tiny", "eeb45ac2b87f19c85110178a8c256ac8c64ed51174b2e137d682f175d34a39d6",
    {"semseg": {"miou": 0.5405}, "depth": {"rmse": 0.8697}, "normals": {"mean": 15.0048}, "edge": {"bce": 0.0305},
     "saliency": {"maxf": 0.9169}, "parts": {"miou": 0.8147}}, data_version=3,
)
_bundled_synthscenes(
    "squadnet_tiny", "206787da3aa24c943da518317b78d29b9220486c52a50c94f0131e9e2e4d90c2",
    {"semseg": {"miou": 0.4884}, "depth": {"rmse": 0.7344}, "normals": {"mean": 15.017}, "edge": {"bce": 0.0398},
     "saliency": {"maxf": 0.8522}, "parts": {"miou": 0.307}}, data_version=1,
    head="light", width=16,
)
_bundled_synthscenes(
    "cs_tiny", "79c000e3cb4ebc846359e5389f660964612d170adc44932e29f73fde94d3dc2b",
    {"semseg": {"miou": 0.5588}, "depth": {"rmse": 0.828}, "normals": {"mean": 15.6474}, "edge": {"bce": 0.0321},
     "saliency": {"maxf": 0.9164}, "parts": {"miou": 0.8238}}, data_version=3,
)


def _bundled_mmoe_synthetic(arch: str, sha256: str, headline: dict[str, float], **layout: Any) -> PretrainedCfg:
    """Register a vector-family checkpoint shipped under ``weights/<arch>.mmoe_synthetic`` (see weights/README.md):
    experts of 16 units on 100-dimensional inputs, towers of 8, the experts laid out as ``layout`` says; trained on
    version 1 of the MMoE paper's synthetic benchmark (correlation 0.5, data seed 0) and scored by the test MSE of
    each task (``headline``: task -> MSE)."""
    name = f"{arch}.mmoe_synthetic"
    return register_pretrained(PretrainedCfg(
        architecture=arch, tag="mmoe_synthetic", hub_id=f"mtlzoo/{name}", sha256=sha256, tasks="mmoe_synthetic",
        dataset="mmoe_synthetic-v1", model_kwargs={"input_dim": 100, "expert_hidden": [16], "head_width": 8, **layout},
        results={"protocol": "mmoe_synthetic", "split": "test",
                 "metrics": {task: {"mse": mse} for task, mse in headline.items()}},
        bundled=name, default=True,
    ))


# Trained by weights/train_vector.py: 8 experts (CGC / PLE: 4 shared + 2 per task), EW, Adam, 4000 steps of 128,
# seed 0 of 3 (the cards hold every seed); test MSE per task of the float16 weights.
_bundled_mmoe_synthetic(
    "mmoe_mlp", "055f6fbaf8549565c75a312ae240bb36c82cbd9a37ca94f117d9d22219de268a",
    {"task1": 0.0665, "task2": 0.0998}, num_shared_experts=8,
)
_bundled_mmoe_synthetic(
    "cgc_mlp", "3046cf90d3ea80ef6a74655a27f232380b721326d120b124234ca0c8a624245a",
    {"task1": 0.0511, "task2": 0.0415}, num_shared_experts=4, num_task_experts=2,
)
_bundled_mmoe_synthetic(
    "ple_mlp", "73dfbbdab6f58fe11b59d691318dab6367eef67d3cf0d28e672cdced72a47a6b",
    {"task1": 0.0693, "task2": 0.049}, num_levels=2, num_shared_experts=4, num_task_experts=2,
)
_bundled_mmoe_synthetic(
    "dselectk_mlp", "f1c12e5572b90d2c8f83471fa4f60a4ff82697fd67a4884f1507ce3e82c1446f",
    {"task1": 0.0468, "task2": 0.07}, num_shared_experts=8, dselect_k=2,
)
