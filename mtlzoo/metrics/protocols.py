"""Named evaluation protocols: which meter options, delta_m style and metrics reproduce a paper family."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mtlzoo.metrics.base import Meter
from mtlzoo.registry import Registry
from mtlzoo.tasks import Task

DELTA_STYLES = ("vandenhende", "nash", "libmtl")


@dataclass(frozen=True)
class Protocol:
    """How one paper family computes its numbers.

    ``meters`` maps a task kind to the options of its meter, ``meter_factories`` a task kind to a meter factory
    that replaces the kind's own (a callable ``(task, **options) -> Meter`` or its ``"module:attr"`` path);
    kinds in neither use their TaskKind's meter with its defaults. ``delta_metrics`` maps a task name to the
    metrics that enter delta_m (absent: every metric both results share, or the headline for
    ``vandenhende``); ``task_preset`` and ``baseline`` name the matching task preset and shipped baseline, and
    ``dataset`` the registered data set its numbers are measured on (None: any data set).
    """

    name: str
    family: str
    description: str
    meters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    meter_factories: Mapping[str, Callable[..., Meter] | str] = field(default_factory=dict)
    delta_style: str = "vandenhende"
    delta_metrics: Mapping[str, tuple[str, ...]] | None = None
    task_preset: str | None = None
    baseline: str | None = None
    dataset: str | None = None

    def meter_options(self, kind: str) -> dict[str, Any]:
        """The options this protocol gives the meter of ``kind`` (empty: the meter's defaults)."""
        return dict(self.meters.get(kind, {}))


PROTOCOLS: Registry[Protocol] = Registry("protocol")


def _add(protocol: Protocol) -> None:
    if protocol.delta_style not in DELTA_STYLES:
        raise ValueError(f"protocol {protocol.name!r}: delta_style must be one of {list(DELTA_STYLES)}")
    PROTOCOLS.register(protocol.name)(protocol)


_MTINET_NORMALS = {"validity": "norm", "reduce": "pixel", "median": "global"}
_MTAN = {
    "segmentation": {"absent": "nan"},
    "depth": {"reduce": "batch_mean"},
    "normals": {"validity": "channel_sum", "reduce": "batch_mean", "median": "per_batch"},
}
_MTAN_SEG_DEPTH = {"semseg": ("miou", "pixel_acc"), "depth": ("abs_err", "abs_rel")}

_add(Protocol(
    "mtinet_nyud", "MTI-Net / ATRC (Vandenhende et al.)",
    "NYUD-v2 40 classes at 480x640: pooled confusion matrix (absent class = 0), pixel-pooled depth and "
    "normals with a true global median; edges auxiliary (balanced-BCE proxy, optional approximate odsF "
    "at maxDist 0.011). delta_m: Vandenhende over depth rmse, semseg miou, normals mean.",
    meters={"segmentation": {"absent": "zero"}, "depth": {"reduce": "pixel"}, "normals": _MTINET_NORMALS,
            "edge": {"max_dist": 0.011}},
    delta_style="vandenhende",
    delta_metrics={"semseg": ("miou",), "depth": ("rmse",), "normals": ("mean",)},
    task_preset="nyud", baseline="mtinet_hrnet18_nyud", dataset="nyud",
))
_add(Protocol(
    "mtinet_pascal", "MTI-Net / ATRC (Vandenhende et al.)",
    "PASCAL-Context 5 tasks: pooled IoU with absent class = 0 for semseg and parts, saliency maxF with "
    "beta^2 = 1 on image-averaged P/R (15 thresholds 0.2..0.9) and image-averaged mIoU, pixel-pooled "
    "normals; edges auxiliary (maxDist 0.0075). delta_m: Vandenhende over semseg, parts and saliency "
    "miou and normals mean.",
    meters={"segmentation": {"absent": "zero"}, "parts": {"absent": "zero"}, "saliency": {"reduce": "image"},
            "normals": _MTINET_NORMALS, "edge": {"max_dist": 0.0075}},
    delta_style="vandenhende",
    delta_metrics={"semseg": ("miou",), "parts": ("miou",), "saliency": ("miou",), "normals": ("mean",)},
    task_preset="pascal_context", baseline="mtinet_hrnet18_pascal", dataset="pascal_context",
))
_add(Protocol(
    "mtan_nyuv2", "MTAN / gradient balancers (CAGrad, Nash-MTL, FAMO)",
    "NYUv2 13 classes at 288x384: confusion matrix with NaN for absent classes, depth and normals "
    "averaged per test batch (per-batch median), normals valid where the channel sum is non-zero. "
    "delta_m: Nash style over all 9 metrics, lower is better. Papers average the last 10 epochs.",
    meters=_MTAN,
    delta_style="nash",
    delta_metrics={**_MTAN_SEG_DEPTH,
                   "normals": ("mean", "median", "within_11_25", "within_22_5", "within_30")},
    task_preset="nyuv2_mtan", baseline="cagrad_segnet_nyuv2", dataset="nyuv2_mtan",
))
_add(Protocol(
    "mtan_cityscapes", "MTAN / gradient balancers (CAGrad, Nash-MTL, FAMO)",
    "Cityscapes 7 classes at 128x256, inverse depth: as mtan_nyuv2. delta_m: Nash style over miou, "
    "pixel_acc, abs_err, abs_rel (the relative error dominates).",
    meters=_MTAN,
    delta_style="nash",
    delta_metrics=_MTAN_SEG_DEPTH,
    task_preset="cityscapes2", baseline="cagrad_segnet_cityscapes", dataset="cityscapes_mtan",
))
_ATRC = {"segmentation": {"absent": "zero"}, "parts": {"absent": "zero"}, "depth": {"reduce": "pixel"},
         "normals": _MTINET_NORMALS, "saliency": {"reduce": "pixel", "beta2": 0.3}}
_add(Protocol(
    "atrc_nyud", "ATRC / InvPT / TaskPrompter (ViT era, MTI-Net data)",
    "NYUD-v2 40 classes as ATRC / InvPT report it: pooled IoU (empty union = 0), pixel-pooled depth rmse and "
    "normal angles; edges: official numbers are SEISM odsF at maxDist 0.011 (the optional approximation here "
    "is not that number). delta_m: Vandenhende over semseg miou, depth rmse, normals mean.",
    meters={**_ATRC, "edge": {"max_dist": 0.011}},
    delta_style="vandenhende",
    delta_metrics={"semseg": ("miou",), "depth": ("rmse",), "normals": ("mean",)},
    task_preset="nyud", dataset="nyud",
))
_add(Protocol(
    "atrc_pascal", "ATRC / InvPT / TaskPrompter (ViT era, MTI-Net data)",
    "PASCAL-Context as ATRC / InvPT report it: pooled IoU for semseg and parts, saliency maxF with beta^2 = 0.3 "
    "on counts pooled over the set (thresholds 0.05..0.95), pixel-pooled normal angles; edges at maxDist 0.0075. "
    "delta_m: Vandenhende over semseg and parts miou, saliency maxf, normals mean.",
    meters={**_ATRC, "edge": {"max_dist": 0.0075}},
    delta_style="vandenhende",
    delta_metrics={"semseg": ("miou",), "parts": ("miou",), "saliency": ("maxf",), "normals": ("mean",)},
    task_preset="pascal_context", dataset="pascal_context",
))
_add(Protocol(
    "synthscenes", "mtlzoo synthscenes (pooled, MTI-Net-like)",
    "The offline synthscenes benchmark: pooled confusion matrix skipping absent classes, pixel-pooled "
    "depth and normals with a global median, saliency maxF with beta^2 = 0.3 on pooled counts, edge "
    "balanced-BCE proxy. delta_m: Vandenhende over each task's headline metric (edges auxiliary).",
    meters={"segmentation": {"absent": "skip"}, "parts": {"absent": "skip"}, "depth": {"reduce": "pixel"},
            "normals": _MTINET_NORMALS, "saliency": {"reduce": "pixel"}, "edge": {"max_dist": 0.011}},
    delta_style="vandenhende",
    delta_metrics={"semseg": ("miou",), "depth": ("rmse",), "normals": ("mean",), "saliency": ("maxf",),
                   "parts": ("miou",)},
    task_preset="synthscenes", baseline="synthscenes_hps_tiny", dataset="synthscenes",
))

_add(Protocol(
    "mmoe_synthetic", "MMoE synthetic regression (Ma et al., KDD 2018)",
    "The two regression tasks of the MMoE paper's synthetic benchmark: mean squared error per task over the "
    "split (also MAE and RMSE), pooled over examples. No single-task baseline ships, so no delta_m by default.",
    meters={"regression": {"mse": True}},
    delta_style="vandenhende",
    delta_metrics={"task1": ("mse",), "task2": ("mse",)},
    task_preset="mmoe_synthetic", dataset="mmoe_synthetic",
))

_add(Protocol(
    "generic", "mtlzoo (any data set)",
    "For data sets without a benchmark protocol of their own (folder:, hf:): every task kind's own meter with "
    "its default options. delta_m: Vandenhende over each task's headline metric.",
))


def get_protocol(protocol: str | Protocol) -> Protocol:
    """Resolve a protocol name (or pass a Protocol through)."""
    if isinstance(protocol, Protocol):
        return protocol
    return PROTOCOLS.get(protocol)


def list_protocols(pattern: str = "*") -> list[str]:
    """Names of the registered protocols."""
    return PROTOCOLS.names(pattern)


def _resolve(path: str, kind: str) -> Callable[..., Meter]:
    """The callable a ``"module:attr.attr"`` path names (how shipped kinds name their meter factories)."""
    module, _, attrs = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for attr in attrs.split("."):
            obj = getattr(obj, attr)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"meter factory {path!r} of task kind {kind!r} cannot be imported ({error}); expected "
                         "'package.module:callable' naming a (task, **options) -> Meter callable") from None
    return obj


def create_meter(task: Task, protocol: str | Protocol = "generic") -> Meter:
    """The meter for ``task``: the protocol's factory for its kind if it overrides one, else the kind's own
    ``meter`` factory, called with the options the protocol gives that kind."""
    proto = get_protocol(protocol)
    factory = proto.meter_factories.get(task.kind) or task.spec.meter
    if factory is None:
        raise ValueError(f"task kind {task.kind!r} of task {task.name!r} has no meter; give its TaskKind "
                         "meter=<callable (task, **options) -> Meter>")
    factory = _resolve(factory, task.kind) if isinstance(factory, str) else factory
    return factory(task, **proto.meter_options(task.kind))
