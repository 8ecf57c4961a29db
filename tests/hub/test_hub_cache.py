"""install_to_hf_cache lays a checkpoint out as huggingface_hub does; offline loading by repo id then works."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download, snapshot_download

from mtlzoo.hub import CheckpointNotFoundError, install_to_hf_cache, parse_hub_name
from mtlzoo.models import from_pretrained


def test_layout_matches_the_hf_cache(checkpoint: Path, offline_hub: Path) -> None:
    snapshot = install_to_hf_cache(checkpoint, "org/tiny", revision="main")
    storage = offline_hub / "models--org--tiny"
    commit = (storage / "refs" / "main").read_text()
    assert snapshot == storage / "snapshots" / commit and len(commit) == 40
    for name in ("config.json", "model.safetensors", "README.md"):
        link = snapshot / name
        assert link.read_bytes() == (checkpoint / name).read_bytes()
        assert link.resolve().parent == (storage / "blobs").resolve()
    assert install_to_hf_cache(checkpoint, "org/tiny") == snapshot  # same content, same snapshot


def test_hf_hub_download_finds_installed_files_offline(checkpoint: Path) -> None:
    snapshot = install_to_hf_cache(checkpoint, "org/tiny", revision="v1")
    assert Path(hf_hub_download("org/tiny", "config.json", revision="v1")) == snapshot / "config.json"
    assert Path(snapshot_download("org/tiny", revision="v1")) == snapshot
    with pytest.raises(Exception, match="offline|cache|local"):
        hf_hub_download("org/tiny", "config.json", revision="main")


def test_from_pretrained_by_repo_id_and_pinned_revision(checkpoint: Path, model, outputs_close) -> None:
    snapshot = install_to_hf_cache(checkpoint, "org/tiny")
    assert outputs_close(model, from_pretrained("hf-hub:org/tiny"))
    assert outputs_close(model, from_pretrained(f"hf-hub:org/tiny@{snapshot.name}"))
    with pytest.raises(ValueError, match="pins revision"):
        from_pretrained(f"hf-hub:org/tiny@{snapshot.name}", revision="main")


def test_an_explicit_commit_revision_is_used_as_snapshot(checkpoint: Path, model, outputs_close) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = install_to_hf_cache(checkpoint, "org/tiny", revision=commit)
    assert snapshot.name == commit and not (snapshot.parent.parent / "refs").exists()
    assert outputs_close(model, from_pretrained(f"hf-hub:org/tiny@{commit}"))


def test_missing_repo_error_says_how_to_fetch(checkpoint: Path) -> None:
    with pytest.raises(CheckpointNotFoundError) as err:
        from_pretrained("hf-hub:org/absent@v2")
    message = str(err.value)
    assert "org/absent" in message and "hf download org/absent --revision v2" in message
    assert "install_to_hf_cache" in message and "offline" in message


def test_pickle_only_repo_is_refused_by_default(checkpoint: Path, model, outputs_close) -> None:
    import torch

    torch.save(model.state_dict(), checkpoint / "pytorch_model.bin")
    (checkpoint / "model.safetensors").unlink()
    install_to_hf_cache(checkpoint, "org/pickled")
    with pytest.raises(CheckpointNotFoundError, match="trust_pickle=True"):
        from_pretrained("hf-hub:org/pickled")
    assert outputs_close(model, from_pretrained("hf-hub:org/pickled", trust_pickle=True))


def test_bad_names_and_folders(tmp_path: Path) -> None:
    assert parse_hub_name("hf-hub:a/b@refs/pr/1") == ("a/b", "refs/pr/1")
    with pytest.raises(ValueError, match="starts with 'hf-hub:'"):
        parse_hub_name("a/b")
    with pytest.raises(ValueError, match="not a checkpoint folder"):
        install_to_hf_cache(tmp_path, "org/x")


@pytest.mark.slow
def test_offline_environment_end_to_end(checkpoint: Path, tmp_path: Path, model, outputs_close) -> None:
    """A fresh interpreter with only HF_HUB_OFFLINE=1 and HF_HUB_CACHE set loads the installed checkpoint."""
    cache = tmp_path / "fresh-cache"
    install_to_hf_cache(checkpoint, "org/e2e", cache_dir=cache)
    script = textwrap.dedent("""
        import sys, torch, mtlzoo
        from huggingface_hub import hf_hub_download
        hf_hub_download("org/e2e", "model.safetensors")
        model = mtlzoo.from_pretrained("hf-hub:org/e2e")
        x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            torch.save({k: v for k, v in model(x).items()}, sys.argv[1])
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    out = tmp_path / "out.pt"
    subprocess.run([sys.executable, "-c", script, str(out)], env=env, check=True, timeout=120)
    import torch

    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
    got = torch.load(out, weights_only=True)
    assert all(torch.allclose(got[k], expected[k], atol=1e-6) for k in expected)


@pytest.mark.parametrize("revision", ["../../..", "../outside", "..", "a/../../b", "/tmp/abs", "refs\\..\\x", "a//b",
                                      ".hidden", "main/", "", "x@y", "v1..2"])
def test_revisions_that_could_leave_the_cache_are_refused(checkpoint: Path, offline_hub: Path, tmp_path: Path,
                                                          revision: str) -> None:
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ValueError) as err:
        install_to_hf_cache(checkpoint, "org/tiny", revision=revision)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and f"got {revision!r}" in message
    assert "40-hex commit or a branch / tag name" in message
    assert sorted(tmp_path.rglob("*")) == before and not offline_hub.exists()  # nothing written, anywhere
    with pytest.raises(ValueError, match="40-hex commit or a branch / tag name"):
        from_pretrained(f"hf-hub:org/tiny@{revision}" if revision else "hf-hub:org/tiny", revision=revision or "..")


@pytest.mark.parametrize("repo_id", ["../x", "org/..", "org/../x", "/org/x", "org\\x", "org/x/y", "org/a--b", "org/ x",
                                     "org/.x", "justaname", ""])
def test_repo_ids_that_are_not_org_name_are_refused(checkpoint: Path, offline_hub: Path, repo_id: str) -> None:
    with pytest.raises(ValueError) as err:
        install_to_hf_cache(checkpoint, repo_id)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and f"got {repo_id!r}" in message and "looks like 'org/name'" in message
    assert not offline_hub.exists()
    with pytest.raises(ValueError, match="looks like 'org/name'"):
        from_pretrained(f"hf-hub:{repo_id}")


def test_branch_tag_and_pr_revisions_install_and_load(checkpoint: Path, offline_hub: Path, model,
                                                      outputs_close) -> None:
    for revision in ("v1.0", "release_2-rc.1", "refs/pr/1"):
        snapshot = install_to_hf_cache(checkpoint, "org/tiny", revision=revision)
        assert (offline_hub / "models--org--tiny" / "refs" / revision).read_text() == snapshot.name
        assert outputs_close(model, from_pretrained("hf-hub:org/tiny", revision=revision))


def test_a_path_outside_the_cache_is_refused_even_past_the_name_checks(checkpoint: Path, offline_hub: Path,
                                                                       tmp_path: Path, monkeypatch) -> None:
    """Defence in depth: were a bad revision to pass validate_revision, the resolved-path check still stops it."""
    monkeypatch.setattr("mtlzoo.hub.cache.validate_revision", lambda revision: revision)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ValueError, match=r"would write .*outside the Hugging Face cache") as err:
        install_to_hf_cache(checkpoint, "org/tiny", revision="../../../escaped")
    assert len(str(err.value).splitlines()) == 1
    assert sorted(tmp_path.rglob("*")) == before
