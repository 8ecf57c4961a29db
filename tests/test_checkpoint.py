import os
import shutil
import sys

import pytest
import torch

from mtlzoo import checkpoint
from mtlzoo.checkpoint import (
    aside_path,
    atomic_write_text,
    flatten_state,
    load_state,
    publish_directory,
    published_directory,
    save_state,
    unflatten_state,
)


def test_optimizer_state_round_trips_without_pickle(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    state = {"optimizer": optimizer.state_dict(), "step": 3, "tuple": (1, "a"), "none": None}
    save_state(tmp_path / "state", state)
    assert sorted(os.listdir(tmp_path)) == ["state.json", "state.safetensors"]
    loaded = load_state(tmp_path / "state")
    assert loaded["step"] == 3 and loaded["tuple"] == (1, "a") and loaded["none"] is None
    fresh = torch.optim.Adam(model.parameters(), lr=0.1)
    fresh.load_state_dict(loaded["optimizer"])
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(fresh.state_dict()["state"][0][key], optimizer.state_dict()["state"][0][key])
    assert fresh.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]


def test_integer_keys_and_nesting_survive():
    state = {0: {"a": torch.ones(2)}, "x": [torch.zeros(1), {1: 2.5}]}
    tree, tensors = flatten_state(state)
    back = unflatten_state(tree, tensors)
    assert set(back) == {0, "x"} and torch.equal(back[0]["a"], torch.ones(2)) and back["x"][1] == {1: 2.5}


def test_unstorable_values_are_refused():
    with pytest.raises(TypeError, match="cannot store a object"):
        flatten_state({"bad": object()})


def test_missing_half_of_a_state_is_reported(tmp_path):
    save_state(tmp_path / "s", {"a": torch.ones(1)})
    (tmp_path / "s.json").unlink()
    with pytest.raises(FileNotFoundError, match="s.json is missing"):
        load_state(tmp_path / "s")


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "file.txt"
    atomic_write_text(target, "old")
    from mtlzoo.checkpoint import atomic_write

    def explode(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["file.txt"]


def test_publish_directory_replaces_an_older_copy(tmp_path):
    old, new = tmp_path / "ckpt", tmp_path / ".ckpt.tmp"
    old.mkdir()
    (old / "a").write_text("old")
    new.mkdir()
    (new / "a").write_text("new")
    publish_directory(new, old)
    assert (old / "a").read_text() == "new" and sorted(os.listdir(tmp_path)) == ["ckpt"]


def _folder(path, text):
    path.mkdir()
    (path / "a").write_text(text)
    return path


def test_a_crash_between_the_two_renames_leaves_the_old_copy_where_loaders_find_it(tmp_path, monkeypatch):
    final = _folder(tmp_path / "best", "old")
    original = os.replace

    def crash_on_the_second_rename(src, dst):
        if str(src).endswith(".tmp"):
            raise KeyboardInterrupt  # the process dies after moving the old copy aside
        original(src, dst)

    monkeypatch.setattr(checkpoint, "_exchange", lambda a, b: False)  # a system without an atomic swap
    monkeypatch.setattr(os, "replace", crash_on_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        publish_directory(_folder(tmp_path / ".best.tmp", "new"), final)
    monkeypatch.undo()
    assert not final.exists() and (published_directory(final) / "a").read_text() == "old"
    publish_directory(_folder(tmp_path / ".best.tmp2", "newer"), final)  # the next publish cleans up
    assert (final / "a").read_text() == "newer" and published_directory(final) == final
    assert not aside_path(final).exists()


def test_from_pretrained_falls_back_to_the_copy_set_aside(tmp_path):
    import mtlzoo

    model = mtlzoo.create_model("hps_tiny", tasks="nyud")
    model.save_pretrained(tmp_path / "saved")
    os.replace(tmp_path / "saved", aside_path(tmp_path / "best"))
    loaded = mtlzoo.from_pretrained(tmp_path / "best")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())


@pytest.mark.parametrize("suffix, damage", [(".safetensors", lambda b: b[:20]), (".json", lambda b: b'{"__dict__": [')])
def test_a_damaged_state_names_its_file(tmp_path, suffix, damage):
    save_state(tmp_path / "state", {"x": torch.ones(3), "step": 4})
    file = (tmp_path / "state").with_suffix(suffix)
    file.write_bytes(damage(file.read_bytes()))
    with pytest.raises(ValueError, match=rf"state{suffix} is truncated or (corrupt|malformed)"):
        load_state(tmp_path / "state")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_publish_directory_swaps_atomically_on_linux(tmp_path, monkeypatch):
    final = _folder(tmp_path / "best", "old")
    seen = []
    remove = shutil.rmtree
    monkeypatch.setattr(os, "replace", lambda *a: pytest.fail("renamed in two steps"))
    monkeypatch.setattr(shutil, "rmtree", lambda p, **k: seen.append((final / "a").read_text()) or remove(p, **k))
    publish_directory(_folder(tmp_path / ".best.tmp", "new"), final)
    assert seen == ["new"] and (final / "a").read_text() == "new" and os.listdir(tmp_path) == ["best"]
