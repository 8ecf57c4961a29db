"""publish / push_to_hub against huggingface_hub with its HTTP layer replaced: nothing leaves the machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import HfApi

import mtlzoo
from mtlzoo.models import publish


class FakeHub:
    """Records the HfApi calls publish makes and what the uploaded folder held at upload time."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.uploaded: dict[str, bytes] = {}
        monkeypatch.setattr(HfApi, "create_repo", self._record("create_repo"))
        monkeypatch.setattr(HfApi, "create_branch", self._record("create_branch"))
        monkeypatch.setattr(HfApi, "upload_folder", lambda api, **kwargs: self._upload(**kwargs))

    def _record(self, name: str):
        def method(api, repo_id, **kwargs):
            self.calls.append((name, {"repo_id": repo_id, **kwargs}))
            return f"https://huggingface.co/{repo_id}"

        return method

    def _upload(self, **kwargs):
        import fnmatch

        self.calls.append(("upload_folder", kwargs))
        root = Path(kwargs["folder_path"])
        for path in root.rglob("*"):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and not any(fnmatch.fnmatch(rel, p) for p in kwargs["ignore_patterns"]):
                self.uploaded[rel] = path.read_bytes()
        return "commit-info"


def test_publish_uploads_weights_config_and_card(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = FakeHub(monkeypatch)
    (checkpoint / "pytorch_model.bin").write_bytes(b"a pickle that must not be published")
    (checkpoint / ".mtlzoo-tmp-x").write_bytes(b"temporary")
    assert publish(checkpoint, "org/tiny", private=True, commit_message="first") == "commit-info"
    names = [name for name, _ in hub.calls]
    assert names == ["create_repo", "upload_folder"]
    assert hub.calls[0][1] == {"repo_id": "org/tiny", "private": True, "exist_ok": True}
    upload = hub.calls[1][1]
    assert upload["repo_id"] == "org/tiny" and upload["commit_message"] == "first" and upload["revision"] is None
    assert sorted(hub.uploaded) == ["README.md", "config.json", "model.safetensors"]


def test_publish_to_a_branch_creates_it(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = FakeHub(monkeypatch)
    publish(checkpoint, "org/tiny", revision="v1")
    assert [name for name, _ in hub.calls] == ["create_repo", "create_branch", "upload_folder"]
    assert hub.calls[1][1]["branch"] == "v1" and hub.calls[2][1]["revision"] == "v1"


def test_publish_writes_a_missing_card_and_refuses_broken_folders(checkpoint: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    hub = FakeHub(monkeypatch)
    (checkpoint / "README.md").unlink()
    publish(checkpoint, "org/tiny")
    assert 'from_pretrained("hf-hub:org/tiny")' in hub.uploaded["README.md"].decode()
    (checkpoint / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="model.safetensors is not a valid safetensors file: .* truncated or corrupt"):
        publish(checkpoint, "org/tiny")
    with pytest.raises(ValueError, match="looks like 'org/name'"):
        publish(checkpoint, "tiny")
    assert [name for name, _ in hub.calls] == ["create_repo", "upload_folder"]


def test_push_to_hub_saves_then_uploads(model: mtlzoo.MultiTaskModel, monkeypatch: pytest.MonkeyPatch,
                                        outputs_close) -> None:
    hub = FakeHub(monkeypatch)
    model.push_to_hub("org/pushed", results={"depth": {"rmse": 0.1}}, protocol="synthscenes", dtype="float16")
    assert sorted(hub.uploaded) == ["README.md", "config.json", "model.safetensors"]
    assert b"float16" in hub.uploaded["config.json"]
    assert 'from_pretrained("hf-hub:org/pushed")' in hub.uploaded["README.md"].decode()


def test_nothing_reaches_the_network_in_offline_mode(checkpoint: Path) -> None:
    with pytest.raises(Exception, match="(?i)offline"):
        HfApi().model_info("org/tiny")
