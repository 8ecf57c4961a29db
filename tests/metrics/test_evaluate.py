import math
import warnings

import pytest
import torch
from torch import nn

from mtlzoo.metrics import EvalResult, evaluate
from mtlzoo.tasks import Task


class _Oracle(nn.Module):
    """Reads the answer hidden in the image: channel 0 holds class ids, channel 1 depth; normals are +z."""

    def __init__(self, classes: int = 3, noise: float = 0.0) -> None:
        super().__init__()
        self.tasks = [Task("semseg", "segmentation", classes), Task("depth", "depth"), Task("normals", "normals")]
        self.scale = nn.Parameter(torch.ones(()))
        self.noise = noise
        self.classes = classes

    def forward(self, x):
        logits = nn.functional.one_hot(x[:, 0].long(), self.classes).permute(0, 3, 1, 2).float() * self.scale
        normals = torch.zeros_like(x)
        normals[:, 2] = 1.0
        return {"semseg": logits, "depth": x[:, 1:2] * self.scale + self.noise, "normals": normals}


def _batches(n=3, size=(6, 8)):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        seg = torch.randint(0, 3, (2, *size), generator=g)
        depth = torch.rand(2, 1, *size, generator=g) * 5 + 0.5
        normals = torch.zeros(2, 3, *size)
        normals[:, 2] = 1.0
        image = torch.stack([seg.float(), depth[:, 0], torch.zeros(2, *size)], dim=1)
        out.append({"image": image, "semseg": seg, "depth": depth, "normals": normals})
    return out


