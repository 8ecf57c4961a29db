"""results/*.csv (mtlzoo.results_tables): a row for every registered pretrained tag, equal to its card; what
`mtlzoo list --pretrained --sort` makes of them; the problems a stale or edited file shows."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

import mtlzoo
from mtlzoo import results_tables
from mtlzoo.listing import pretrained_table
from mtlzoo.models.pretrained import PRETRAINED_CFGS, PretrainedCfg
from mtlzoo.results_tables import RESULTS_DIR, check_tables, read_tables

WEIGHTS = Path(mtlzoo.__file__).resolve().parents[1] / "weights"


def _registered() -> list[PretrainedCfg]:
    return [PRETRAINED_CFGS.get(name) for name in PRETRAINED_CFGS.names()]


@pytest.fixture(scope="module")
def expected() -> dict:
    """The rows the cards of every registered tag give (built once: each builds a model and counts its FLOPs)."""
    return results_tables.build_tables(_registered(), measure=False)


def test_every_registered_tag_has_a_row_equal_to_its_card(expected):
    committed_problems = check_tables(expected)
    assert committed_problems == [], "run `python benchmarks/results_tables.py`:\n" + "\n".join(committed_problems)
    rows = [(row["model"], row["tag"]) for table in read_tables().values() for row in table]
    assert sorted(rows) == sorted((cfg.architecture, cfg.tag) for cfg in _registered())
    assert all(float(row["infer_img_per_s"]) > 0 for table in read_tables().values() for row in table)


def test_a_row_says_what_the_card_and_the_weights_say():
    """Recomputed without mtlzoo.results_tables: the card's seed statistics, the loaded model's size."""
    card = json.loads((WEIGHTS / "hps_tiny.synthscenes" / "config.json").read_text())
    seeds = card["results"]["over_seeds"]
    row = next(r for r in read_tables()["synthscenes-96x128"] if r["model"] == "hps_tiny")
    assert float(row["delta_m"]) == pytest.approx(seeds["delta_m_mean"], rel=1e-5)
    assert float(row["delta_m_std"]) == pytest.approx(seeds["delta_m_std"], rel=1e-5)
    assert float(row["semseg.miou"]) == pytest.approx(seeds["mean"]["semseg"]["miou"], rel=1e-5)
    assert float(row["depth.rmse_std"]) == pytest.approx(seeds["std"]["depth"]["rmse"], rel=1e-5)
    assert int(row["seeds"]) == len(seeds["seeds"]) and row["method"] == card["training"]["method"]
    model = mtlzoo.from_pretrained(WEIGHTS / "hps_tiny.synthscenes")
    assert float(row["param_count"]) == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e6, abs=5e-4)
    assert row["img_size"] == "96x128" and row["data_version"] == "3"


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    shutil.copytree(RESULTS_DIR, folder)
    return folder


def _edit(path: Path, change) -> None:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    fields = list(rows[0])
    rows = change(rows)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def test_an_edited_a_missing_and_a_stale_file_are_each_named(tmp_path, expected):
    folder = _copy(tmp_path)
    table = folder / "synthscenes-96x128.csv"
    _edit(table, lambda rows: [{**r, "semseg.miou": "0.99"} if r["model"] == "hps_tiny" else r for r in rows])
    assert check_tables(expected, folder) == [
        "synthscenes-96x128.csv: hps_tiny.synthscenes differs from its card in ['semseg.miou']"]
    _edit(table, lambda rows: [r for r in rows if r["model"] != "hps_tiny"])
    assert check_tables(expected, folder) == ["synthscenes-96x128.csv: no row for hps_tiny.synthscenes"]
    _edit(table, lambda rows: [*rows, {**rows[0], "model": "ghost_tiny"}])
    assert "synthscenes-96x128.csv: ghost_tiny.synthscenes is not a registered tag" in check_tables(expected, folder)
    table.unlink()
    (folder / "old-1x1.csv").write_text("model,tag\n")
    problems = check_tables(expected, folder)
    assert "synthscenes-96x128.csv: missing" in problems and "old-1x1.csv: no registered tag belongs here" in problems


def test_measured_columns_may_differ_but_nothing_else(tmp_path, expected):
    folder = _copy(tmp_path)
    _edit(folder / "synthscenes-96x128.csv", lambda rows: [{**r, "infer_img_per_s": "1.0"} for r in rows])
    assert check_tables(expected, folder) == []


def test_written_tables_read_back_and_stale_files_go(tmp_path):
    cfgs = [PRETRAINED_CFGS.get("hps_tiny.synthscenes")]
    tables = results_tables.build_tables(cfgs, measure=False)
    (tmp_path / "stale-1x1.csv").write_text("model\n")
    written = results_tables.write_tables(tables, tmp_path)
    assert [p.name for p in written] == ["synthscenes-96x128.csv"] and not (tmp_path / "stale-1x1.csv").exists()
    assert check_tables(tables, tmp_path) == [] and not list(tmp_path.glob("*.tmp*"))


def test_a_tag_without_a_bundled_card_is_named():
    cfg = PretrainedCfg("hps_tiny", "elsewhere", "mtlzoo/hps_tiny.elsewhere", dataset="synthscenes-v3",
                        bundled="hps_tiny.elsewhere")
    with pytest.raises(FileNotFoundError, match=r"hps_tiny\.elsewhere: no bundled card"):
        results_tables.card_row(cfg)


def test_throughput_is_a_positive_rate():
    assert results_tables.images_per_second(PRETRAINED_CFGS.get("hps_tiny.synthscenes"), repeats=2,
                                            seconds=0.05) > 0


def _order(table: str) -> list[str]:
    return [line.split()[0] for line in table.splitlines()[2:]]


def test_the_listing_sorts_best_first_in_each_column_direction():
    rows = {r["model"]: r for t in read_tables().values() for r in t}
    with_delta = [m for m in rows if rows[m]["delta_m"]]
    by_delta = _order(pretrained_table(sort="delta_m"))
    assert by_delta[:len(with_delta)] == sorted(with_delta, key=lambda m: -float(rows[m]["delta_m"]))
    for metric, sign in (("depth.rmse", 1.0), ("semseg.miou", -1.0), ("task1.mse", 1.0)):  # rows without it: last
        having = [m for m in rows if rows[m].get(metric)]
        best_first = sorted(having, key=lambda m, key=metric, sign=sign: sign * float(rows[m][key]))
        assert _order(pretrained_table(sort=metric))[:len(having)] == best_first, metric
    assert _order(pretrained_table(sort="params")) == sorted(rows, key=lambda m: float(rows[m]["param_count"]))
    with pytest.raises(ValueError, match=r"cannot sort the pretrained table by 'speed'; use one of \['name'"):
        pretrained_table(sort="speed")


def test_the_listing_works_without_results_files(monkeypatch):
    """An installed wheel has no results/: the rows then come from the registry and the cards."""
    monkeypatch.setattr(results_tables, "RESULTS_DIR", Path("/nonexistent"))
    monkeypatch.setattr(results_tables.read_tables, "__defaults__", (Path("/nonexistent"),))
    lines = pretrained_table().splitlines()
    assert len(lines) == 2 + len(PRETRAINED_CFGS.names())
    hps = next(line for line in lines if line.startswith("hps_tiny "))
    card = json.loads((WEIGHTS / "hps_tiny.synthscenes" / "config.json").read_text())["results"]["over_seeds"]
    assert f"{card['delta_m_mean']:.4g} +- {card['delta_m_std']:.2g}" in hps
