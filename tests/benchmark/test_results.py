"""Aggregation checked against an independent numpy computation: mean, sample std (ddof=1) and delta_m by a
transcription of the formulas (Vandenhende et al.; Nash-MTL's sign convention)."""

import numpy as np
import pytest
from conftest import CASES, SEEDS, fake_sweep

from mtlzoo.benchmark.plan import Cell, Plan
from mtlzoo.benchmark.results import aggregate, mean_std, seed_mean_std
from mtlzoo.config import Config


def _delta(metrics, base, used, nash):
    """Vandenhende: mean over tasks of 100 * s * (M - B) / B (one metric per task); Nash: minus the mean of that
    term over every metric."""
    terms = {t: [100.0 * s * (metrics[t][m] - base[t][m]) / base[t][m] for m, s in ms.items()]
             for t, ms in used.items()}
    if nash:
        return -np.mean([v for values in terms.values() for v in values])
    return np.mean([values[0] for values in terms.values()])


@pytest.mark.parametrize("protocol", list(CASES))
def test_aggregates_match_numpy(protocol):
    results, records = fake_sweep(protocol)
    tasks, used = CASES[protocol]
    nash = protocol == "mtan_nyuv2"
    base = {t: {m: np.mean([records[f"baselines/stl/seed{s}"]["metrics"][t][m] for s in SEEDS])
                for m in records["baselines/stl/seed0"]["metrics"][t]} for t in tasks}
    rows = {(r["architecture"], r["method"]): r for r in results["aggregates"]["rows"]}
    for (arch, method), row in rows.items():
        if (arch, method) == ("a2", "m3"):
            assert row["status"] == "not applicable" and row["reason"] == "why not"
            continue
        runs = [records[f"cells/{arch}/{method}/seed{s}"] for s in SEEDS]
        for task in tasks:
            for metric, stat in row["metrics"][task].items():
                values = [r["metrics"][task][metric] for r in runs]
                assert stat["mean"] == pytest.approx(np.mean(values), rel=1e-12)
                assert stat["std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12) and stat["n"] == 3
        deltas = [_delta(r["metrics"], base, used, nash) for r in runs]
        assert row["delta_m"]["values"] == pytest.approx(deltas, rel=1e-10)
        assert row["delta_m"]["mean"] == pytest.approx(np.mean(deltas), rel=1e-10)
        assert row["delta_m"]["std"] == pytest.approx(np.std(deltas, ddof=1), rel=1e-10)
        assert row["steps_per_s"]["mean"] == pytest.approx(np.mean([r["steps_per_s"] for r in runs]))
        for task, change in row["task_change"].items():
            per_seed = [np.mean([100.0 * s * (r["metrics"][task][m] - base[task][m]) / base[task][m]
                                 for m, s in used[task].items()]) for r in runs]
            assert change["mean"] == pytest.approx(np.mean(per_seed), rel=1e-10)
        assert set(row["task_change"]) == set(used)
    baseline = results["aggregates"]["baseline"]
    assert baseline["delta_m"]["mean"] == pytest.approx(0.0, abs=1e-9)  # linear in M: the seeds' terms cancel
    for arch in ("a1", "a2"):
        means = [r["delta_m"]["mean"] for r in results["aggregates"]["rows"]
                 if r["architecture"] == arch and r["status"] == "ok"]
        assert means == sorted(means, reverse=not nash)
    shown = [[t, m] for t, ms in used.items() for m in ms]
    if protocol == "synthscenes":  # the auxiliary edge task shows the metric it records
        shown.insert(3, ["edge", "bce"])
    assert results["columns"] == shown


def test_std_of_one_seed_is_none_and_a_missing_baseline_gives_no_delta_m():
    assert mean_std([0.5]) == {"mean": 0.5, "std": None, "n": 1}
    assert mean_std([None, 1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(np.sqrt(2.0)), "n": 2}
    assert mean_std([]) == {"mean": None, "std": None, "n": 0}


def test_a_pair_whose_every_seed_failed_is_a_failed_row_after_the_others():
    _, records = fake_sweep("synthscenes")
    for seed in SEEDS:
        records[f"cells/a1/m1/seed{seed}"] = {"seed": seed, "status": "failed", "reason": "RuntimeError: diverged",
                                              "metrics": {}}
    cells = [Cell("cell", "a1", m, s, f"cells/a1/{m}/seed{s}", Config()) for m in ("m1", "m2") for s in SEEDS]
    baselines = [Cell("baseline", "stl", "single-task", s, f"baselines/stl/seed{s}", Config()) for s in SEEDS]
    rows = aggregate(Plan(tuple(cells), tuple(baselines), "synthscenes", CASES["synthscenes"][0]), records)["rows"]
    assert [(r["method"], r["status"]) for r in rows] == [("m2", "ok"), ("m1", "failed")]
    assert rows[1]["reason"] == "RuntimeError: diverged" and len(rows[1]["failed"]) == 3


def test_seed_mean_std_is_numpys_mean_and_sample_std_with_zero_for_one_seed():
    rng = np.random.default_rng(3)
    tables = [{"depth": {"rmse": float(v), "abs_rel": float(w)}} for v, w in rng.uniform(0.1, 2, (3, 2))]
    mean, std = seed_mean_std(tables)
    for metric in ("rmse", "abs_rel"):
        values = [t["depth"][metric] for t in tables]
        assert mean["depth"][metric] == pytest.approx(np.mean(values), rel=1e-12)
        assert std["depth"][metric] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    assert seed_mean_std(tables[:1]) == (tables[0], {"depth": {"rmse": 0.0, "abs_rel": 0.0}})


def test_a_cpu_machine_name_names_the_torch_isa_and_the_numpy_blas_kernel():
    import os
    import subprocess
    import sys

    env = {**os.environ, "OPENBLAS_CORETYPE": "SkylakeX", "ATEN_CPU_CAPABILITY": "default"}
    code = "from mtlzoo.benchmark.results import machine_name; print(machine_name('cpu'))"
    name = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert name.startswith("cpu (") and "torch DEFAULT" in name and "numpy BLAS SkylakeX" in name, name
