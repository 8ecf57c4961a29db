"""Published single-task baselines, in mtlzoo units (fractions in [0, 1], degrees, metres), for delta_m."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mtlzoo.registry import Registry


@dataclass(frozen=True)
class Baseline:
    """A single-task reference vector: ``metrics`` is ``{task: {metric: value}}`` under ``protocol``."""

    name: str
    protocol: str
    source: str
    metrics: Mapping[str, Mapping[str, float]] = field(repr=False)


BASELINES: Registry[Baseline] = Registry("baseline")


def _add(name: str, protocol: str, source: str, metrics: dict[str, dict[str, float]]) -> None:
    BASELINES.register(name)(Baseline(name, protocol, source, metrics))


_add(
    "cagrad_segnet_nyuv2", "mtan_nyuv2",
    "CAGrad single-task SegNet runs, as used by CAGrad / Nash-MTL / FAMO (NYUv2 13 classes, 288x384)",
    {
        "semseg": {"miou": 0.3830, "pixel_acc": 0.6376},
        "depth": {"abs_err": 0.6754, "abs_rel": 0.2780},
        "normals": {"mean": 25.01, "median": 19.21, "within_11_25": 0.3014, "within_22_5": 0.5720,
                    "within_30": 0.6915},
    },
)
_add(
    "cagrad_segnet_cityscapes", "mtan_cityscapes",
    "CAGrad single-task SegNet runs, as used by CAGrad / Nash-MTL / FAMO (Cityscapes 7 classes, 128x256)",
    {
        "semseg": {"miou": 0.7401, "pixel_acc": 0.9316},
        "depth": {"abs_err": 0.0125, "abs_rel": 27.77},
    },
)
_add(
    "mtinet_hrnet18_nyud", "mtinet_nyud",
    "Independent MTI-Net HRNet-18 models, Jeong & Yoon CVPR 2024 Table 1 (NYUD-v2 40 classes)",
    {
        "semseg": {"miou": 0.3318, "pixel_acc": 0.6504, "mean_acc": 0.4507},
        "depth": {"rmse": 0.667, "abs_rel": 0.186},
        "normals": {"mean": 20.75, "median": 14.04, "within_11_25": 0.4132, "within_22_5": 0.6826,
                    "within_30": 0.7804},
    },
)
_add(
    "mtinet_hrnet18_pascal", "mtinet_pascal",
    "Independent MTI-Net HRNet-18 models, Jeong & Yoon CVPR 2024 Table 2 (PASCAL-Context)",
    {
        "semseg": {"miou": 0.6030, "pixel_acc": 0.8988},
        "parts": {"miou": 0.6056},
        "saliency": {"miou": 0.6705, "maxf": 0.7898},
        "normals": {"mean": 14.76, "median": 11.92, "within_11_25": 0.4761, "within_22_5": 0.8102,
                    "within_30": 0.9065},
    },
)


def get_baseline(name: str) -> Baseline:
    """The shipped baseline called ``name`` (see :func:`list_baselines`)."""
    return BASELINES.get(name)


def list_baselines(pattern: str = "*") -> list[str]:
    """Names of the shipped single-task baselines."""
    return BASELINES.names(pattern)
