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


# Trained on synthscenes by weights/train_bundled.py; val split, synthscenes protocol. Version 3 (the portable
# generator) at 96x128, the version-2 leaderboard's best method where it is significantly better than EW there,
# else EW, 3 seeds on the CPU (seed 0 shipped; the cards hold every seed and say why each method and layout);
# squadnet_tiny: version 1, the earlier recipe (its retraining waits for a GPU, see weights/README.md).
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

_bundled_synthscenes(
    "invpt_tiny", "1c9ae44cfba27e369d7de301e90956653974e4f8c3c8f5802d867cc3f551a2a3",
    {"semseg": {"miou": 0.4218}, "depth": {"rmse": 1.0516}, "normals": {"mean": 20.9221},
     "edge": {"bce": 0.0502}, "saliency": {"maxf": 0.848}, "parts": {"miou": 0.6509}},
    data_version=3,
)
_bundled_synthscenes(
    "cross_stitch_tiny", "f0b7447cbc85966ba248c438adf957cc2ee779f9d667f8c84001f2503698136a",
    {"semseg": {"miou": 0.5826}, "depth": {"rmse": 0.8391}, "normals": {"mean": 14.9305},
     "edge": {"bce": 0.0321}, "saliency": {"maxf": 0.9194}, "parts": {"miou": 0.8248}},
    data_version=3, width=10,
)
_bundled_synthscenes(
    "padnet_tiny", "7cac683831868f4ee6d3d634a9e6a78604b637b82e95ce6cff7d959455762423",
    {"semseg": {"miou": 0.4832}, "depth": {"rmse": 0.8366}, "normals": {"mean": 17.8095},
     "edge": {"bce": 0.0486}, "saliency": {"maxf": 0.8914}, "parts": {"miou": 0.7942}},
    data_version=3,
)
_bundled_synthscenes(
    "mtinet_tiny", "f546b6aae6aab5383bd2a1d5322b8ce0f3d52f15afb392b4d83166e995b4442e",
    {"semseg": {"miou": 0.5012}, "depth": {"rmse": 0.816}, "normals": {"mean": 15.1239},
     "edge": {"bce": 0.0356}, "saliency": {"maxf": 0.9074}, "parts": {"miou": 0.8098}},
    data_version=3, task_channels=[4, 8, 16, 32],
)
_bundled_synthscenes(
    "mmoe_tiny", "e0588a9a3f9e590abcd39a40b225b529845c40c8375de56999559f2b259117d9",
    {"semseg": {"miou": 0.5683}, "depth": {"rmse": 0.8478}, "normals": {"mean": 13.9782},
     "edge": {"bce": 0.0275}, "saliency": {"maxf": 0.9292}, "parts": {"miou": 0.8341}},
    data_version=3,
)
_bundled_synthscenes(
    "nddr_tiny", "f92497d04464b12d10d4232356e4649bb3d31b81b2fa89a1bee340a49332bd18",
    {"semseg": {"miou": 0.5489}, "depth": {"rmse": 0.8456}, "normals": {"mean": 15.8373},
     "edge": {"bce": 0.0341}, "saliency": {"maxf": 0.9051}, "parts": {"miou": 0.8085}},
    data_version=3, width=10,
)
_bundled_synthscenes(
    "cgc_tiny", "63e212ec584b8a71495c003ba7ab7ecef9f1e9ff1b7172aca070503f57ec728c",
    {"semseg": {"miou": 0.4833}, "depth": {"rmse": 1.0156}, "normals": {"mean": 17.5921},
     "edge": {"bce": 0.0293}, "saliency": {"maxf": 0.8726}, "parts": {"miou": 0.7351}},
    data_version=3, width=10,
)
_bundled_synthscenes(
    "mtan_tiny", "2108ac75b240bda2095dc61261f45f6dd1872210cf4a4e45386d68a5af716b25",
    {"semseg": {"miou": 0.5559}, "depth": {"rmse": 0.8062}, "normals": {"mean": 15.7854},
     "edge": {"bce": 0.043}, "saliency": {"maxf": 0.9143}, "parts": {"miou": 0.8305}},
    data_version=3, output_stride=8,
)
_bundled_synthscenes(
    "ple_tiny", "f693d236c106a2c45baba9f87328a7d10ccb054e7dbc166e3786cb2e6b07f07d",
    {"semseg": {"miou": 0.5014}, "depth": {"rmse": 0.9229}, "normals": {"mean": 17.6451},
     "edge": {"bce": 0.0368}, "saliency": {"maxf": 0.8918}, "parts": {"miou": 0.7549}},
    data_version=3, width=10,
)
_bundled_synthscenes(
    "dselectk_tiny", "57b6e8fa071163d9704be46a24b77393d1bdd8d0b6881257c65be61ec6637dc4",
    {"semseg": {"miou": 0.528}, "depth": {"rmse": 0.889}, "normals": {"mean": 16.4298},
     "edge": {"bce": 0.0329}, "saliency": {"maxf": 0.9099}, "parts": {"miou": 0.7748}},
    data_version=3,
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
