"""`mtlzoo benchmark report`: the page from a results file is the page the sweep wrote, byte for byte; --compare
puts a published table beside the rows under the same protocol and refuses another protocol."""

import json
import sys

import pytest
from conftest import fake_sweep, run_cli

from mtlzoo.benchmark.table import render_markdown, write_results
from mtlzoo.metrics.references import get_reference


def test_report_renders_the_sweeps_page_byte_for_byte(sweep, tmp_path, capsys):
    _, out_dir, _ = sweep
    page = out_dir / "results.md"
    original = page.read_bytes()
    page.unlink()
    assert run_cli("report", out_dir / "results.json", "--markdown", page) == 0
    assert page.read_bytes() == original
    capsys.readouterr()
    assert run_cli("report", out_dir / "results.json", "--title", "Leaderboard") == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[2] == "# Leaderboard"
    assert f"Regenerate this page: `mtlzoo benchmark report {out_dir / 'results.json'} --title Leaderboard`" in printed


def test_report_writes_plots_when_asked(sweep, tmp_path):
    _, out_dir, _ = sweep
    assert run_cli("report", out_dir / "results.json", "--plots", tmp_path / "p", "--tradeoff",
                   "saliency.maxf,parts.miou") == 0
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["delta_m.png", "task_change.png", "tradeoff.png"]


def test_bad_tradeoff_and_bad_results_file_are_one_line(sweep, tmp_path, capsys):
    _, out_dir, _ = sweep
    assert run_cli("report", out_dir / "results.json", "--plots", tmp_path, "--tradeoff", "semseg.miou") == 2
    assert "--tradeoff 'semseg.miou': expects two task.metric keys" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 1')
    assert run_cli("report", bad) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad} is not valid JSON" in err


def test_compare_puts_the_published_rows_beside_the_sweeps(tmp_path, capsys):
    results, _ = fake_sweep("mtan_nyuv2")
    path = write_results(tmp_path, results)["json"]
    assert run_cli("report", path, "--compare", "nash_mtl_nyuv2", "--markdown", tmp_path / "page.md") == 0
    page = (tmp_path / "page.md").read_text()
    reference = get_reference("nash_mtl_nyuv2")
    assert "## Beside published numbers: `nash_mtl_nyuv2`" in page
    assert "--compare nash_mtl_nyuv2`" in page
    lines = {line.split(" | ")[1]: line for line in page.splitlines() if line.startswith("| published |")
             or line.startswith("| this sweep |")}
    assert set(reference.rows) | {"STL"} <= set(lines) and "a1 / m1" in lines
    for label, value in reference.published_delta_m.items():
        if value is not None:
            assert lines[label].endswith(f"| {value:+.2f} |")
    stl = lines["STL"].split(" | ")
    assert stl[2] == f"{reference.baseline_metrics['semseg']['miou']:.3f}" and stl[-2] == "+0.00"


def test_compare_refuses_another_protocol(tmp_path, sweep, capsys):
    spec, out_dir, _ = sweep
    results, _ = fake_sweep("synthscenes")
    path = write_results(tmp_path, results)["json"]
    assert run_cli("report", path, "--compare", "nash_mtl_nyuv2") == 2
    err = capsys.readouterr().err
    assert err == ("mtlzoo benchmark: error: --compare nash_mtl_nyuv2: the reference is under protocol 'mtan_nyuv2', "
                   "the sweep under 'synthscenes'; numbers compare only under the same protocol\n")
    assert run_cli("report", path, "--compare", "nash_mtl_nyu") == 2
    assert "Did you mean" in capsys.readouterr().err
    before = json.loads((out_dir / "results.json").read_text())
    assert run_cli("run", spec, "--compare", "nash_mtl_nyuv2") == 2  # refused before anything runs or is written
    assert json.loads((out_dir / "results.json").read_text()) == before


def test_without_matplotlib_one_line_names_the_extra_and_the_tables_are_written(sweep, tmp_path, monkeypatch,
                                                                                 capsys):
    _, out_dir, _ = sweep
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    assert run_cli("report", out_dir / "results.json", "--markdown", tmp_path / "page.md", "--plots",
                   tmp_path / "plots") == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no plots: plotting needs 'matplotlib'" in err
    assert "pip install 'mtlzoo[plots]'" in err
    assert (tmp_path / "page.md").is_file() and not (tmp_path / "plots").exists()


