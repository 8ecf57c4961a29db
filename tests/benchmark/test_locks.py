"""Processes sharing an out_dir: a second full `mtlzoo benchmark run` is refused naming the holder's pid, a run
another live process holds is never trained twice (a shard leaves it, a full run waits for it), and a process
killed with SIGKILL leaves no stale lock."""

import json
import os
import subprocess
import sys

import pytest
from conftest import records, run_cli, subprocess_sweep, write_spec

from mtlzoo.benchmark import runner, sweep
from mtlzoo.benchmark.locks import CELL_LOCK, SWEEP_LOCK, FileLock

TWO = {"architectures": ["hps_tiny"], "methods": ["ew"], "seeds": [0, 1], "baselines": "none"}
SEED0, SEED1 = "cells/hps_tiny/ew/seed0", "cells/hps_tiny/ew/seed1"
# another process holding a lock file the way a sweep does (flock, its pid in the file) until it is killed
HOLD = ("import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.ftruncate(fd, 0)\n"
        "os.write(fd, f'{os.getpid()}\\n'.encode())\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n")


@pytest.fixture
def holder():
    """``hold(path)`` starts a process that holds the lock file ``path``; every one is SIGKILLed at the end."""
    started = []

    def hold(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield hold
    for process in started:
        process.kill()
        process.wait()


def _trained(monkeypatch):
    trained = []
    real = runner.train_cell
    monkeypatch.setattr(runner, "train_cell", lambda cell, resume: trained.append(cell.key) or real(cell, resume))
    return trained


def test_a_second_full_run_is_refused_naming_the_out_dir_and_the_holders_pid_and_sigkill_frees_it(
        tmp_path, holder, capsys):
    spec = write_spec(tmp_path, **TWO)
    out_dir = tmp_path / "sweep"
    other = holder(out_dir / SWEEP_LOCK)
    assert run_cli("run", spec) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"out_dir {str(out_dir)!r}" in err and f"(pid {other.pid})" in err
    assert records(out_dir) == {} and not (out_dir / "spec.json").exists()  # refused before anything
    other.kill()
    other.wait()
    assert (out_dir / SWEEP_LOCK).read_text().strip() == str(other.pid)  # the file stays; its lock went with it
    assert run_cli("run", spec) == 0 and sorted(records(out_dir)) == [SEED0, SEED1]


def test_a_shard_leaves_a_run_another_live_process_holds_to_it(tmp_path, holder, monkeypatch, capsys):
    spec = write_spec(tmp_path, **TWO)
    out_dir = tmp_path / "sweep"
    other = holder(out_dir / SEED0 / CELL_LOCK)
    trained = _trained(monkeypatch)
    assert run_cli("run", spec, "--shard", "1/1") == 0
    assert trained == [SEED1] and list(records(out_dir)) == [SEED1]
    err = capsys.readouterr().err
    assert f"{SEED0}: another process (pid {other.pid}) is training it; left to it" in err
    assert "1 runs of other shards are not finished yet" in err and not (out_dir / "results.json").exists()


def test_a_full_run_waits_for_a_run_another_process_holds_and_trains_it_once_that_process_is_killed(
        tmp_path, holder, monkeypatch, capsys):
    spec = write_spec(tmp_path, **TWO)
    out_dir = tmp_path / "sweep"
    other = holder(out_dir / SEED0 / CELL_LOCK)
    trained, waits = _trained(monkeypatch), []

    def pause(seconds):
        waits.append(list(trained))
        if len(waits) == 3:
            other.kill()
            other.wait()

    monkeypatch.setattr(runner, "_pause", pause)
    assert run_cli("run", spec) == 0
    assert waits == [[SEED1]] * 3  # it trained its other run first, then waited
    assert trained == [SEED1, SEED0] and sorted(records(out_dir)) == [SEED0, SEED1]
    assert f"{SEED0}: waiting for pid {other.pid}, which is training it" in capsys.readouterr().err
    results = json.loads((out_dir / "results.json").read_text())
    assert [c["seed"] for c in results["cells"]] == [0, 1]


def _finish_meanwhile(monkeypatch, path, text):
    """The checks see ``path`` as it is; another process then writes ``text`` there before this one trains."""
    real = sweep.check_cells

    def check_cells(*args):
        states = real(*args)
        path.write_text(text)
        return states

    monkeypatch.setattr(sweep, "check_cells", check_cells)


def test_a_run_another_process_finished_after_the_checks_is_read_not_trained_again(tmp_path, monkeypatch):
    spec = write_spec(tmp_path, **{**TWO, "seeds": [0]})
    out_dir = tmp_path / "sweep"
    assert run_cli("run", spec) == 0
    path = out_dir / SEED0 / "benchmark_cell.json"
    finished = path.read_text()
    path.unlink()  # the checks find a run to resume...
    _finish_meanwhile(monkeypatch, path, finished)  # ...that another process finishes first
    monkeypatch.setattr(runner, "train_cell", lambda *a, **k: pytest.fail("a finished run trained again"))
    assert run_cli("run", spec) == 0
    assert path.read_text() == finished


def test_retry_failed_keeps_a_failed_record_another_process_wrote_after_the_checks(tmp_path, monkeypatch):
    """Two processes given --retry-failed: the one that gets the run second finds it retried already (and failed
    again): it keeps that record instead of training the run a second time."""
    spec = write_spec(tmp_path, **{**TWO, "seeds": [0]})
    out_dir = tmp_path / "sweep"

    def diverging(cell, resume):
        raise RuntimeError("diverged")

    monkeypatch.setattr(runner, "train_cell", diverging)
    assert run_cli("run", spec) == 0
    path = out_dir / SEED0 / "benchmark_cell.json"
    again = json.loads(path.read_text())
    assert again["status"] == "failed"
    again["reason"] = "RuntimeError: diverged again"
    _finish_meanwhile(monkeypatch, path, json.dumps(again))
    monkeypatch.setattr(runner, "train_cell", lambda *a, **k: pytest.fail("a retried run trained again"))
    assert run_cli("run", spec, "--retry-failed") == 0
    assert json.loads(path.read_text())["reason"] == "RuntimeError: diverged again"


def test_a_lock_is_exclusive_between_two_holders_and_names_its_holder(tmp_path):
    first, second = FileLock(tmp_path / "a" / "x.lock"), FileLock(tmp_path / "a" / "x.lock")
    with first:
        assert not second.acquire() and second.holder() == str(os.getpid())
    assert second.acquire()
    second.release()
    assert FileLock(tmp_path / "none.lock").holder() == "unknown"


@pytest.mark.slow  # two process starts: 10-20 s on the shared 2-core machine
def test_two_full_runs_at_once_one_is_refused_and_the_results_agree_with_the_records(tmp_path, holder):
    """The audit's case: two `mtlzoo benchmark run` on one out_dir. The first holds the out_dir (kept waiting for
    a run a third process holds); the second is refused with exit 2; the first then finishes every run once."""
    spec = write_spec(tmp_path, **TWO)
    out_dir = tmp_path / "sweep"
    blocker = holder(out_dir / SEED0 / CELL_LOCK)
    first = subprocess_sweep(spec)
    lines = []
    while not any("waiting for pid" in line for line in lines) and first.poll() is None:
        lines.append(first.stderr.readline())
    assert first.poll() is None, "".join(lines) + first.stderr.read()
    second = subprocess_sweep(spec)
    assert second.wait(timeout=300) == 2
    err = second.stderr.read()
    assert err.count("\n") == 1 and f"out_dir {str(out_dir)!r}" in err and f"(pid {first.pid})" in err
    blocker.kill()
    assert first.wait(timeout=300) == 0, first.stderr.read()
    results = json.loads((out_dir / "results.json").read_text())
    for cell in results["cells"]:
        assert cell == json.loads((out_dir / cell["key"] / "benchmark_cell.json").read_text())
    assert sorted(records(out_dir)) == [SEED0, SEED1]