def test_perfect_model_scores_perfectly_and_result_names_protocol():
    model = _Oracle()
    model.train()
    result = evaluate(model, _batches(), protocol="mtinet_nyud", progress=False)
    assert isinstance(result, EvalResult) and result.protocol == "mtinet_nyud"
    assert result["semseg"]["miou"] == 1.0 and result["depth"]["rmse"] == pytest.approx(0.0, abs=1e-6)
    assert result["normals"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert model.training  # mode restored
    assert result.to_dict()["protocol"] == "mtinet_nyud" and "delta_m" not in result.to_dict()


def test_delta_m_from_a_baseline_and_missing_targets():
    batches = _batches()
    for b in batches:
        del b["normals"]  # normals never scored: left out of the result
    baseline = {"semseg": {"miou": 0.5}, "depth": {"rmse": 0.2}}
    result = evaluate(_Oracle(noise=0.1), batches, protocol="synthscenes", baseline=baseline, progress=False)
    assert set(result) == {"semseg", "depth"}
    assert result["depth"]["rmse"] == pytest.approx(0.1, rel=1e-5)
    assert result.delta_m == pytest.approx((100.0 + 50.0) / 2, rel=1e-5) and result.delta_style == "vandenhende"
    assert "delta_m=75.00" in repr(result)


def test_shipped_baseline_from_another_protocol_warns():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(_Oracle(13), _batches(1), protocol="mtan_cityscapes", baseline="cagrad_segnet_nyuv2",
                          progress=False)
    assert any("mixes protocols" in str(w.message) for w in caught)
    assert result.baseline == "cagrad_segnet_nyuv2"


def test_amp_channels_last_and_resizing():
    batches = _batches(1)
    small = [{**b, "image": b["image"]} for b in batches]
    result = evaluate(_Oracle(), small, amp=True, channels_last=True, progress=True)
    assert result["semseg"]["pixel_acc"] == 1.0

    class Half(_Oracle):
        def forward(self, x):  # outputs at half resolution are resized to the target
            return {k: v[..., ::2, ::2] for k, v in super().forward(x).items()}

    assert 0.0 <= evaluate(Half(), batches, progress=False)["semseg"]["miou"] <= 1.0
    with pytest.raises(ValueError, match="no batch"):
        evaluate(_Oracle(), [{"image": batches[0]["image"]}], progress=False)


def test_zoo_model_on_synthscenes_loader():
    from torch.utils.data import DataLoader

    from mtlzoo.data import SynthScenes
    from mtlzoo.models import create_model

    model = create_model("hps_tiny", tasks="synthscenes")
    loader = DataLoader(SynthScenes("val", size=(32, 48), length=4), batch_size=2)
    result = evaluate(model, loader, protocol="synthscenes", progress=False)
    assert set(result) == {t.name for t in model.tasks}
    for task in model.tasks:
        assert set(result[task.name]) <= set(task.spec.metrics)


def test_auto_baseline_and_averaging_seeds():
    from mtlzoo.metrics import average_results

    result = evaluate(_Oracle(40), _batches(1), protocol="mtinet_nyud", baseline="auto", progress=False)
    assert result.baseline == "mtinet_hrnet18_nyud" and result.delta_style == "vandenhende"
    # 3 of 40 classes seen (absent ones count 0): miou 3/40; depth and normals perfect (+100 % each)
    assert result.delta_m == pytest.approx((100 * (0.075 - 0.3318) / 0.3318 + 100 + 100) / 3, rel=1e-4)
    mtan = evaluate(_Oracle(13), _batches(1), protocol="mtan_nyuv2", baseline="auto", progress=False)
    assert mtan.delta_style == "nash" and math.isnan(mtan.delta_m)  # MTAN's NaN mIoU for absent classes
    runs = [EvalResult({"semseg": {"miou": v}}, "synthscenes") for v in (0.4, 0.5, 0.6)]
    mean, std = average_results(runs)
    assert mean.protocol == "synthscenes" and mean["semseg"]["miou"] == pytest.approx(0.5)
    assert std["semseg"]["miou"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="protocols"):
        average_results([runs[0], EvalResult({"semseg": {"miou": 0.1}}, "mtan_nyuv2")])


def _caught(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in caught]


def test_a_saved_result_is_a_baseline_and_auto_without_one_says_so():
    import json

    batches = _batches()
    for b in batches:
        del b["normals"]  # a perfect normals score (0 degrees) cannot be a baseline
    first = evaluate(_Oracle(noise=0.1), batches, protocol="synthscenes", progress=False)
    saved = json.loads(json.dumps(first.to_dict()))  # what `mtlzoo eval --json` writes
    again = evaluate(_Oracle(noise=0.1), batches, protocol="synthscenes", baseline=saved, progress=False)
    assert again.delta_m == pytest.approx(0.0) and again.baseline == "custom"
    result, messages = _caught(lambda: evaluate(_Oracle(), _batches(), protocol="generic", baseline="auto",
                                                progress=False))
    assert result.delta_m is None
    assert any("generic" in m and "no shipped baseline" in m for m in messages)
    _, messages = _caught(lambda: evaluate(_Oracle(noise=0.2), batches, protocol="mtinet_nyud", baseline=saved,
                                           progress=False))
    assert any("'synthscenes'" in m and "mixes protocols" in m for m in messages)


def test_a_batch_key_that_names_no_task_warns_once_with_the_close_match():
    batches = _batches()
    for b in batches:
        b["semseq"] = b.pop("semseg")
    result, messages = _caught(lambda: evaluate(_Oracle(), batches, progress=False))
    assert "semseg" not in result
    hits = [m for m in messages if "'semseq'" in m]
    assert len(hits) == 1 and "semseg" in hits[0].replace("'semseq'", "")


def test_non_finite_predictions_name_the_task_batch_and_step():
    class Broken(_Oracle):
        def forward(self, x):
            out = super().forward(x)
            if x[0, 1, 0, 0] == self.bad_value:
                out["depth"] = out["depth"] * float("nan")
            return out

    batches = _batches()
    model = Broken()
    model.bad_value = batches[1]["image"][0, 1, 0, 0]
    _, messages = _caught(lambda: evaluate(model, batches, progress=False, step=120))
    hits = [m for m in messages if "non-finite" in m]
    assert len(hits) == 1 and "task 'depth'" in hits[0] and "batch 1" in hits[0] and "step 120" in hits[0]
    _, messages = _caught(lambda: evaluate(_Oracle(), batches, progress=False))
    assert not [m for m in messages if "non-finite" in m]


class _Spy(_Oracle):
    """Records the devices it is moved to and the autocast dtype its forward runs under."""

    def __init__(self):
        super().__init__()
        self.moves, self.dtypes = [], []

    def _apply(self, fn, recurse=True):
        self.moves.append(fn(torch.zeros(())).device.type)
        return super()._apply(fn, recurse)

    def forward(self, x):
        self.dtypes.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return super().forward(x)


def test_device_moves_the_model_and_amp_takes_a_dtype():
    model = _Spy()
    evaluate(model, _batches(1), device="cpu", progress=False)
    assert model.moves == ["cpu"]  # moved to the requested device (CUDA for `mtlzoo eval --device cuda`)
    for amp, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16), ("none", None), (True, torch.bfloat16),
                       (False, None)):
        model.dtypes.clear()
        evaluate(model, _batches(1), amp=amp, progress=False)
        assert model.dtypes == [dtype], amp
    with pytest.raises(ValueError, match="bf16"):
        evaluate(model, _batches(1), amp="fp32", progress=False)