def test_a_sweep_measured_on_two_machines_names_the_machine_of_each_architecture():
    from mtlzoo.benchmark.table import render_markdown

    results, _ = fake_sweep("synthscenes")
    for record in [*results["baselines"], *results["cells"]]:
        record["machine"] = "cpu (B)" if record["architecture"] == "a2" else "cpu (A)"
    page = render_markdown(results, "t", "cmd")
    assert "Runs of the baseline: cpu (A)." in page
    assert page.index("## a1") < page.index("Ran on cpu (A).") < page.index("## a2") < page.index("Ran on cpu (B).")
    for record in results["cells"]:
        record["machine"] = "cpu (A)"
    for record in results["baselines"]:
        record["machine"] = "cpu (A)"
    assert "Ran on cpu (A)." not in render_markdown(results, "t", "cmd")  # one machine: said once, in the intro


def test_a_preface_goes_under_the_title_and_into_the_regenerate_command(sweep, tmp_path, capsys):
    _, out_dir, _ = sweep
    preface = tmp_path / "preface.md"
    preface.write_text("What the budget means.\n", encoding="utf-8")
    assert run_cli("report", out_dir / "results.json", "--title", "T", "--preface", preface) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:5] == ["# T", "", "What the budget means."]
    assert any(f"--title T --preface {preface}`" in line for line in lines)
    assert run_cli("report", out_dir / "results.json", "--preface", tmp_path / "missing.md") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--preface" in err and "missing.md" in err


def test_a_row_averaging_fewer_seeds_than_the_spec_plans_says_so_in_the_json_and_on_the_page(tmp_path):
    results, _ = fake_sweep("synthscenes", failed=("cells/a1/m2/seed1", "baselines/stl/seed2"))
    path = write_results(tmp_path, results)["json"]
    saved = json.loads(path.read_text())
    rows = {(r["architecture"], r["method"]): r for r in saved["aggregates"]["rows"]}
    assert (rows[("a1", "m2")]["n"], rows[("a1", "m2")]["seeds_planned"]) == (2, 3)
    assert (rows[("a1", "m1")]["n"], rows[("a1", "m1")]["seeds_planned"]) == (3, 3)
    base = saved["aggregates"]["baseline"]
    assert (base["n"], base["seeds_planned"]) == (2, 3)
    assert run_cli("report", path, "--markdown", tmp_path / "page.md") == 0
    page = (tmp_path / "page.md").read_text()
    assert "| m2 | 2 of 3 |" in page and "| m1 | 3 |" in page and "| single-task | 2 of 3 |" in page
    assert "- `a1` x `m2`: n=2 of 3 seeds; its row averages seeds [0, 2] only" in page
    assert "- `stl` x `single-task`: n=2 of 3 seeds; its row averages seeds [0, 1] only" in page
    assert page.count("of 3 seeds") == 2  # the rows with every seed say nothing more


def test_each_table_ranks_with_ties_and_marks_differences_to_ew_that_scipy_calls_significant():
    from scipy import stats

    results, _ = fake_sweep("synthscenes")
    rows = [r for r in results["aggregates"]["rows"] if r["architecture"] == "a1" and r["status"] == "ok"]
    rows[0]["method"] = "ew"  # the reference every other method is paired with
    reference = rows[0]["delta_m"]["values"]
    page = render_markdown(results, "t", "cmd")
    assert "| rank | method | n |" in page and "| 95% CI | vs ew (95% CI) |" in page
    for row in rows[1:]:
        line = next(x for x in page.splitlines() if x.startswith("| ") and f"| {row['method']} |" in x)
        significant = stats.ttest_rel(row["delta_m"]["values"], reference).pvalue < 0.05
        assert line.split(" | ")[-3].endswith(" *") == significant, line
    assert "overlapping intervals share a rank" in page


def test_the_per_task_view_shows_each_methods_gain_minus_ews_per_task():
    results, _ = fake_sweep("synthscenes")
    rows = [r for r in results["aggregates"]["rows"] if r["architecture"] == "a1" and r["status"] == "ok"]
    rows[-1]["method"] = "ew"
    page = render_markdown(results, "t", "cmd")
    section = page[page.index("Per task, against `ew`"):]
    tasks = list(rows[-1]["task_change"])
    assert f"| method | {' | '.join(tasks)} |" in section
    for row in rows[:-1]:
        line = next(x for x in section.splitlines() if x.startswith(f"| {row['method']} |"))
        expected = [row["task_change"][t]["mean"] - rows[-1]["task_change"][t]["mean"] for t in tasks]
        assert [float(x) for x in line.strip("| ").split(" | ")[1:]] == pytest.approx(expected, abs=0.051)
    assert page.count("Per task, against `ew`") == 1  # a2 has no ew row: no view
