"""Every checkpoint bundled under weights/: it loads offline, matches its registered hash, and reproduces its logits."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import mtlzoo
from mtlzoo.hub import bundled_weights_dir
from mtlzoo.hub.files import sha256_file
from mtlzoo.metrics import get_protocol
from mtlzoo.metrics.provenance import measured_on
from mtlzoo.models.pretrained import PRETRAINED_CFGS

BUNDLED = [name for name in PRETRAINED_CFGS.names() if PRETRAINED_CFGS.get(name).bundled]


def test_bundled_folders_are_registered() -> None:
    folders = sorted(p.name for p in bundled_weights_dir().iterdir() if (p / "config.json").is_file())
    assert folders == sorted(PRETRAINED_CFGS.get(name).bundled for name in BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_checkpoint_matches_its_registration(name: str) -> None:
    cfg = PRETRAINED_CFGS.get(name)
    folder = bundled_weights_dir() / cfg.bundled
    assert cfg.sha256 == sha256_file(folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == cfg.architecture
    assert config["results"]["protocol"] == cfg.results["protocol"] == get_protocol(cfg.results["protocol"]).name
    assert not measured_on(config["results"]["dataset"]).differs_from(measured_on(cfg.dataset))  # data, version
    for task, metrics in cfg.results["metrics"].items():  # the registry quotes headline metrics, rounded
        for metric, value in metrics.items():
            assert config["results"]["metrics"][task][metric] == pytest.approx(value, abs=5e-5), (task, metric)
    assert (folder / "model.safetensors").stat().st_size < 8 * 2**20


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_checkpoint_reproduces_its_logits(name: str) -> None:
    """smp-style logits match: the stored input through the loaded model gives the stored outputs."""
    cfg = PRETRAINED_CFGS.get(name)
    model = mtlzoo.create_model(name, pretrained=True)
    assert model.checkpoint_info["source"] == str(bundled_weights_dir() / cfg.bundled)
    stored = load_file(str(bundled_weights_dir() / cfg.bundled / "logits_check.safetensors"))
    with torch.no_grad():
        outputs = model(stored["input"])
    assert sorted(f"output.{k}" for k in outputs) == sorted(k for k in stored if k != "input")
    for task, out in outputs.items():
        torch.testing.assert_close(out, stored[f"output.{task}"], rtol=1e-4, atol=1e-4)


def test_everything_under_weights_stays_under_30_mb() -> None:
    """The budget of the bundled checkpoints (issue 22): the repository stays a quick clone."""
    files = [p for p in bundled_weights_dir().rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert sum(p.stat().st_size for p in files) < 30e6
