import math

import pytest
import torch

from mtlzoo.metrics import create_meter, get_protocol, list_protocols
from mtlzoo.metrics.depth import DepthMeter
from mtlzoo.metrics.normals import NormalsMeter
from mtlzoo.metrics.saliency import SaliencyMeter
from mtlzoo.tasks import TASK_KINDS, Task, task_preset


def test_presets_and_their_families():
    assert list_protocols() == ["atrc_nyud", "atrc_pascal", "generic", "mmoe_synthetic", "mtan_cityscapes",
                                "mtan_nyuv2", "mtinet_nyud", "mtinet_pascal", "synthscenes"]
    assert "MTAN" in get_protocol("mtan_nyuv2").family and "MTI-Net" in get_protocol("mtinet_pascal").family
    with pytest.raises(ValueError, match="mtan_nyuv2"):
        get_protocol("mtan_nyu")


@pytest.mark.parametrize("name", ["mtinet_nyud", "mtinet_pascal", "mtan_nyuv2", "mtan_cityscapes", "synthscenes",
                                  "atrc_nyud", "atrc_pascal", "mmoe_synthetic"])
def test_every_task_of_the_matching_preset_gets_a_meter_with_its_kind_keys(name):
    protocol = get_protocol(name)
    for task in task_preset(protocol.task_preset):
        meter = create_meter(task, name)
        assert meter.kind == task.kind
        if protocol.delta_metrics and task.name in protocol.delta_metrics:
            assert set(protocol.delta_metrics[task.name]) <= set(TASK_KINDS.get(task.kind).metrics)


def test_mtan_quirks():
    tasks = {t.name: t for t in task_preset("nyuv2_mtan")}
    seg = create_meter(tasks["semseg"], "mtan_nyuv2")
    seg.update(torch.tensor([[0, 1]]), torch.tensor([[0, -1]]))  # classes 1..12 absent: MTAN's mean is NaN
    assert math.isnan(seg.compute()["miou"])
    normals = create_meter(tasks["normals"], "mtan_nyuv2")
    assert isinstance(normals, NormalsMeter)
    assert (normals.validity, normals.reduce, normals.median) == ("channel_sum", "batch_mean", "per_batch")
    depth = create_meter(tasks["depth"], "mtan_cityscapes")
    assert isinstance(depth, DepthMeter) and depth.reduce == "batch_mean"


def test_mtinet_quirks():
    pascal = {t.name: t for t in task_preset("pascal_context")}
    sal = create_meter(pascal["saliency"], "mtinet_pascal")
    assert isinstance(sal, SaliencyMeter) and sal.reduce == "image" and sal.beta2 == 1.0
    assert create_meter(pascal["edge"], "mtinet_pascal").max_dist == 0.0075
    nyud = {t.name: t for t in task_preset("nyud")}
    assert create_meter(nyud["edge"], "mtinet_nyud").max_dist == 0.011
    seg = create_meter(nyud["semseg"], "mtinet_nyud")
    seg.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    assert seg.compute()["miou"] == pytest.approx(2 / 40)  # absent classes count as 0
    synth = create_meter(Task("s", "saliency"), "synthscenes")
    assert synth.reduce == "pixel" and synth.beta2 == pytest.approx(0.3)
    atrc = create_meter(pascal["saliency"], "atrc_pascal")
    assert atrc.reduce == "pixel" and atrc.beta2 == pytest.approx(0.3) and len(atrc.thresholds) == 19


def test_image_level_kinds_and_defaults():
    acc = create_meter(Task("cls", "classification", 3))
    acc.update(torch.tensor([1, 2]), torch.tensor([1, 1]))
    assert acc.compute() == {"accuracy": 0.5}
    reg = create_meter(Task("age", "regression"))
    reg.update(torch.tensor([[1.0]]), torch.tensor([[3.0]]))
    assert reg.compute() == {"mae": 2.0, "rmse": 2.0}
    mse = create_meter(Task("y", "regression"), "mmoe_synthetic")  # the MMoE benchmark reports the MSE too
    mse.update(torch.tensor([[1.0], [0.0]]), torch.tensor([[3.0], [1.0]]))
    assert mse.compute() == {"mae": 1.5, "rmse": pytest.approx(math.sqrt(2.5)), "mse": 2.5}
