"""benchmarks/leaderboard/vector_sweep.yaml: the vector families' leaderboard plans as its header says, and a tiny
version of it (2 methods, 1 seed, 3 steps) runs end to end to a table with delta_m against stl_mlp."""

import json
from pathlib import Path

from conftest import run_cli

from mtlzoo.benchmark.plan import plan_sweep
from mtlzoo.benchmark.spec import load_spec

SPEC = Path(__file__).resolve().parents[2] / "benchmarks" / "leaderboard" / "vector_sweep.yaml"
FAMILIES = ["mmoe_mlp", "cgc_mlp", "ple_mlp", "dselectk_mlp"]


def test_the_spec_plans_every_family_method_and_seed_with_the_train_vector_layouts():
    spec = load_spec(SPEC)
    plan = plan_sweep(spec, SPEC.parent)
    assert [a.label for a in spec.architectures] == FAMILIES and "cs_two_phase" not in [m.name for m in spec.methods]
    assert len(spec.methods) == 17 and spec.seeds == (0, 1, 2, 3, 4) and spec.out_dir == "runs/leaderboard_vector"
    assert plan.protocol == "mmoe_synthetic" and plan.tasks == {"task1": "regression", "task2": "regression"}
    assert len(plan.cells) == 4 * 17 * 5 and all(c.config is not None for c in plan.cells)  # every pair applies
    assert [c.key for c in plan.baselines] == [f"baselines/stl_mlp/seed{s}" for s in range(5)]
    layouts = {c.architecture: c.config.model.kwargs for c in plan.cells if c.method == "ew" and c.seed == 0}
    sizes = {"input_dim": 100, "expert_hidden": [16], "head_width": 8}
    assert layouts == {"mmoe_mlp": {**sizes, "num_shared_experts": 8},  # weights/train_vector.py's RECIPES
                       "cgc_mlp": {**sizes, "num_shared_experts": 4, "num_task_experts": 2},
                       "ple_mlp": {**sizes, "num_levels": 2, "num_shared_experts": 4, "num_task_experts": 2},
                       "dselectk_mlp": {**sizes, "num_shared_experts": 8, "dselect_k": 2}}
    config = plan.cells[0].config
    assert (config.optim.name, config.optim.lr, config.data.batch_size, config.train.steps) == ("adam", 1e-3, 128, 4000)
    assert plan.baselines[0].config.model.kwargs == {**sizes, "num_shared_experts": 8}


def test_a_tiny_version_runs_end_to_end_to_a_table_with_delta_m(tmp_path):
    out_dir = tmp_path / "vector"
    assert run_cli("run", SPEC, "--methods", "ew,pcgrad", "--seeds", "1", "--out-dir", out_dir, "train.steps=3",
                   "train.eval_every=3", "data.kwargs.length=256", "data.eval_batch_size=256") == 0
    results = json.loads((out_dir / "results.json").read_text())
    rows = {(r["architecture"], r["method"]): r for r in results["aggregates"]["rows"]}
    assert set(rows) == {(a, m) for a in FAMILIES for m in ("ew", "pcgrad")}
    assert all(isinstance(r["delta_m"]["mean"], float) for r in rows.values())
    assert rows["ple_mlp", "pcgrad"]["metrics"]["task2"]["mse"]["mean"] > 0
    page = tmp_path / "page.md"
    assert run_cli("report", out_dir / "results.json", "--markdown", page) == 0
    text = page.read_text()
    assert "delta_m (%)" in text and "stl_mlp" in text and "| pcgrad | 1 |" in text
    assert all(f"\n## {family}\n" in text for family in FAMILIES)
