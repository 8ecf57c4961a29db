"""A malformed config.json or a truncated / corrupt model.safetensors: one line naming the file, before any work."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

import mtlzoo
from mtlzoo.hub import install_to_hf_cache


def _edit_config(folder: Path, edit) -> None:
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))


def _set(key, value):
    return lambda config: config.__setitem__(key, value)


def _tasks(edit):
    return lambda config: edit(config["tasks"][0])


BAD_CONFIGS = {  # name: (what to write, a fragment of the error)
    "not json": ("{oops", "is not valid JSON: Expecting property name"),
    "not utf-8": (b"\xff\xfe{}", "is not a JSON text file: byte 0 is not UTF-8"),
    "an array": ("[1, 2]", "must hold a JSON object, got an array [1, 2]"),
    "null": ("null", "must hold a JSON object, got null"),
    "no tasks": (lambda c: c.pop("tasks"), "lacks ['tasks']"),
    "no architecture": (lambda c: c.pop("architecture"), "lacks ['architecture']"),
    "architecture a number": (_set("architecture", 3), "'architecture' must be a model name"),
    "tasks a preset name": (_set("tasks", "nyud"), "'tasks' must be a non-empty array of task objects"),
    "tasks empty": (_set("tasks", []), "'tasks' must be a non-empty array"),
    "a task a number": (_set("tasks", [1]), "tasks[0] must be an object like"),
    "a task without kind": (_tasks(lambda t: t.pop("kind")), "tasks[0] lacks 'kind'"),
    "a task name a number": (_tasks(lambda t: t.__setitem__("name", 3)), "tasks[0].name must be a string, got a "
                                                                           "number 3"),
    "channels a string": (_tasks(lambda t: t.__setitem__("channels", "8")), "tasks[0].channels must be a number or "
                                                                             "null, got a string '8'"),
    "ignore_index a boolean": (_tasks(lambda t: t.__setitem__("ignore_index", True)), "tasks[0].ignore_index must be "
                                                                                       "a number, got a boolean"),
    "an unknown task field": (_tasks(lambda t: t.__setitem__("colour", 1)), "tasks[0] has unknown field(s) ['colour']"),
    "model_args an array": (_set("model_args", [1]), "'model_args' must be an object (or null), got an array"),
    "weights a string": (_set("weights", "x"), "'weights' must be an object (or null), got a string 'x'"),
    "sha256 a number": (lambda c: c["weights"].__setitem__("sha256", 3), "'weights.sha256' must be a string"),
    "results an array": (_set("results", []), "'results' must be an object (or null)"),
    # checked when the model is rebuilt (they need the registered task kinds and the architecture)
    "an unknown task kind": (_tasks(lambda t: t.__setitem__("kind", "segmentaton")),
                             "'tasks' do not rebuild: Unknown task kind 'segmentaton'. Did you mean: segmentation?"),
    "channels zero": (_tasks(lambda t: t.__setitem__("channels", 0)), "'tasks' do not rebuild: task 'semseg': "
                                                                      "channels must be a positive int, got 0"),
    "an unknown model argument": (_set("model_args", {"colour": 1}), "'hps_tiny' cannot be built with the model "
                                                                      "arguments ['colour']"),
}
STRUCTURAL = [name for name, (_, fragment) in BAD_CONFIGS.items() if "rebuild" not in fragment and "built" not in
              fragment]


def _break_config(folder: Path, case: str) -> None:
    content = BAD_CONFIGS[case][0]
    if isinstance(content, bytes):
        (folder / "config.json").write_bytes(content)
    elif isinstance(content, str):
        (folder / "config.json").write_text(content)
    else:
        _edit_config(folder, content)


def _one_line_naming(err: pytest.ExceptionInfo, path: Path, fragment: str) -> None:
    message = str(err.value)
    assert len(message.splitlines()) == 1, message
    assert str(path) in message and fragment in message, message


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_a_malformed_config_is_one_line_naming_the_file(checkpoint: Path, case: str) -> None:
    _break_config(checkpoint, case)
    for load in (mtlzoo.from_pretrained, lambda folder: mtlzoo.create_model(f"local-dir:{folder}")):
        with pytest.raises(ValueError) as err:
            load(checkpoint)
        _one_line_naming(err, checkpoint / "config.json", BAD_CONFIGS[case][1])


@pytest.mark.parametrize("case", STRUCTURAL)
def test_a_malformed_config_is_refused_before_the_weights_are_read(checkpoint: Path, case: str,
                                                                   monkeypatch) -> None:
    def untouched(*args, **kwargs):
        raise AssertionError("the weights were read before config.json was checked")

    monkeypatch.setattr("mtlzoo.hub.load.sha256_file", untouched)
    monkeypatch.setattr("mtlzoo.hub.load.read_weights", untouched)
    monkeypatch.setattr("mtlzoo.hub.load.check_safetensors", untouched)
    _break_config(checkpoint, case)
    with pytest.raises(ValueError, match="config.json"):
        mtlzoo.from_pretrained(checkpoint)


@pytest.mark.parametrize("case", ["not json", "tasks a preset name", "a task without kind", "an unknown task kind"])
def test_a_malformed_config_in_the_hf_cache_is_one_line_naming_the_file(checkpoint: Path, case: str) -> None:
    _break_config(checkpoint, case)
    snapshot = install_to_hf_cache(checkpoint, "org/broken")
    for load in (mtlzoo.from_pretrained, mtlzoo.create_model):
        with pytest.raises(ValueError) as err:
            load("hf-hub:org/broken")
        _one_line_naming(err, snapshot / "config.json", BAD_CONFIGS[case][1])


def _truncate(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:len(data) // 2])


def _garbage(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(b"this is not a safetensors file")


def _header_cut(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:20])


def _bad_dtype(folder: Path) -> None:
    """A well-formed layout whose header names a dtype safetensors does not know (caught when reading)."""
    header = json.dumps({"w": {"dtype": "X99", "shape": [2], "data_offsets": [0, 8]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))


BAD_WEIGHTS = {
    "truncated": (_truncate, "bytes of tensor data but"),
    "empty": (lambda f: (f / "model.safetensors").write_bytes(b""), "it holds 0 bytes"),
    "garbage": (_garbage, "its header length is"),
    "cut inside the header": (_header_cut, "its header length is"),
    "an unknown dtype": (_bad_dtype, "is not a valid safetensors file"),
}


@pytest.mark.parametrize("recorded_hash", [True, False], ids=["hash recorded", "no hash"])
@pytest.mark.parametrize("case", list(BAD_WEIGHTS))
def test_corrupt_weights_are_one_line_naming_the_file(checkpoint: Path, case: str, recorded_hash: bool) -> None:
    corrupt, fragment = BAD_WEIGHTS[case]
    corrupt(checkpoint)
    if not recorded_hash:
        _edit_config(checkpoint, lambda c: c.pop("weights"))
    with pytest.raises(ValueError) as err:
        mtlzoo.from_pretrained(checkpoint)
    if recorded_hash and case == "an unknown dtype":  # a well-formed header: the recorded hash catches it
        fragment = "but config.json expects"
    _one_line_naming(err, checkpoint / "model.safetensors", fragment)
    if fragment != "but config.json expects":
        assert "truncated or corrupt" in str(err.value)


@pytest.mark.parametrize("case", ["truncated", "an unknown dtype"])
def test_corrupt_weights_in_the_hf_cache_are_one_line_naming_the_file(checkpoint: Path, case: str) -> None:
    corrupt, fragment = BAD_WEIGHTS[case]
    corrupt(checkpoint)
    _edit_config(checkpoint, lambda c: c.pop("weights"))
    snapshot = install_to_hf_cache(checkpoint, "org/corrupt")
    for load in (mtlzoo.from_pretrained, mtlzoo.create_model):
        with pytest.raises(ValueError) as err:
            load("hf-hub:org/corrupt")
        _one_line_naming(err, snapshot / "model.safetensors", fragment)
