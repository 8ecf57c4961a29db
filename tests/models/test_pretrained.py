import pytest

from mtlzoo.models.pretrained import (
    PRETRAINED_CFGS,
    PretrainedCfg,
    default_tag,
    register_pretrained,
    resolve_pretrained,
)


@pytest.fixture
def registry(monkeypatch):
    """Pretrained configs registered inside a test are dropped after it."""
    monkeypatch.setattr(PRETRAINED_CFGS, "_entries", dict(PRETRAINED_CFGS._entries))
    return PRETRAINED_CFGS


def test_a_bare_name_resolves_to_the_tag_marked_default_not_the_first_alphabetically(registry):
    register_pretrained(PretrainedCfg("hps_tiny", "aaa", "org/hps_tiny.aaa"))
    assert default_tag("hps_tiny") == "synthscenes"
    assert resolve_pretrained("hps_tiny", None).tag == "synthscenes"


def test_an_architecture_without_a_default_tag_asks_for_one(registry):
    register_pretrained(PretrainedCfg("hps_resnet18", "b", "org/b"))
    register_pretrained(PretrainedCfg("hps_resnet18", "a", "org/a"))
    with pytest.raises(ValueError, match=r"no default pretrained tag; name one of \['hps_resnet18.a', 'hps_resnet18.b"):
        resolve_pretrained("hps_resnet18", None)
    register_pretrained(PretrainedCfg("hps_resnet18", "c", "org/c", default=True))
    assert resolve_pretrained("hps_resnet18", None).tag == "c"
    with pytest.raises(ValueError, match="one default tag"):
        register_pretrained(PretrainedCfg("hps_resnet18", "d", "org/d", default=True))
