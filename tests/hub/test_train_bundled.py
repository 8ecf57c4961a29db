"""weights/train_bundled.py's bookkeeping: a seed already trained with the recipe is kept on a rerun, and the
card's statistics over seeds are the sample mean and std of every seed's scores."""

from __future__ import annotations

import importlib.util
import json
import statistics
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "weights" / "train_bundled.py"
_SPEC = importlib.util.spec_from_file_location("train_bundled", _PATH)
train_bundled = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(train_bundled)

RECIPE = ["model.kwargs.width=10", "method.name=ew"]


def _card(folder: Path, overrides=RECIPE, steps=1500, results=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"training": {"overrides": overrides, "steps": steps}, "results": {"metrics": {}} if results else None}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(("card", "kept"), [
    ({}, True),
    ({"overrides": ["method.name=ew"]}, False),  # another recipe
    ({"steps": 20}, False),  # a quick check of the pipeline, not the recipe
    ({"results": False}, False),  # saved before its evaluation finished
])
def test_a_rerun_keeps_only_seeds_scored_with_the_same_recipe(tmp_path, card, kept):
    assert train_bundled.finished(_card(tmp_path / "final", **card), RECIPE, 1500) is kept
    assert train_bundled.finished(tmp_path / "absent", RECIPE, 1500) is False


def test_every_recipe_says_why_its_method_and_names_its_architecture():
    assert set(train_bundled.METHOD_CHOICE) == set(train_bundled.RECIPES)
    for arch, (config, overrides) in train_bundled.RECIPES.items():
        assert config.startswith("synthscenes_") and any(o.startswith("method.name=") for o in overrides), arch
    assert set(train_bundled.MODEL_SIZE) | set(train_bundled.MODEL_CHOICE) <= set(train_bundled.RECIPES)


def test_the_statistics_over_seeds_are_the_sample_mean_and_std():
    scores = {s: {"metrics": {"semseg": {"miou": m}}, "delta_m": d, "baseline": "b"}
              for s, m, d in [(0, 0.5, 1.0), (1, 0.6, 3.0), (2, 0.7, 2.0)]}
    summary = train_bundled.over_seeds(scores)
    assert summary["seeds"] == [0, 1, 2] and summary["baseline"] == "b"
    assert summary["mean"]["semseg"]["miou"] == pytest.approx(statistics.fmean([0.5, 0.6, 0.7]))
    assert summary["std"]["semseg"]["miou"] == pytest.approx(statistics.stdev([0.5, 0.6, 0.7]))
    assert (summary["delta_m_mean"], summary["delta_m_std"]) == (pytest.approx(2.0), pytest.approx(1.0))
