"""docs/leaderboard.md is what `mtlzoo benchmark report` makes of the committed results file, byte for byte, and
the results cover the committed sweep spec."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

from mtlzoo.cli import main

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "leaderboard.md"
RESULTS = ROOT / "benchmarks" / "leaderboard" / "results.json"
SPEC = ROOT / "benchmarks" / "leaderboard" / "sweep.yaml"


def test_the_page_is_the_shipped_command_run_on_the_committed_results(tmp_path, monkeypatch, capsys):
    page = PAGE.read_text(encoding="utf-8")
    command = re.search(r"Regenerate this page: `(mtlzoo benchmark report [^`]+)`", page).group(1)
    words = shlex.split(command)
    assert words[3] == "benchmarks/leaderboard/results.json" and words[words.index("--markdown") + 1] == \
        "docs/leaderboard.md"
    words[words.index("--markdown") + 1] = str(tmp_path / "page.md")
    monkeypatch.chdir(ROOT)
    assert main(words[1:]) == 0
    capsys.readouterr()
    regenerated = (tmp_path / "page.md").read_text(encoding="utf-8")
    assert regenerated.replace(str(tmp_path / "page.md"), "docs/leaderboard.md") == page  # the command names its page


def test_the_results_cover_the_spec_every_run_with_three_seeds():
    spec, results = yaml.safe_load(SPEC.read_text(encoding="utf-8")), json.loads(RESULTS.read_text(encoding="utf-8"))
    assert results["protocol"] == "synthscenes" and results["spec"]["seeds"] == [0, 1, 2]
    labels = {a["name"] if isinstance(a, dict) else a for a in spec["architectures"]}
    assert {r["architecture"] for r in results["aggregates"]["rows"]} == labels
    for row in results["aggregates"]["rows"]:
        assert row["status"] in ("ok", "not applicable"), row
        assert row["status"] != "ok" or (len(row["seeds"]) == 3 and row["delta_m"]["mean"] is not None), row
