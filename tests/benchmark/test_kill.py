"""A real sweep process stopped by SIGTERM (exit 143, one line) and killed by SIGKILL after some runs finished; the
rerun trains only the runs that had not finished and leaves the finished ones untouched."""

import signal
import time

import pytest
from conftest import RUNS, records, run_cli, subprocess_sweep, write_spec

from mtlzoo.benchmark import runner


def _stop_when(process, out_dir, count, signum):
    deadline = time.time() + 300
    while len(records(out_dir)) < count and process.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    process.send_signal(signum)
    process.wait(timeout=120)
    return process


@pytest.mark.slow  # 10-18 s on the shared 2-core machine (two process starts); test_sweep.py has in-process versions
def test_sigterm_then_sigkill_then_the_rerun_trains_only_the_missing_runs(tmp_path, monkeypatch):
    spec = write_spec(tmp_path)
    out_dir = tmp_path / "sweep"
    stopped = _stop_when(subprocess_sweep(spec), out_dir, 2, signal.SIGTERM)
    assert stopped.returncode == 143
    last = stopped.stderr.read().strip().splitlines()[-1]
    assert last.startswith("mtlzoo benchmark: interrupted") and "run the same command again" in last
    killed = _stop_when(subprocess_sweep(spec), out_dir, 4, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    done = records(out_dir)
    assert 4 <= len(done) < RUNS, "the sweep finished before it could be killed"
    trained = []
    real = runner.train_cell
    monkeypatch.setattr(runner, "train_cell", lambda cell, resume: trained.append(cell.key) or real(cell, resume))
    assert run_cli("run", spec) == 0
    assert len(trained) == RUNS - len(done) and not set(trained) & set(done)
    after = records(out_dir)
    assert len(after) == RUNS and {k: after[k] for k in done} == done
    assert (out_dir / "results.json").is_file()
