"""``mtlzoo benchmark``: sweeps of architectures x methods x seeds with the sweep's own single-task baselines,
resumable cell by cell, and their results as JSON, CSV, markdown and plots."""

from mtlzoo.benchmark.plan import Plan, plan_sweep
from mtlzoo.benchmark.spec import SweepSpec, load_spec, spec_from_dict
from mtlzoo.benchmark.sweep import report, run_benchmark

__all__ = ["Plan", "SweepSpec", "load_spec", "plan_sweep", "report", "run_benchmark", "spec_from_dict"]
