import pytest

from mtlzoo.config import Config, apply_overrides, config_from_dict, load_config, resolve_config_path, shipped_configs


def test_defaults_validate():
    config = config_from_dict({})
    assert isinstance(config, Config) and config.model.name == "hps_tiny" and config.train.amp == "none"


def test_unknown_keys_are_rejected_with_a_suggestion():
    with pytest.raises(ValueError, match=r"unknown config key 'train.stepz'.*Did you mean 'steps'"):
        config_from_dict({"train": {"stepz": 3}})
    with pytest.raises(ValueError, match="Accepted keys here"):
        config_from_dict({"trainer": {}})


def test_types_and_values_are_checked():
    with pytest.raises(ValueError, match="train.steps"):
        config_from_dict({"train": {"steps": "ten"}})
    with pytest.raises(ValueError, match=r"train\.amp: got 'fp8'; expects one of"):
        config_from_dict({"train": {"amp": "fp8"}})
    with pytest.raises(ValueError, match="must be a mapping"):
        config_from_dict({"train": 3})
    assert config_from_dict({"optim": {"lr": 1}}).optim.lr == 1


def test_overrides_parse_yaml_values():
    data = apply_overrides({"train": {"steps": 5}}, ["train.steps=7", "method.kwargs={c: 0.2}", "model.tasks=nyud"])
    assert data == {"train": {"steps": 7}, "method": {"kwargs": {"c": 0.2}}, "model": {"tasks": "nyud"}}
    with pytest.raises(ValueError, match="section.key=value"):
        apply_overrides({}, ["train.steps"])


@pytest.mark.parametrize("name", shipped_configs())
def test_shipped_configs_validate(name):
    config = load_config(resolve_config_path(name))
    assert config.train.steps > 0


def test_shipped_configs_cover_the_benchmarks():
    assert {"synthscenes_hps", "synthscenes_squadnet", "nyud_mtinet", "pascal_context_mtinet", "nyuv2_mtan",
            "cityscapes2_mtan"} <= set(shipped_configs())


def test_missing_config_names_the_shipped_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match="synthscenes_hps"):
        resolve_config_path("synthscenes_hpz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("section, values, match", [
    ("train", {"clip_grad": -1.0}, r"train\.clip_grad.*-1\.0"),
    ("train", {"clip_grad": 0}, r"train\.clip_grad"),
    ("data", {"eval_batch_size": 0}, r"data\.eval_batch_size"),
    ("data", {"num_workers": -1}, r"data\.num_workers"),
    ("train", {"keep_last": 0}, r"train\.keep_last"),
    ("train", {"ema": 1.5}, r"train\.ema"),
    ("optim", {"lr": -0.1}, r"optim\.lr"),
    ("optim", {"betas": [0.9]}, r"optim\.betas.*\[0\.9\]"),
    ("optim", {"betas": [0.9, 1.5]}, r"optim\.betas"),
    ("train", {"best_metric": "semseq.miou"}, r"train\.best_metric.*'semseq'.*semseg"),
    ("train", {"best_metric": "semseg.mIoU"}, r"train\.best_metric.*'mIoU'.*miou"),
    ("train", {"best_metric": "miou"}, r"train\.best_metric.*task\.metric"),
])
def test_nonsense_values_are_refused_at_load(section, values, match):
    with pytest.raises(ValueError, match=match):
        config_from_dict({section: values})


def test_best_metric_is_checked_against_the_configured_tasks():
    tasks = [{"name": "sal", "kind": "saliency"}]
    assert config_from_dict({"model": {"tasks": tasks}, "train": {"best_metric": "sal.maxf"}}).train.best_metric
    assert config_from_dict({"train": {"best_metric": "delta_m"}}).train.best_metric == "delta_m"
    with pytest.raises(ValueError, match="train.best_metric"):
        config_from_dict({"train": {"best_metric": "semseg.miou"}, "model": {"tasks": tasks}})


def test_yaml_floats_in_exponent_form_are_floats(tmp_path):
    path = tmp_path / "lr.yaml"
    path.write_text("optim:\n  lr: 1e-3\n  weight_decay: 5E-4\nschedule:\n  gamma: .5\n", encoding="utf-8")
    config = load_config(path, ["optim.momentum=9e-1"])
    assert config.optim.lr == 1e-3 and config.optim.weight_decay == 5e-4 and config.schedule.gamma == 0.5
    assert config.optim.momentum == 0.9


@pytest.mark.parametrize("text, match", [
    ("train: {steps: 3\n", r"bad\.yaml.*line \d+"),
    ("- a\n- b\n", r"bad\.yaml.*mapping.*list"),
    ("42\n", r"bad\.yaml.*mapping.*int"),
])
def test_malformed_files_give_one_line_errors(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=match) as info:
        load_config(path)
    assert "\n" not in str(info.value)


def test_malformed_overrides_name_the_key():
    with pytest.raises(ValueError, match=r"train\.steps.*\{"):
        load_config(None, ["train.steps={"])
    with pytest.raises(ValueError, match=r"override 'train\.steps\.x=1'.*train\.steps is not a section"):
        load_config(None, ["train.steps=3", "train.steps.x=1"])
    with pytest.raises(ValueError, match=r"train\.steps: got \{'x': 1\} \(dict\); expects int"):
        load_config(None, ["train.steps.x=1"])


def test_sections_built_in_python_are_checked_too():
    from mtlzoo.config import DataConfig, OptimConfig, TrainConfig

    with pytest.raises(ValueError, match=r"train\.clip_grad: got -1\.0"):
        TrainConfig(clip_grad=-1.0)
    with pytest.raises(ValueError, match=r"data\.eval_batch_size: got 0"):
        DataConfig(eval_batch_size=0)
    with pytest.raises(ValueError, match=r"optim\.betas"):
        OptimConfig(betas=[0.9])
    assert TrainConfig(clip_grad=1.0).clip_grad == 1.0
