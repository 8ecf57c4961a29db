"""The TaskKind contract: registration from user code, validation, and the places that ask a kind instead of
branching on its name (meters per protocol, delta_m, model cards, configs)."""

from __future__ import annotations

import json

import pytest
import torch

import mtlzoo
from mtlzoo.metrics import create_meter
from mtlzoo.metrics.base import Meter
from mtlzoo.metrics.delta_m import delta_m
from mtlzoo.metrics.protocols import Protocol
from mtlzoo.tasks import HIGHER, LOWER, TASK_KINDS, Task, TaskKind


def _kind(**changes) -> TaskKind:
    fields = dict(name="heat", dense=True, default_channels=1, default_head="light", losses=("mse",),
                  metrics={"err": LOWER, "hit": HIGHER}, headline_metric="err",
                  compute_loss=lambda t, o, y: (o - y).square().mean(), postprocess=lambda t, o: o.float())
    return TaskKind(**{**fields, **changes})


class _SumMeter(Meter):
    def __init__(self, scale: float = 1.0) -> None:
        self.scale, self.total = scale, 0.0

    def update(self, pred, target) -> None:
        self.total += float((pred - target).abs().sum())

    def compute(self) -> dict[str, float]:
        return {"err": self.scale * self.total, "hit": 0.0}


def test_register_task_kind_makes_a_kind_usable_everywhere(restore_registries):
    kind = mtlzoo.register_task_kind(_kind(meter=lambda task, **options: _SumMeter(**options)))
    assert TASK_KINDS.get("heat") is kind
    task = Task("h", "heat")
    assert task.channels == 1 and task.loss == "mse" and Task.from_json(task.to_json()) == task
    model = mtlzoo.create_model("hps_tiny", tasks=[task])
    out = model(torch.randn(2, 3, 32, 32))
    assert torch.isfinite(model.losses(out, {"h": torch.zeros(2, 1, 32, 32)})["h"])
    meter = create_meter(task, "mtan_nyuv2")                     # a protocol that does not know the kind
    assert isinstance(meter, _SumMeter) and meter.scale == 1.0
    assert create_meter(task, Protocol("p", "f", "d", meters={"heat": {"scale": 2.0}})).scale == 2.0
    with pytest.raises(ValueError, match="already registered"):
        mtlzoo.register_task_kind(_kind())
    with pytest.raises(TypeError, match="TaskKind"):
        mtlzoo.register_task_kind({"name": "x"})


class _ZeroHead(torch.nn.Module):
    def __init__(self, in_channels) -> None:
        super().__init__()
        self.in_channels, self.bias = list(in_channels), torch.nn.Parameter(torch.zeros(1))

    def forward(self, features, size):
        return self.bias.expand(features[0].shape[0], 1, *size)


def test_an_unknown_kind_says_how_a_user_kind_is_registered():
    with pytest.raises(ValueError, match=r"Unknown task kind 'density'.*register_task_kind"):
        Task("crowd", "density")
    with pytest.raises(TypeError, match="str"):
        Task("crowd", 3)


def test_a_kind_builds_its_own_head_unless_the_task_names_one(restore_registries):
    mtlzoo.register_task_kind(_kind(build_head=lambda task, in_channels: _ZeroHead(in_channels)))
    model = mtlzoo.create_model("hps_tiny", tasks=[Task("h", "heat"), Task("g", "heat", head="light")])
    assert isinstance(model.heads["h"], _ZeroHead) and model.heads["h"].in_channels
    assert not isinstance(model.heads["g"], _ZeroHead)
    assert model(torch.randn(2, 3, 32, 32))["h"].shape == (2, 1, 32, 32)
    model.add_task(Task("later", "heat"))
    assert isinstance(model.heads["later"], _ZeroHead)


def test_a_protocol_may_replace_a_kind_meter_and_a_kind_without_one_is_named(restore_registries):
    mtlzoo.register_task_kind(_kind())
    task = Task("h", "heat")
    with pytest.raises(ValueError, match="kind 'heat' of task 'h' has no meter"):
        create_meter(task, "synthscenes")
    proto = Protocol("p", "f", "d", meter_factories={"heat": lambda task, **o: _SumMeter(3.0)})
    assert create_meter(task, proto).scale == 3.0
    keypoints = Task("kp", "keypoints", 4)
    assert create_meter(keypoints, "synthscenes").threshold == 0.1
    path = Protocol("q", "f", "d", meter_factories={"keypoints": "mtlzoo.metrics.keypoints:PCKMeter.for_task"},
                    meters={"keypoints": {"threshold": 0.3}})
    assert create_meter(keypoints, path).threshold == 0.3
    typo = Protocol("r", "f", "d", meter_factories={"keypoints": "mtlzoo.metrics.keypoints:PCKMeter.for_tsk"})
    with pytest.raises(ValueError, match="for_tsk.*'keypoints'"):
        create_meter(keypoints, typo)


