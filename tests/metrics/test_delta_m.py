"""delta_m reproduces published values from their per-metric rows (reference/benchmarks.md B.1, B.2, B.4, B.5)."""

import pytest

from mtlzoo.metrics import delta_m, delta_m_breakdown, delta_m_terms, get_baseline, list_baselines, list_protocols
from mtlzoo.metrics.delta_m import dominant_task
from mtlzoo.tasks import Task

# Nash-MTL Table 2 (NYUv2, SegNet-MTAN): mIoU, PixAcc, AbsErr, RelErr, Mean, Median, <11.25, <22.5, <30, Delta m
NYUV2_ROWS = {
    "LS": (39.29, 65.33, 0.5493, 0.2263, 28.15, 23.96, 22.09, 47.50, 61.08, 5.59),
    "SI": (38.45, 64.27, 0.5354, 0.2201, 27.60, 23.37, 22.53, 48.57, 62.32, 4.39),
    "RLW": (37.17, 63.77, 0.5759, 0.2410, 28.27, 24.18, 22.26, 47.05, 60.62, 7.78),
    "DWA": (39.11, 65.31, 0.5510, 0.2285, 27.61, 23.18, 24.17, 50.18, 62.39, 3.57),
    "UW": (36.87, 63.17, 0.5446, 0.2260, 27.04, 22.61, 23.54, 49.05, 63.65, 4.05),
    "MGDA": (30.47, 59.90, 0.6070, 0.2555, 24.88, 19.45, 29.18, 56.88, 69.36, 1.38),
    "PCGrad": (38.06, 64.64, 0.5550, 0.2325, 27.41, 22.80, 23.86, 49.83, 63.14, 3.97),
    "GradDrop": (39.39, 65.12, 0.5455, 0.2279, 27.48, 22.96, 23.38, 49.44, 62.87, 3.58),
    "CAGrad": (39.79, 65.49, 0.5486, 0.2250, 26.31, 21.58, 25.61, 52.36, 65.58, 0.20),
    "Nash-MTL": (40.13, 65.93, 0.5261, 0.2171, 25.26, 20.08, 28.40, 55.47, 68.15, -4.04),
}
# Nash-MTL Table 3 (Cityscapes): mIoU, PixAcc, AbsErr, RelErr, Delta m (Nash-MTL's own row is left out:
# it recomputes to 6.72 against the printed 6.82, a rounding gap of exactly 0.10 from unrounded seed means)
CITYSCAPES_ROWS = {
    "LS": (75.18, 93.49, 0.0155, 46.77, 22.60), "SI": (70.95, 91.73, 0.0161, 33.83, 14.11),
    "RLW": (74.57, 93.41, 0.0158, 47.79, 24.38), "DWA": (75.24, 93.52, 0.0160, 44.37, 21.45),
    "UW": (72.02, 92.85, 0.0140, 30.13, 5.89), "MGDA": (68.84, 91.54, 0.0309, 33.50, 44.14),
    "PCGrad": (75.13, 93.48, 0.0154, 42.07, 18.29), "GradDrop": (75.27, 93.53, 0.0157, 47.54, 23.73),
    "CAGrad": (75.16, 93.48, 0.0141, 37.60, 11.64), "IMTL-G": (75.33, 93.49, 0.0135, 38.41, 11.10),
}
# Jeong & Yoon CVPR 2024 Table 1 (NYUD-v2, MTI-Net HRNet-18): RMSE, mIoU, normal mean, Delta m
NYUD_ROWS = {
    "GD": (0.594, 38.67, 20.52, 9.53), "MGDA": (0.603, 38.89, 20.58, 9.21), "PCGrad": (0.596, 38.61, 20.50, 9.40),
    "CAGrad": (0.595, 38.80, 20.38, 9.84), "Aligned-MTL": (0.592, 39.02, 20.40, 10.17),
    "Connection strength": (0.565, 41.10, 19.54, 15.00),
}
# Same paper, Table 2 (PASCAL-Context): semseg mIoU, parts mIoU, saliency mIoU, saliency maxF, normal mean, Delta m
PASCAL_ROWS = {
    "GD": (62.17, 61.15, 67.99, 79.60, 14.70, 1.47), "MGDA": (61.75, 61.69, 67.32, 78.98, 14.77, 1.15),
    "PCGrad": (62.47, 61.46, 67.86, 79.38, 14.59, 1.86), "CAGrad": (62.22, 61.89, 67.46, 79.12, 14.97, 1.14),
    "Aligned-MTL": (62.43, 62.05, 67.94, 79.57, 14.76, 1.83),
    "Connection strength": (63.86, 63.05, 68.30, 79.26, 14.33, 3.70),
}


def _nyuv2(row):
    miou, pacc, abs_err, rel, mean, median, w1, w2, w3 = row[:9]
    return {"semseg": {"miou": miou / 100, "pixel_acc": pacc / 100},
            "depth": {"abs_err": abs_err, "abs_rel": rel},
            "normals": {"mean": mean, "median": median, "within_11_25": w1 / 100, "within_22_5": w2 / 100,
                        "within_30": w3 / 100}}


