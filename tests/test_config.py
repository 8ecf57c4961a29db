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
    with pytest.raises(ValueError, match="amp must be one of"):
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