@pytest.mark.parametrize("changes, match", [
    ({"metrics": {"err": 2}}, "HIGHER"),
    ({"headline_metric": "errr"}, "err"),
    ({"delta_metric": "nope"}, "err"),
    ({"resample": "cubic"}, "nearest"),
    ({"dense": False}, "resample=None"),
    ({"losses": ()}, "at least one"),
    ({"fraction_metrics": ("pct",)}, "pct"),
    ({"name": "bad name"}, "identifier"),
])
def test_a_malformed_kind_is_refused_with_what_is_accepted(changes, match):
    with pytest.raises(ValueError, match=match):
        _kind(**changes)


def test_delta_m_reads_directions_headlines_and_units_from_the_kind(restore_registries):
    mtlzoo.register_task_kind(_kind(delta_metric="hit", fraction_metrics=("hit",)))
    tasks = [Task("h", "heat")]
    assert delta_m({"h": {"err": 1.0}}, {"h": {"err": 2.0}}, style="libmtl", tasks=tasks) == pytest.approx(50.0)
    assert delta_m({"h": {"err": 1.0, "hit": 0.6}}, {"h": {"err": 2.0, "hit": 0.5}}, tasks=tasks) == \
        pytest.approx(20.0)                                      # vandenhende scores the kind's delta_metric
    with pytest.raises(ValueError, match="units"):
        delta_m({"h": {"hit": 60.0}}, {"h": {"hit": 0.5}}, tasks=tasks)
    # under a protocol, a task outside its preset enters with its kind's default next to the protocol's tasks
    result = {"semseg": {"miou": 0.55}, "h": {"err": 1.0, "hit": 0.6}}
    base = {"semseg": {"miou": 0.5}, "h": {"err": 2.0, "hit": 0.5}}
    assert delta_m(result, base, protocol="synthscenes", tasks=[Task("semseg", "segmentation", 3), *tasks]) == \
        pytest.approx((10.0 + 20.0) / 2)


def test_every_shipped_kind_has_a_meter_a_card_type_and_converts_its_targets():
    for name in TASK_KINDS.names():
        kind = TASK_KINDS.get(name)
        assert kind.meter is not None and kind.hf_task_type != "other", name
        assert set(kind.fraction_metrics) <= set(kind.metrics)
        channels = kind.default_channels or 3
        task = Task("t", name, channels)
        meter = create_meter(task, "synthscenes")
        assert isinstance(meter, Meter) and meter.kind == name, name
    assert TASK_KINDS.get("keypoints").hf_task_type == "keypoint-detection"
    assert TASK_KINDS.get("saliency").vandenhende_metric == "miou"


def test_every_shipped_kind_draws_example_targets_its_loss_and_meter_accept():
    tasks = [Task(f"t_{name}", name, TASK_KINDS.get(name).default_channels or 3) for name in TASK_KINDS.names()]
    model = mtlzoo.create_model("hps_tiny", tasks=tasks)
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(2, 3, 32, 32, generator=g)}
    for task in tasks:
        batch[task.name] = task.spec.example_target(task, 2, (32, 32), g)
    losses = model.losses(model(batch["image"]), {t.name: batch[t.name] for t in tasks})
    assert all(torch.isfinite(loss) for loss in losses.values())
    result = mtlzoo.evaluate(model, [batch], protocol="synthscenes", progress=False)
    for task in tasks:  # edge reports odsF only on request (meter option odsf=True)
        assert result[task.name] and set(result[task.name]) <= set(task.spec.metrics), task.kind


def test_the_model_card_names_the_kind_hf_task_type(tmp_path):
    tasks = [Task("kp", "keypoints", 3), Task("tags", "multilabel", 4)]
    model = mtlzoo.create_model("hps_tiny", tasks=tasks)
    results = {"kp": {"pck": 0.5}, "tags": {"map": 0.4, "f1": 0.3}}
    folder = model.save_pretrained(tmp_path / "m", results=results, protocol="synthscenes")
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "keypoint-detection" in card and "image-classification" in card
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert [t["kind"] for t in config["tasks"]] == ["keypoints", "multilabel"]
    assert mtlzoo.from_pretrained(folder).tasks == tasks