@pytest.mark.parametrize("method", sorted(NYUV2_ROWS))
@pytest.mark.parametrize("tasks", ["nyuv2_mtan", "mtan_nyuv2", None])
def test_nash_nyuv2_reproduces_published(method, tasks):
    value = delta_m(_nyuv2(NYUV2_ROWS[method]), "cagrad_segnet_nyuv2", style="nash", tasks=tasks)
    assert value == pytest.approx(NYUV2_ROWS[method][-1], abs=0.1)


@pytest.mark.parametrize("method", sorted(CITYSCAPES_ROWS))
def test_nash_cityscapes_reproduces_published(method):
    miou, pacc, abs_err, rel, published = CITYSCAPES_ROWS[method]
    metrics = {"semseg": {"miou": miou / 100, "pixel_acc": pacc / 100}, "depth": {"abs_err": abs_err, "abs_rel": rel}}
    assert delta_m(metrics, "cagrad_segnet_cityscapes", protocol="mtan_cityscapes") == pytest.approx(published, abs=0.1)


@pytest.mark.parametrize("method", sorted(NYUD_ROWS))
def test_vandenhende_nyud_reproduces_published(method):
    rmse, miou, mean, published = NYUD_ROWS[method]
    metrics = {"semseg": {"miou": miou / 100, "pixel_acc": 0.7}, "depth": {"rmse": rmse, "abs_rel": 0.15},
               "normals": {"mean": mean, "median": 13.0}}
    assert delta_m(metrics, "mtinet_hrnet18_nyud", style="vandenhende", tasks="nyud") == pytest.approx(
        published, abs=0.1)


@pytest.mark.parametrize("method", sorted(PASCAL_ROWS))
def test_vandenhende_pascal_uses_saliency_miou(method):
    seg, parts, sal_miou, sal_maxf, mean, published = PASCAL_ROWS[method]
    metrics = {"semseg": {"miou": seg / 100}, "parts": {"miou": parts / 100},
               "saliency": {"miou": sal_miou / 100, "maxf": sal_maxf / 100}, "normals": {"mean": mean}}
    assert delta_m(metrics, "mtinet_hrnet18_pascal", protocol="mtinet_pascal") == pytest.approx(published, abs=0.1)
    # the same call with the kinds given explicitly, and with nothing given (inferred from task names)
    tasks = [Task("semseg", "segmentation", 21), Task("parts", "parts", 7), Task("saliency", "saliency"),
             Task("normals", "normals")]
    for kinds in (tasks, None):
        assert delta_m(metrics, "mtinet_hrnet18_pascal", style="vandenhende", tasks=kinds) == pytest.approx(
            published, abs=0.1)


def test_styles_by_hand():
    base = {"a": {"miou": 0.5, "pixel_acc": 0.8}, "b": {"rmse": 2.0}}
    model = {"a": {"miou": 0.6, "pixel_acc": 0.8}, "b": {"rmse": 1.0}, "c": {"rmse": 5.0}}  # c has no baseline
    kinds = {"a": "segmentation", "b": "depth"}
    # relative changes, positive = better: a.miou +20, a.pixel_acc 0, b.rmse +50
    assert delta_m(model, base, style="vandenhende", tasks=kinds) == pytest.approx((20 + 50) / 2)
    assert delta_m(model, base, style="nash", tasks=kinds) == pytest.approx(-(20 + 0 + 50) / 3)
    assert delta_m(model, base, style="libmtl", tasks=kinds) == pytest.approx(((20 + 0) / 2 + 50) / 2)
    terms = delta_m_terms(model, base, "nash", kinds)
    assert terms["a"] == pytest.approx({"miou": 20.0, "pixel_acc": 0.0}) and terms["b"] == pytest.approx({"rmse": 50})


def test_errors_name_the_problem():
    nyuv2 = _nyuv2(NYUV2_ROWS["LS"])
    percent = {"semseg": {"miou": 39.29}}
    with pytest.raises(ValueError, match="units"):
        delta_m(percent, "cagrad_segnet_nyuv2", style="nash")
    with pytest.raises(ValueError, match="nash"):
        delta_m(nyuv2, "cagrad_segnet_nyuv2", style="nsh")
    with pytest.raises(ValueError, match="no task"):
        delta_m({"x": {"miou": 0.1}}, "cagrad_segnet_nyuv2")
    with pytest.raises(ValueError, match="one metric per task"):
        delta_m(nyuv2, "cagrad_segnet_nyuv2", style="vandenhende", select={"semseg": ("miou", "pixel_acc")})
    with pytest.raises(ValueError, match="nyuv2_mtan"):
        delta_m(nyuv2, "cagrad_segnet_nyuv2", style="nash", tasks="nyuv2_mtn")
    with pytest.raises(ValueError, match="missing"):
        delta_m({"edge": {"bce": 0.1}}, {"edge": {"bce": 0.2}}, style="vandenhende")