def test_cli_eval_reads_the_json_it_wrote_as_a_baseline(tmp_path, capsys):
    import json

    from mtlzoo.cli import main
    from mtlzoo.models import create_model

    tasks = [{"name": "semseg", "kind": "segmentation", "channels": 8}, {"name": "depth", "kind": "depth"}]
    create_model("hps_tiny", tasks=tasks).save_pretrained(tmp_path / "model")
    data = ["--data-opt", "size=[32,48]", "--data-opt", "length=4"]
    saved = tmp_path / "result.json"
    assert main(["eval", str(tmp_path / "model"), *data, "--json", str(saved)]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "model"), *data, "--baseline", str(saved)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["delta_m"] == pytest.approx(0.0) and result["baseline"] == str(saved)  # named by its file


def test_labels_outside_the_class_range_warn_naming_the_task():
    batches = _batches(1)
    batches[0]["semseg"][0, 0, 0] = 40  # 13 classes, ignore index -1
    result, messages = _caught(lambda: evaluate(_Oracle(13), batches, protocol="mtan_nyuv2", progress=False))
    assert any("task 'semseg'" in m and "[0, 12]" in m for m in messages)


def test_a_target_that_does_not_fit_names_the_task():
    batches = _batches(1)
    batches[0]["depth"] = batches[0]["depth"][:1]  # one target for two images
    with pytest.raises(ValueError, match=r"task 'depth': depth meter: prediction of shape"):
        evaluate(_Oracle(), batches, progress=False)


def test_targets_for_tasks_the_model_lacks_stay_silent():
    batches = _batches()
    for b in batches:
        b["edge"] = torch.zeros(2, 1, 6, 8)  # the data set has a task this model does not
    _, messages = _caught(lambda: evaluate(_Oracle(), batches, progress=False))
    assert not [m for m in messages if "edge" in m]


def test_the_result_says_which_task_dominates_its_delta_m():
    batches = _batches()
    for b in batches:
        del b["normals"]
    baseline = {"semseg": {"miou": 0.005}, "depth": {"rmse": 0.2}}  # a near-zero mIoU: any change is huge
    result = evaluate(_Oracle(noise=0.1), batches, protocol="synthscenes", baseline=baseline, progress=False)
    assert result.delta_m == pytest.approx(((1.0 - 0.005) / 0.005 * 100 + 50.0) / 2, rel=1e-5)  # value unchanged
    saved = result.to_dict()
    assert saved["dominated_by"] == "semseg" and result.dominated_by == "semseg"
    assert saved["delta_m_by_task"] == pytest.approx({"semseg": 9950.0, "depth": 25.0}, rel=1e-5)
    fair = evaluate(_Oracle(noise=0.1), batches, protocol="synthscenes",
                    baseline={"semseg": {"miou": 0.9}, "depth": {"rmse": 0.11}}, progress=False)
    assert fair.to_dict()["dominated_by"] is None


def test_a_baseline_of_another_data_set_gives_no_delta_m():
    from torch.utils.data import DataLoader

    from mtlzoo.data import SynthScenes
    from mtlzoo.metrics import DataMismatchWarning
    from mtlzoo.models import create_model

    model = create_model("hps_tiny", tasks="nyuv2_mtan")
    data = DataLoader(SynthScenes("val", size=(24, 32), length=2, tasks=model.task_names, version=2), batch_size=2)
    with pytest.warns(DataMismatchWarning, match="baseline 'cagrad_segnet_nyuv2' was measured on nyuv2_mtan, the "
                                                 "data scored is synthscenes version 2"):
        result = evaluate(model, data, protocol="mtan_nyuv2", baseline="auto", progress=False)
    assert result.delta_m is None and "nyuv2_mtan" in result.to_dict()["delta_m_refused"]
    saved = {"protocol": "mtan_nyuv2", "dataset": "synthscenes-v1", "metrics": dict(result)}  # a saved v1 result
    with pytest.warns(DataMismatchWarning, match="measured on synthscenes version 1, the data scored is "
                                                 "synthscenes version 2"):
        evaluate(model, data, protocol="mtan_nyuv2", baseline=saved, progress=False)
    same = {**saved, "dataset": data.dataset.name, "metrics": {"depth": result["depth"]}}
    assert evaluate(model, data, protocol="mtan_nyuv2", baseline=same, progress=False).delta_m is not None
