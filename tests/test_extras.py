"""Optional dependencies (smp, matplotlib, tensorboard, datasets): a missing one names the extra that installs it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mtlzoo.cli import main
from mtlzoo.extras import EXTRAS, MissingExtraError, require
from mtlzoo.models.encoders import create_encoder
from mtlzoo.plots import plot_curves
from mtlzoo.train.runlog import RunLog


@pytest.fixture
def missing(monkeypatch: pytest.MonkeyPatch):
    """``missing(name)``: make ``import name`` fail as if the package were not installed."""
    return lambda name: monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("module, extra", sorted(EXTRAS.items()))
def test_require_names_the_extra(missing, module: str, extra: str) -> None:
    missing(module)
    with pytest.raises(MissingExtraError, match=rf"needs '{module}'.*pip install 'mtlzoo\[{extra}\]'"):
        require(module, "this feature")


def test_require_refuses_a_module_that_is_not_optional() -> None:
    with pytest.raises(ValueError, match="'torch' is not an optional dependency"):
        require("torch", "anything")


def test_each_optional_part_says_which_extra(missing, tmp_path: Path) -> None:
    missing("segmentation_models_pytorch")
    with pytest.raises(MissingExtraError, match=r"encoder 'smp:resnet18'.*mtlzoo\[smp\]"):
        create_encoder("smp:resnet18")
    missing("matplotlib")
    with pytest.raises(MissingExtraError, match=r"plotting.*mtlzoo\[plots\]"):
        plot_curves({"a": [(0, 1.0)]}, tmp_path / "a.png", "title", "loss")
    missing("tensorboard")
    with pytest.raises(MissingExtraError, match=r"train.tensorboard=true.*mtlzoo\[tensorboard\]"):
        RunLog(tmp_path, tensorboard=True)


def test_cli_reports_a_missing_extra_in_one_line(missing, capsys, tmp_path: Path) -> None:
    missing("segmentation_models_pytorch")
    assert main(["train", "model.name=hps", "model.kwargs={encoder: 'smp:resnet18'}", "train.steps=1",
                 f"train.out_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("mtlzoo train: error:") and "pip install 'mtlzoo[smp]'" in err[-1]


def test_demo_runs_without_matplotlib_and_says_plots_were_skipped(missing, capsys, tmp_path: Path) -> None:
    missing("matplotlib")
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "plots skipped:" in out and "mtlzoo[plots]" in out and "reloaded via torch.hub.load" in out
