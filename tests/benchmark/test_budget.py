"""Equal compute: a spec's budget in backward passes sets each run's steps, the completion records carry the work and
its curve, and the report scores every run at an equal budget of backward passes or training time."""

import json
import shlex

import pytest
from conftest import SMALL, fake_sweep, run_cli, write_spec

from mtlzoo.benchmark import plan_sweep, spec_from_dict
from mtlzoo.benchmark.budget import at_budget, last_within
from mtlzoo.benchmark.spec import Budget
from mtlzoo.benchmark.table import render_markdown, write_results
from mtlzoo.metrics import delta_m

T = 6  # the synthscenes tasks


@pytest.mark.parametrize(("budget", "message"), [
    ({"backwards": 10}, "budget.backwards: unknown key. Did you mean 'backward'? Accepted keys here: ['steps', "
                        "'backward']"),
    ({"backward": 0}, "budget.backward: got 0; expects an integer >= 1"),
    ({"steps": 10, "backward": 10}, "budget: got {'backward': 10, 'steps': 10}; expects one of ['steps', 'backward']"),
    (100, "budget: got 100; expects one of ['steps', 'backward'] with a count, e.g. {backward: 1200}"),
])
def test_a_bad_budget_is_one_line_naming_the_key(tmp_path, capsys, budget, message):
    assert run_cli("run", write_spec(tmp_path, budget=budget)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def _plan(tmp_path, budget, methods):
    spec = spec_from_dict({"config": "synthscenes_hps", "overrides": SMALL, "architectures": ["hps_tiny"],
                           "methods": methods, "seeds": 2, "budget": budget, "out_dir": str(tmp_path / "sweep")})
    return spec, plan_sweep(spec)


def test_a_budget_in_backward_passes_sets_each_runs_steps_from_its_rule(tmp_path):
    methods = ["ew", {"name": "mgda", "kwargs": {"jacobian_mode": "loop"}},
               {"name": "ius", "kwargs": {"group_size": 4}},
               {"name": "pcgrad", "kwargs": {"level": "features"}, "label": "pcgrad_f"}]
    spec, plan = _plan(tmp_path, {"backward": 100}, methods)
    assert spec.budget == Budget("backward", 100)
    steps = {(c.method, c.seed): c.config.train.steps for c in plan.cells}
    # ew and feature-level pcgrad: 1 backward per step; mgda: T = 6; ius in groups of 4: 2 groups (4 and 2 tasks)
    assert steps == {(m, s): n for m, n in [("ew", 100), ("mgda", 100 // T), ("ius", 50), ("pcgrad_f", 100)]
                     for s in (0, 1)}
    assert [c.config.train.steps for c in plan.baselines] == [100, 100]  # single-task networks: 1 per step
    _, small = _plan(tmp_path, {"backward": 4}, ["mgda"])
    assert {c.config.train.steps for c in small.cells} == {1}  # rounded down, at least one step
    _, by_steps = _plan(tmp_path, {"steps": 7}, methods)
    assert {c.config.train.steps for c in [*by_steps.cells, *by_steps.baselines]} == {7}


def test_a_rule_whose_steps_differ_only_in_updates_takes_a_backward_budget(tmp_path):
    """cs_two_phase's mixed schedule draws phase 1 (T updates) or 2 (one update), both with T backward passes."""
    spec = spec_from_dict({"config": "synthscenes_cs", "overrides": SMALL, "architectures": ["cs_tiny"],
                           "methods": ["ew", "cs_two_phase"], "seeds": 1, "budget": {"backward": 60},
                           "out_dir": str(tmp_path / "sweep")})
    steps = {c.method: c.config.train.steps for c in plan_sweep(spec).cells}
    assert steps == {"ew": 60, "cs_two_phase": 60 // T}


# ---- the report at an equal budget, on hand-made records -----------------------------------------------------------

# a1: B = 12 backward passes (every counted run ends at 12 or later); m3 seed 2 has no curve (an old record)
# a2: B = 9 (m2 seed 0 stops at 9)
CURVES = {("a1", "m1"): [4, 8, 12], ("a1", "m2"): [6, 12, 18], ("a1", "m3"): [4, 8, 12],
          ("a2", "m1"): [4, 8, 12], ("a2", "m2"): [6, 12, 18]}
STEPS_PER_BACKWARD = {"m1": 1, "m2": 3, "m3": 1}


def _point_metrics(record, index):
    """Different metrics at every evaluation, so that scoring the wrong one changes delta_m."""
    return {t: {m: v * (0.6 + 0.2 * index) for m, v in ms.items()} for t, ms in record["metrics"].items()}


def _with_curves(results):
    for record in results["cells"]:
        pair = (record["architecture"], record["method"])
        if pair not in CURVES or (pair == ("a1", "m3") and record["seed"] == 2):
            continue
        backward = [3, 9] if pair == ("a2", "m2") and record["seed"] == 0 else CURVES[pair]
        record["curve"] = [{"step": b // STEPS_PER_BACKWARD[record["method"]], "forward_passes": b,
                            "backward_passes": b, "optimizer_updates": b, "train_s": 0.5 * b + record["seed"],
                            "metrics": _point_metrics(record, i)} for i, b in enumerate(backward)]
        record["backward_passes"] = backward[-1]
    return results


def _expected_deltas(results, arch, method, limit, field="backward_passes"):
    """delta_m per seed at the last point within ``limit``, worked out without the budget module."""
    base = results["aggregates"]["baseline_vector"]
    out = {}
    for record in results["cells"]:
        if (record["architecture"], record["method"]) == (arch, method) and record.get("curve"):
            points = [p for p in record["curve"] if p[field] <= limit]
            if points:
                out[record["seed"]] = float(delta_m(points[-1]["metrics"], base, protocol="synthscenes"))
    return out


def _deltas(table, method):
    row = next(r for r in table.rows if r["method"] == method)
    return dict(zip(row["seeds"], row["delta_m"]["values"], strict=True))


def test_each_architecture_is_scored_at_the_fewest_backward_passes_any_of_its_runs_made():
    results = _with_curves(fake_sweep("synthscenes")[0])
    a1, a2 = at_budget(results, "backward")
    assert (a1.architecture, a1.limit, a2.architecture, a2.limit) == ("a1", 12, "a2", 9)
    for table in (a1, a2):
        for method in {r["method"] for r in table.rows}:
            assert _deltas(table, method) == pytest.approx(_expected_deltas(results, table.architecture, method,
                                                                             table.limit))
    m2 = next(r for r in a1.rows if r["method"] == "m2")
    assert m2["reached"]["backward_passes"]["mean"] == 12 and m2["reached"]["step"]["mean"] == 4
    m3 = next(r for r in a1.rows if r["method"] == "m3")
    assert (m3["n"], m3["seeds_planned"]) == (2, 3)
    assert a1.notes == ["- `cells/a1/m3/seed2`: its record has no curve (written before work was counted): left out"]
    a2_m2 = next(r for r in a2.rows if r["method"] == "m2")
    assert a2_m2["reached"]["backward_passes"]["mean"] == pytest.approx((9 + 6 + 6) / 3)
    assert [r["method"] for r in a2.rows] == sorted(["m1", "m2"], key=lambda m: -_mean(_deltas(a2, m)))


def _mean(values):
    return sum(values.values()) / len(values)


def test_a_given_budget_leaves_out_runs_without_an_evaluation_within_it():
    results = _with_curves(fake_sweep("synthscenes")[0])
    a1, a2 = at_budget(results, "backward", 5)
    assert a1.limit == a2.limit == 5 and a1.given
    assert [r["method"] for r in a1.rows if r["status"] == "ok"] == sorted(["m1", "m3"], key=lambda m: -_mean(
        _deltas(a1, m)))  # no run of m2 evaluated within 5 backward passes
    assert "- `cells/a1/m2/seed0`: no evaluation within B (its first is at 6 backward passes): left out" in a1.notes
    assert _deltas(a2, "m2") == pytest.approx(_expected_deltas(results, "a2", "m2", 5))  # seed 0 only (3 <= 5)


def test_equal_time_scores_each_run_at_the_least_training_time_any_run_of_its_architecture_took():
    results = _with_curves(fake_sweep("synthscenes")[0])
    a1 = at_budget(results, "time")[0]
    assert a1.limit == 6.0  # m1 / m3 seed 0: 12 backward passes at 0.5 s each
    for method in ("m1", "m2", "m3"):
        assert _deltas(a1, method) == pytest.approx(_expected_deltas(results, "a1", method, 6.0, "train_s"))
    assert last_within(results["cells"][0]["curve"], "train_s", 6.0)["backward_passes"] == 12


def test_the_page_puts_the_equal_backward_table_under_the_equal_steps_one(tmp_path, capsys):
    results = _with_curves(fake_sweep("synthscenes")[0])
    path = write_results(tmp_path, results)["json"]
    page = tmp_path / "page.md"
    assert run_cli("report", path, "--budget", "steps", "--budget", "backward", "--markdown", page) == 0
    text = page.read_text()
    section = text[text.index("## a1"):text.index("## a2")]
    assert section.index("### At equal steps") < section.index("| rank | method | n | semseg miou") < \
        section.index("### At equal backward passes: B = 12 (the fewest any of its runs made)")
    compact = section[section.index("### At equal backward passes"):]
    assert "| rank | method | n | delta_m (%) | 95% CI | vs ew (95% CI) | backward passes | steps reached |" in compact
    m2 = next(line for line in compact.splitlines() if line.startswith("| ") and "| m2 |" in line)
    assert m2.endswith("| 12 | 4 |")
    assert "- `cells/a1/m3/seed2`: its record has no curve" in compact
    command = next(line for line in text.splitlines() if line.startswith("Regenerate this page: "))
    words = shlex.split(command.removeprefix("Regenerate this page: ").strip("`"))
    assert words[words.index("--budget"):words.index("--budget") + 4] == ["--budget", "steps", "--budget", "backward"]
    page.unlink()
    assert run_cli(*words[2:]) == 0 and page.read_text() == text  # the page's own command renders it again
    assert render_markdown(results, "t", "cmd") == render_markdown(results, "t", "cmd", budgets=("steps",))


def test_old_records_without_counts_still_report_at_equal_steps_and_are_named_at_an_equal_budget(tmp_path, capsys):
    results, _ = fake_sweep("synthscenes")  # records from before work was counted: no totals, no curve
    path = write_results(tmp_path, results)["json"]
    assert run_cli("report", path) == 0
    assert capsys.readouterr().out == render_markdown(results, "Benchmark under the synthscenes protocol",
                                                      f"mtlzoo benchmark report {path}")
    assert run_cli("report", path, "--budget", "time") == 0
    page = capsys.readouterr().out
    assert page.count("### At equal seconds of training") == 2
    assert page.count("No run of this architecture recorded its work") == 2
    assert "- `cells/a2/m1/seed1`: its record has no curve (written before work was counted): left out" in page


@pytest.mark.parametrize(("flags", "message"), [
    (["--budget-value", "5"], "--budget-value 5 sets B of one budget other than steps; got --budget steps"),
    (["--budget", "backward", "--budget", "time", "--budget-value", "5"], "got --budget backward --budget time"),
    (["--budget", "backward", "--budget-value", "-1"], "--budget-value -1: expects a number > 0"),
])
def test_a_budget_value_needs_exactly_one_budget_other_than_steps(tmp_path, capsys, flags, message):
    path = write_results(tmp_path, fake_sweep("synthscenes")[0])["json"]
    assert run_cli("report", path, *flags) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


# ---- a real sweep under a budget of backward passes ---------------------------------------------------------------

def test_a_sweep_under_a_backward_budget_records_the_work_and_reports_at_it(tmp_path, capsys):
    methods = ["ew", {"name": "mgda", "kwargs": {"jacobian_mode": "loop"}}, "ius"]
    spec = write_spec(tmp_path, architectures=["hps_tiny"], methods=methods, seeds=1, budget={"backward": 12})
    assert run_cli("run", spec) == 0
    out = tmp_path / "sweep"
    records = {m: json.loads((out / "cells" / "hps_tiny" / m / "seed0" / "benchmark_cell.json").read_text())
               for m in ("ew", "mgda", "ius")}
    assert {m: (r["step"], r["forward_passes"], r["backward_passes"], r["optimizer_updates"])
            for m, r in records.items()} == {"ew": (12, 12, 12, 12), "mgda": (2, 2, 12, 2), "ius": (2, 12, 12, 12)}
    assert [(p["step"], p["backward_passes"]) for p in records["ew"]["curve"]] == [(3, 3), (6, 6), (9, 9), (12, 12)]
    assert records["ew"]["curve"][-1]["metrics"] == records["ew"]["metrics"]
    assert all(0 < p["train_s"] for r in records.values() for p in r["curve"])
    capsys.readouterr()
    assert run_cli("report", out / "results.json", "--budget", "backward") == 0
    page = capsys.readouterr().out
    assert "### At equal backward passes: B = 12 (the fewest any of its runs made)" in page
    assert sum(line.startswith("| ") and line.endswith("| 12 | 12 |") for line in page.splitlines()) == 1  # ew


def test_the_equal_backward_tables_can_come_from_a_sweep_run_under_that_budget(tmp_path, capsys):
    """The leaderboard's layout: equal-steps tables from one sweep, equal-backward tables from a second sweep whose
    spec budget trained every run to B (scored at its end)."""
    steps = write_results(tmp_path / "steps", fake_sweep("synthscenes")[0])["json"]
    budgeted = _with_curves(fake_sweep("synthscenes")[0])
    budgeted["spec"]["budget"] = {"measure": "backward", "value": 12}
    other = write_results(tmp_path / "backward", budgeted)["json"]
    page = tmp_path / "page.md"
    assert run_cli("report", steps, "--budget", "steps", "--budget", "backward", "--budget-results", other,
                   "--markdown", page) == 0
    text = page.read_text()
    section = text[text.index("## a1"):text.index("## a2")]
    assert section.index("### At equal steps") < section.index("### At equal backward passes: B = 12 (the budget of")
    table = at_budget(budgeted, "backward", 12)[0]
    m2 = next(line for line in section.splitlines() if line.startswith("| ") and "| m2 |" in line
              and line.endswith("| 12 | 4 |"))
    assert f"{_mean(_deltas(table, 'm2')):+.2f}" in m2  # scored on the budgeted sweep's runs, not on the steps one
    words = shlex.split(next(line for line in text.splitlines() if line.startswith("Regenerate this page: "))
                        .removeprefix("Regenerate this page: ").strip("`"))
    assert words[words.index("--budget-results") + 1] == str(other)
    page.unlink()
    assert run_cli(*words[2:]) == 0 and page.read_text() == text


@pytest.mark.parametrize(("change", "flags", "message"), [
    (lambda r: None, ["--budget", "backward"], "its sweep ran without a spec budget"),
    (lambda r: r.update(protocol="generic", spec={**r["spec"], "budget": {"measure": "backward", "value": 12}}),
     ["--budget", "backward"], "protocol 'generic' differs"),
    (lambda r: r["spec"].update(budget={"measure": "backward", "value": 12}), ["--budget", "time"],
     "add --budget backward to render them"),
])
def test_budget_results_of_another_kind_are_refused_on_one_line(tmp_path, capsys, change, flags, message):
    steps = write_results(tmp_path / "steps", fake_sweep("synthscenes")[0])["json"]
    other = fake_sweep("synthscenes")[0]
    change(other)
    path = write_results(tmp_path / "other", other)["json"]
    assert run_cli("report", steps, *flags, "--budget-results", path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(path) in err
