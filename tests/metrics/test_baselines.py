"""Shipped single-task baselines are data files: they load with the values they had as code, and bad files fail
with one line naming the file."""

from __future__ import annotations

import json
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path

import pytest

from mtlzoo.metrics import Baseline, get_baseline, list_baselines
from mtlzoo.metrics.baselines import _load
from mtlzoo.metrics.datafiles import DATA_DIR

# The values the four baselines had as `_add(...)` calls in mtlzoo/metrics/baselines.py before they became data.
BEFORE = {
    "cagrad_segnet_nyuv2": ("mtan_nyuv2", {
        "semseg": {"miou": 0.3830, "pixel_acc": 0.6376},
        "depth": {"abs_err": 0.6754, "abs_rel": 0.2780},
        "normals": {"mean": 25.01, "median": 19.21, "within_11_25": 0.3014, "within_22_5": 0.5720,
                    "within_30": 0.6915}}),
    "cagrad_segnet_cityscapes": ("mtan_cityscapes", {
        "semseg": {"miou": 0.7401, "pixel_acc": 0.9316},
        "depth": {"abs_err": 0.0125, "abs_rel": 27.77}}),
    "mtinet_hrnet18_nyud": ("mtinet_nyud", {
        "semseg": {"miou": 0.3318, "pixel_acc": 0.6504, "mean_acc": 0.4507},
        "depth": {"rmse": 0.667, "abs_rel": 0.186},
        "normals": {"mean": 20.75, "median": 14.04, "within_11_25": 0.4132, "within_22_5": 0.6826,
                    "within_30": 0.7804}}),
    "mtinet_hrnet18_pascal": ("mtinet_pascal", {
        "semseg": {"miou": 0.6030, "pixel_acc": 0.8988},
        "parts": {"miou": 0.6056},
        "saliency": {"miou": 0.6705, "maxf": 0.7898},
        "normals": {"mean": 14.76, "median": 11.92, "within_11_25": 0.4761, "within_22_5": 0.8102,
                    "within_30": 0.9065}}),
}

GOOD = {"name": "tiny", "protocol": "synthscenes", "source": "a test",
        "metrics": {"semseg": {"miou": 0.5}, "depth": {"rmse": 0.2}}}


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_the_published_baselines_load_with_their_former_values(name):
    baseline = get_baseline(name)
    protocol, metrics = BEFORE[name]
    assert baseline.protocol == protocol and baseline.name == name
    assert {t: dict(m) for t, m in baseline.metrics.items()} == metrics  # exact: the JSON holds the same decimals
    assert baseline.command is None and baseline.std is None and baseline.seeds is None


def test_every_shipped_file_is_a_registered_baseline():
    files = {p.stem for p in (DATA_DIR / "baselines").glob("*.json")}
    assert files == set(list_baselines()) and set(BEFORE) <= files


def _write(folder: Path, record: dict, name: str | None = None) -> Path:
    path = folder / f"{name or record['name']}.json"
    path.write_text(json.dumps(record))
    return path


def test_optional_fields_are_read(tmp_path):
    _write(tmp_path, {**GOOD, "command": "mtlzoo train x --stl", "seeds": [0, 1, 2], "data_version": 2,
                      "std": {"semseg": {"miou": 0.01}}})
    (baseline,) = _load(tmp_path)
    assert isinstance(baseline, Baseline)
    assert baseline.seeds == (0, 1, 2) and baseline.data_version == 2 and baseline.command.startswith("mtlzoo")
    assert baseline.std == {"semseg": {"miou": 0.01}} and baseline.metrics["depth"]["rmse"] == 0.2


@pytest.mark.parametrize("change, message", [
    ({"metrics": None}, "'metrics' must be a JSON dict"),
    ({"protocol": "mtan_nyu"}, "not a registered protocol"),
    ({"name": "other"}, "'name' is 'other' but the file is tiny.json"),
    ({"extra": 1}, "unknown key(s) ['extra']"),
    ({"metrics": {"semseg": {"miou": "0.5"}}}, "metrics.semseg.miou must be a finite number"),
    ({"metrics": {"semseg": {}}}, "metrics.semseg must be a non-empty object"),
    ({"std": {"normals": {"mean": 1.0}}}, "std.normals is not a task of 'metrics'"),
    ({"std": {"semseg": {"pixel_acc": 0.1}}}, "std.semseg.pixel_acc is not a metric of metrics.semseg"),
    ({"std": {"semseg": {"miou": -0.1}}}, "std.semseg.miou must be a number >= 0"),
    ({"seeds": [0, "1"]}, "'seeds' must be a non-empty list of ints"),
    ({"seeds": True}, "'seeds' must be a JSON list or int"),
])
def test_a_malformed_file_is_one_line_naming_it(tmp_path, change, message):
    _write(tmp_path, {**GOOD, **change}, name="tiny")
    with pytest.raises(ValueError) as error:
        _load(tmp_path)
    text = str(error.value)
    assert message in text and str(tmp_path / "tiny.json") in text and "\n" not in text


def test_missing_keys_and_broken_json_name_the_file(tmp_path):
    _write(tmp_path, {"name": "tiny", "protocol": "synthscenes"})
    with pytest.raises(ValueError, match=r"tiny.json: missing key\(s\) \['source', 'metrics'\]"):
        _load(tmp_path)
    (tmp_path / "tiny.json").write_text('{"name": "tiny",')
    with pytest.raises(ValueError, match="tiny.json is not valid JSON"):
        _load(tmp_path)


def test_the_data_files_are_package_data():
    """Reached through importlib.resources (what an installed wheel offers) and matched by pyproject's globs."""
    folder = resources.files("mtlzoo.metrics") / "data" / "baselines"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))
    assert names and json.loads((folder / names[0]).read_text())["name"] == Path(names[0]).stem
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["mtlzoo"]
    for path in (DATA_DIR.parent).rglob("*.json"):
        relative = path.relative_to(DATA_DIR.parents[1]).as_posix()
        assert any(fnmatch(relative, g) for g in globs), f"{relative} is not matched by package-data {globs}"
