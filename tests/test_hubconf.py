"""hubconf.py: torch.hub.list / help / load on this repository, stdlib-only import, names in step with the registry."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mtlzoo

REPO = Path(__file__).resolve().parents[1]


def _hubconf():
    spec = importlib.util.spec_from_file_location("mtlzoo_hubconf_under_test", REPO / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A torch.hub cache where 'mtlzoo/mtlzoo:main' is this checkout, so list/help never download."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    (tmp_path / "mtlzoo_mtlzoo_main").symlink_to(REPO, target_is_directory=True)
    return "mtlzoo/mtlzoo:main"


def test_entry_names_match_the_registry() -> None:
    hub = _hubconf()
    missing = sorted(set(mtlzoo.list_models()) - set(hub._ARCHITECTURES))
    stale = sorted(set(hub._ARCHITECTURES) - set(mtlzoo.list_models()))
    assert not missing and not stale, f"hubconf._ARCHITECTURES: add {missing}, remove {stale}"
    pretrained = mtlzoo.list_models(pretrained=True)
    assert sorted(hub._PRETRAINED) == pretrained, f"hubconf._PRETRAINED must list exactly {pretrained}"


def test_hubconf_imports_only_the_standard_library() -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import hubconf; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'mtlzoo', 'timm', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_torch_hub_list_and_help(hub_dir: str) -> None:
    entries = torch.hub.list(hub_dir, trust_repo=True, skip_validation=True, verbose=False)
    expected = set(mtlzoo.list_models()) | {n.replace(".", "__") for n in mtlzoo.list_models(pretrained=True)}
    expected.add("from_pretrained")  # the generic loader: folders, hf-hub: names, pretrained names
    assert set(entries) == expected
    for name in entries:
        doc = torch.hub.help(hub_dir, name, trust_repo=True, skip_validation=True)
        assert doc and "pretrained" in doc, name
    assert "ResNet-50" in torch.hub.help(hub_dir, "hps_resnet50", trust_repo=True, skip_validation=True)


def test_torch_hub_load_local_builds_models(tmp_path: Path) -> None:
    model = torch.hub.load(str(REPO), "hps_tiny", source="local", tasks="synthscenes")
    assert isinstance(model, mtlzoo.MultiTaskModel) and model.task_names[0] == "semseg"
    with pytest.raises(ValueError, match="needs tasks="):
        torch.hub.load(str(REPO), "hps_tiny", source="local")


@pytest.mark.parametrize("name", ["stl_tiny", "cross_stitch_tiny", "nddr_tiny", "mtan_tiny", "padnet_tiny",
                                  "mtinet_tiny"])
def test_torch_hub_round_trip_of_the_zoo_families(name: str, tmp_path: Path) -> None:
    """torch.hub builds the same architecture as create_model, and loads a saved one with identical outputs."""
    tasks = [{"name": "semseg", "kind": "segmentation", "channels": 4}, {"name": "depth", "kind": "depth"}]
    torch.manual_seed(0)
    built = torch.hub.load(str(REPO), name, source="local", tasks=tasks)
    torch.manual_seed(0)
    source = mtlzoo.create_model(name, tasks=tasks).eval()
    assert built.config == source.config
    source.save_pretrained(tmp_path / name)
    loaded = torch.hub.load(str(REPO), "from_pretrained", str(tmp_path / name), source="local").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected, got = source(x), loaded(x)
    assert all(torch.equal(expected[t], got[t]) for t in source.task_names)


def test_torch_hub_load_pretrained_uses_the_default_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from huggingface_hub import constants

    from mtlzoo.models.pretrained import PRETRAINED_CFGS, PretrainedCfg

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("mtlzoo.hub.load.bundled_weights_dir", lambda: tmp_path)
    torch.manual_seed(0)
    source = mtlzoo.create_model("cs_tiny", tasks=[{"name": "depth", "kind": "depth"}])
    source.save_pretrained(tmp_path / "cs_tiny.hubtest")
    monkeypatch.setitem(PRETRAINED_CFGS._entries, "cs_tiny.synthscenes",
                        dataclasses.replace(PRETRAINED_CFGS.get("cs_tiny.synthscenes"), default=False))
    monkeypatch.setitem(PRETRAINED_CFGS._entries, "cs_tiny.hubtest",
                        PretrainedCfg("cs_tiny", "hubtest", "org/cs_tiny.hubtest", bundled="cs_tiny.hubtest",
                                      default=True))
    model = torch.hub.load(str(REPO), "cs_tiny", source="local", pretrained=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x)["depth"], source.eval()(x)["depth"])


@pytest.mark.slow
def test_fresh_clone_loads_trained_squadnet_without_network(tmp_path: Path) -> None:
    """The issue's done-when: torch.hub.load(clone, "squadnet_tiny", pretrained=True, source="local"), offline."""
    if not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    code = ("import sys, torch; model = torch.hub.load(sys.argv[1], 'squadnet_tiny', pretrained=True, "
            "source='local'); import mtlzoo; assert mtlzoo.__file__.startswith(sys.argv[1]), mtlzoo.__file__; "
            "out = model(torch.zeros(1, 3, 48, 64)); print(model.checkpoint_info['pretrained'], sorted(out))")
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-cache"), "TORCH_HOME": str(tmp_path / "th"),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code, str(clone)], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "squadnet_tiny.synthscenes" in out.stdout and "semseg" in out.stdout


def test_torch_hub_load_bundled_weights_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    for name in mtlzoo.list_models(pretrained=True):
        arch = name.partition(".")[0]
        trained = torch.hub.load(str(REPO), name.replace(".", "__"), source="local")
        default = torch.hub.load(str(REPO), arch, source="local", pretrained=True)
        assert trained.checkpoint_info["pretrained"] == default.checkpoint_info["pretrained"] == name
        fresh = torch.hub.load(str(REPO), name.replace(".", "__"), source="local", pretrained=False)
        assert fresh.config == trained.config and not hasattr(fresh, "checkpoint_info")
