"""Every synthscenes checkpoint's card is reproducible by a user: `mtlzoo eval <tag> --data synthscenes` scores the
shipped weights on the data version and input size the card records and gives the card's validation metrics and
delta_m (1e-5 relative), and the card says how the weights were trained and why with that method."""

from __future__ import annotations

import json

import pytest

from mtlzoo.cli import main
from mtlzoo.hub import bundled_weights_dir
from mtlzoo.models.pretrained import PRETRAINED_CFGS

SYNTHSCENES = PRETRAINED_CFGS.names("*.synthscenes")


def _card(name: str) -> dict:
    return json.loads((bundled_weights_dir() / PRETRAINED_CFGS.get(name).bundled / "config.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", SYNTHSCENES)
def test_mtlzoo_eval_reproduces_the_cards_validation_metrics(name, tmp_path, capsys):
    out = tmp_path / "result.json"
    assert main(["eval", name, "--data", "synthscenes", "--baseline", "auto", "--json", str(out)]) == 0
    capsys.readouterr()
    result, card = json.loads(out.read_text()), _card(name)["results"]
    assert result["dataset"] == PRETRAINED_CFGS.get(name).dataset  # the data version the weights were scored on
    for task, metrics in card["metrics"].items():
        for metric, value in metrics.items():
            assert result["metrics"][task][metric] == pytest.approx(value, rel=1e-5, abs=1e-12), (task, metric)
    if card.get("delta_m") is not None:
        # delta_m is a mean of relative changes in percent: metrics within 1e-5 relative move it by up to ~1e-3
        # points, which is not small relative to a delta_m near zero (ple_tiny: +0.17)
        assert result["delta_m"] == pytest.approx(card["delta_m"], rel=1e-5, abs=1e-3)


@pytest.mark.parametrize("name", [n for n in SYNTHSCENES if _card(n)["results"].get("data_version") == 3])
def test_a_portable_card_gives_its_seeds_and_the_recipe(name):
    card = _card(name)
    summary, training = card["results"]["over_seeds"], card["training"]
    assert summary["seeds"] == [0, 1, 2] and training["seed"] == 0
    assert summary["per_seed"]["0"] == card["results"]["metrics"]  # the shipped weights are seed 0's
    assert training["script"] == "weights/train_bundled.py" and training["input_size"] == [96, 128]
    assert training["method"] in {"ew", *[o.split("=", 1)[1] for o in training["overrides"] if "method" in o]}