def test_shipped_baselines_say_their_protocol():
    assert set(list_baselines()) == {"cagrad_segnet_nyuv2", "cagrad_segnet_cityscapes", "mtinet_hrnet18_nyud",
                                     "mtinet_hrnet18_pascal", "synthscenes_hps_tiny"}
    for name in list_baselines():
        assert get_baseline(name).protocol in list_protocols()
    assert get_baseline("cagrad_segnet_nyuv2").protocol == "mtan_nyuv2"
    assert get_baseline("cagrad_segnet_nyuv2").metrics["semseg"]["miou"] == pytest.approx(0.3830)


def test_a_result_carries_its_protocol_into_delta_m():
    from mtlzoo.metrics import EvalResult

    miou, pacc, abs_err, rel, published = CITYSCAPES_ROWS["CAGrad"]
    metrics = {"semseg": {"miou": miou / 100, "pixel_acc": pacc / 100}, "depth": {"abs_err": abs_err, "abs_rel": rel}}
    result = EvalResult(metrics, "mtan_cityscapes")
    assert delta_m(result, "cagrad_segnet_cityscapes") == pytest.approx(published, abs=0.1)
    assert delta_m(result.to_dict(), get_baseline("cagrad_segnet_cityscapes")) == pytest.approx(published, abs=0.1)
    # a saved result used as the baseline: itself against itself is 0
    assert delta_m(result, result.to_dict()) == pytest.approx(0.0)


# --- which task a delta_m is made of: per-task shares and a dominating task, the published value unchanged ---

NEAR_ZERO = {"semseg": {"miou": 0.5}, "depth": {"rmse": 0.5}, "parts": {"miou": 0.005}}  # parts barely learnt


def test_a_near_zero_baseline_is_flagged_without_changing_the_published_value():
    result = {"semseg": {"miou": 0.51}, "depth": {"rmse": 0.49}, "parts": {"miou": 0.023}}
    parts = delta_m_breakdown(result, NEAR_ZERO, protocol="synthscenes")
    assert parts.value == delta_m(result, NEAR_ZERO, protocol="synthscenes")  # the formula as published
    assert parts.value == pytest.approx((2.0 + 2.0 + 360.0) / 3)
    assert parts.by_task == pytest.approx({"semseg": 2 / 3, "depth": 2 / 3, "parts": 120.0})
    assert parts.dominated_by == "parts" and parts.style == "vandenhende"


@pytest.mark.parametrize("style", ["vandenhende", "libmtl", "nash"])
@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e3])
def test_the_shares_add_up_to_delta_m_in_every_style_and_do_not_depend_on_units_or_order(style, scale):
    base = {"semseg": {"miou": 0.4, "pixel_acc": 0.6}, "depth": {"abs_err": 0.5 * scale, "abs_rel": 0.2 * scale}}
    result = {"semseg": {"miou": 0.44, "pixel_acc": 0.63}, "depth": {"abs_err": 0.52 * scale, "abs_rel": 0.1 * scale}}
    select = {"semseg": "miou", "depth": "abs_rel"} if style == "vandenhende" else \
        {"semseg": ("miou", "pixel_acc"), "depth": ("abs_err", "abs_rel")}
    parts = delta_m_breakdown(result, base, style=style, tasks="cityscapes2", select=select)
    assert sum(parts.by_task.values()) == pytest.approx(parts.value)
    assert parts.value == pytest.approx(delta_m(result, base, style=style, tasks="cityscapes2", select=select))
    flipped = delta_m_breakdown(dict(reversed(result.items())), base, style=style, tasks="cityscapes2",
                                select=select)
    assert flipped.by_task == pytest.approx(parts.by_task) and flipped.dominated_by == parts.dominated_by


def test_dominance_needs_more_than_the_others_together_and_a_large_share_or_a_tiny_baseline():
    assert dominant_task({"a": 30.0, "b": -10.0, "c": 15.0}) == "a"  # 30 > 25 and >= 10 points
    assert dominant_task({"a": 30.0, "b": -10.0, "c": 25.0}) is None  # 30 < 35: a mean of several changes
    assert dominant_task({"a": 5.0, "b": 1.0}) is None  # small changes are a balanced summary
    assert dominant_task({"a": 5.0, "b": 1.0}, small_baseline={"a"}) == "a"  # ... unless from a near-zero baseline
    assert dominant_task({"a": 500.0}) is None  # one task has nothing to dominate
    assert dominant_task({"a": -40.0, "b": 2.0}) == "a"  # losses dominate too
    result = {"semseg": {"miou": 0.5}, "depth": {"rmse": 0.5}, "parts": {"miou": 0.006}}
    small = delta_m_breakdown(result, NEAR_ZERO, protocol="synthscenes")  # parts +20 %: a share of 6.7 points
    assert small.by_task["parts"] == pytest.approx(20 / 3) and small.dominated_by == "parts"
