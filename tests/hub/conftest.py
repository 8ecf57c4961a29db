"""Hub tests never touch the network: offline mode and a fresh HF cache for every test."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants

import mtlzoo
from mtlzoo.models.pretrained import PRETRAINED_CFGS, PretrainedCfg


@pytest.fixture(autouse=True)
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HF_HUB_OFFLINE on and HF_HUB_CACHE in a temporary folder; returns that cache folder."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def _trained_like_model() -> mtlzoo.MultiTaskModel:
    torch.manual_seed(0)
    net = mtlzoo.create_model("hps_tiny", tasks="synthscenes")
    net.train()
    with torch.no_grad():
        net(torch.randn(2, 3, 32, 32))  # moves BatchNorm running statistics away from their defaults
    return net.eval()


@pytest.fixture
def model(_trained_like_model: mtlzoo.MultiTaskModel) -> mtlzoo.MultiTaskModel:
    """A tiny synthscenes model with deterministic, non-default weights (BN statistics included); a fresh copy."""
    return copy.deepcopy(_trained_like_model)


@pytest.fixture
def checkpoint(tmp_path: Path, model: mtlzoo.MultiTaskModel) -> Path:
    """A saved checkpoint folder of ``model``."""
    return model.save_pretrained(tmp_path / "ckpt", results={"semseg": {"miou": 0.25}}, protocol="synthscenes",
                                 training={"epochs": 2, "lr": 3e-4})


@pytest.fixture
def register_cfg(monkeypatch: pytest.MonkeyPatch):
    """Register a PretrainedCfg for the duration of one test."""

    def add(cfg: PretrainedCfg) -> PretrainedCfg:
        monkeypatch.setitem(PRETRAINED_CFGS._entries, cfg.name, cfg)
        return cfg

    return add


@pytest.fixture
def outputs_close():
    """``close(a, b, atol)``: same tasks and the same outputs on a fixed input."""

    def close(a: mtlzoo.MultiTaskModel, b: mtlzoo.MultiTaskModel, atol: float = 1e-6) -> bool:
        x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            out_a, out_b = a.eval()(x), b.eval()(x)
        return list(out_a) == list(out_b) and all(torch.allclose(out_a[k], out_b[k], atol=atol) for k in out_a)

    return close
