"""The vector-family checkpoints (``<arch>.mmoe_synthetic``): `mtlzoo eval` reproduces the test MSE of each card,
and each card states what the issue asks of it (every seed, mean ± std, parameters, the commands, the data)."""

from __future__ import annotations

import json
import statistics

import pytest

import mtlzoo
from mtlzoo.cli import main
from mtlzoo.hub import bundled_weights_dir
from mtlzoo.models.pretrained import PRETRAINED_CFGS

VECTOR = PRETRAINED_CFGS.names("*.mmoe_synthetic")
FAMILIES = ["cgc_mlp", "dselectk_mlp", "mmoe_mlp", "ple_mlp"]


def _config(name: str) -> dict:
    return json.loads((bundled_weights_dir() / PRETRAINED_CFGS.get(name).bundled / "config.json").read_text())


def test_every_vector_family_has_a_checkpoint_that_its_bare_name_loads():
    assert sorted(PRETRAINED_CFGS.get(n).architecture for n in VECTOR) == FAMILIES
    model = mtlzoo.create_model("cgc_mlp", pretrained=True)
    assert model.checkpoint_info["pretrained"] == "cgc_mlp.mmoe_synthetic" and model.input_shape == (100,)


@pytest.mark.parametrize("name", VECTOR)
def test_mtlzoo_eval_reproduces_the_cards_test_mse(name, tmp_path, capsys):
    out = tmp_path / "result.json"
    assert main(["eval", name, "--data", "mmoe_synthetic", "--split", "test", "--batch-size", "500",
                 "--json", str(out)]) == 0
    assert "the settings the checkpoint recorded: correlation=0.5, seed=0" in capsys.readouterr().err
    result, card = json.loads(out.read_text()), _config(name)["results"]
    assert result["dataset"] == card["dataset"] == "mmoe_synthetic-v1" and result["protocol"] == "mmoe_synthetic"
    for task, metrics in card["metrics"].items():
        for metric, value in metrics.items():
            assert result["metrics"][task][metric] == pytest.approx(value, rel=1e-5), (task, metric)


@pytest.mark.parametrize("name", VECTOR)
def test_the_card_gives_every_seed_the_parameters_and_the_commands(name):
    config = _config(name)
    arch, training, summary = config["architecture"], config["training"], config["results"]["over_seeds"]
    assert summary["seeds"] == [0, 1, 2] and training["seed"] == 0
    assert summary["per_seed"]["0"] == config["results"]["metrics"]  # the shipped weights are seed 0's
    for task in ("task1", "task2"):
        per_seed = [summary["per_seed"][str(s)][task]["mse"] for s in summary["seeds"]]
        assert summary["mean"][task]["mse"] == pytest.approx(statistics.fmean(per_seed))
        assert summary["std"][task]["mse"] == pytest.approx(statistics.stdev(per_seed))
    model = mtlzoo.create_model(name, pretrained=True)
    assert training["parameters"] == sum(p.numel() for p in model.parameters())
    assert training["command"] == f".venv/bin/python weights/train_vector.py {arch}"
    assert training["eval_command"] == f"mtlzoo eval {name} --data mmoe_synthetic --split test"
    assert training["data_options"] == config["results"]["data_options"] == {"correlation": 0.5, "seed": 0}
    card = (bundled_weights_dir() / PRETRAINED_CFGS.get(name).bundled / "README.md").read_text()
    assert "mean ± sample std" in card and training["command"] in card and "model(inputs)" in card


@pytest.mark.parametrize("option, fragment", [("correlation=2", "correlation must lie in [-1, 1]"),
                                              ("seed=x", "seed must be an integer >= 0, got 'x' (str)")])
def test_a_bad_data_option_is_one_line_naming_it(option, fragment, capsys):
    assert main(["eval", "mmoe_mlp.mmoe_synthetic", "--data", "mmoe_synthetic", "--data-opt", option]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mtlzoo eval: error: ")]
    assert len(errors) == 1 and "--data-opt: mmoe_synthetic" in errors[0] and fragment in errors[0], errors
