"""The shipped synthscenes_hps_tiny baseline: what ``baseline="auto"`` uses under the synthscenes protocol."""

import math
import warnings

import pytest
import torch
from torch.utils.data import DataLoader

import mtlzoo
from mtlzoo.data import GENERATOR_VERSION, SynthScenes
from mtlzoo.metrics import DataMismatchWarning, get_baseline, get_protocol
from mtlzoo.tasks import task_preset

NAME = "synthscenes_hps_tiny"
# the largest value a non-fraction metric can take: angles in degrees; depth errors and BCE are merely >= 0
ANGLES = {"mean", "median", "rmse"}


def test_the_synthscenes_protocol_ships_this_baseline():
    assert get_protocol("synthscenes").baseline == NAME
    baseline = get_baseline(NAME)
    assert baseline.protocol == "synthscenes"
    assert baseline.data_version == GENERATOR_VERSION, (
        f"{NAME} was measured on synthscenes v{baseline.data_version}, the generator is at v{GENERATOR_VERSION}: "
        "measure it again (benchmarks/synthscenes_baseline.py)")
    assert isinstance(baseline.seeds, tuple) and len(baseline.seeds) >= 1 and baseline.command
    assert set(baseline.std) == set(baseline.metrics)


def test_every_value_is_in_its_metric_range():
    baseline = get_baseline(NAME)
    tasks = {t.name: t for t in task_preset("synthscenes")}
    assert set(baseline.metrics) == set(tasks)
    for name, metrics in baseline.metrics.items():
        spec = tasks[name].spec
        assert set(metrics) <= set(spec.metrics), (name, metrics)
        for metric, value in metrics.items():
            assert math.isfinite(value) and value >= 0, (name, metric, value)
            if metric in spec.fraction_metrics:
                assert value <= 1, (name, metric, value)
            if tasks[name].kind == "normals" and metric in ANGLES:
                assert value <= 180, (name, metric, value)
    # every task learns at the default size: far above the background-only mIoU of synthscenes v2 parts (~0.11)
    assert baseline.metrics["parts"]["miou"] > 0.4 and baseline.metrics["semseg"]["miou"] > 0.3


def test_evaluate_with_the_auto_baseline_gives_a_finite_delta_m():
    torch.manual_seed(0)
    model = mtlzoo.create_model("hps_tiny", tasks="synthscenes")
    version = get_baseline(NAME).data_version  # the data it was measured on: other versions get no delta_m
    data = DataLoader(SynthScenes("val", size=(24, 32), length=4, version=version), batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no shipped baseline" nor a protocol or data mismatch
        result = mtlzoo.evaluate(model, data, protocol="synthscenes", baseline="auto", progress=False)
    assert result.baseline == NAME and math.isfinite(result.delta_m)
    assert result.delta_m < 0  # an untrained network is worse than the trained single-task ones
    assert result.to_dict()["dataset"] == f"synthscenes-v{version}" and result.to_dict()["data_version"] == version


def test_data_of_another_generator_version_than_the_baseline_gets_no_delta_m():
    torch.manual_seed(0)
    model = mtlzoo.create_model("hps_tiny", tasks="synthscenes")
    measured = get_baseline(NAME).data_version
    other = 1 if measured != 1 else 2
    data = DataLoader(SynthScenes("val", size=(24, 32), length=2, version=other), batch_size=2)
    with pytest.warns(DataMismatchWarning) as caught:
        result = mtlzoo.evaluate(model, data, protocol="synthscenes", baseline="auto", progress=False)
    expected = (f"no delta_m: baseline {NAME!r} was measured on synthscenes version {measured}, the data scored is "
                f"synthscenes version {other}")
    assert any(str(w.message).startswith(expected) and "\n" not in str(w.message) for w in caught)
    assert result.delta_m is None and result.delta_m_refused.startswith(expected)
    saved = result.to_dict()
    assert "delta_m" not in saved and saved["delta_m_refused"].startswith(expected) and saved["data_version"] == other
