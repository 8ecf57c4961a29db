import pytest

import mtlzoo
from mtlzoo.registry import Registry


def test_register_get_and_list():
    registry = Registry("widget")

    @registry.register()
    def blue():
        return "blue"

    registry.register("green")(lambda: "green")
    assert registry.get("blue") is blue
    assert registry.names() == ["blue", "green"]
    assert registry.names("g*") == ["green"]
    assert "blue" in registry and len(registry) == 2


def test_duplicate_registration_is_refused():
    registry = Registry("widget")
    registry.register("a")(1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a")(2)


def test_unknown_name_lists_close_matches():
    registry = Registry("widget")
    for name in ("resnet18", "resnet50", "convnext_tiny"):
        registry.register(name)(name)
    with pytest.raises(ValueError, match="Did you mean: resnet18") as info:
        registry.get("resnet19")
    assert "Unknown widget 'resnet19'" in str(info.value)
    with pytest.raises(TypeError, match="str"):
        registry.get(3)


def test_model_registry_errors_name_close_models():
    with pytest.raises(ValueError, match="hps_resnet50"):
        mtlzoo.create_model("hps_resnet51", tasks="nyud")
    with pytest.raises(ValueError, match="needs tasks"):
        mtlzoo.create_model("hps_tiny")
    with pytest.raises(ValueError, match="pretrained=True"):
        mtlzoo.create_model("hps_tiny.synthscenes", tasks="nyud")


def test_list_models_filters_by_pattern():
    names = mtlzoo.list_models()
    assert names == sorted(names)
    assert {"hps_tiny", "hps_resnet18", "hps_resnet50", "hps_mobilenetv3_large_100", "hps_efficientnet_b0",
            "hps_convnext_tiny"} <= set(names)
    assert all(n.startswith("hps_") for n in mtlzoo.list_models("hps_*"))
    assert all("." in n for n in mtlzoo.list_models(pretrained=True))
