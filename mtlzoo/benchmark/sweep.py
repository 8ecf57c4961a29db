"""The two things ``mtlzoo benchmark`` does: run a sweep to its results files, and render a results file again."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from mtlzoo.benchmark.budget import check_budgets
from mtlzoo.benchmark.locks import SWEEP_LOCK, FileLock, lock_out_dir
from mtlzoo.benchmark.plan import Plan, plan_sweep
from mtlzoo.benchmark.results import build_results
from mtlzoo.benchmark.runner import check_cells, check_saved_spec, is_main_rank, record_stamps, run_cells, save_spec
from mtlzoo.benchmark.spec import SweepSpec
from mtlzoo.benchmark.table import read_results, render_markdown, write_results
from mtlzoo.checkpoint import atomic_write_text
from mtlzoo.extras import MissingExtraError


def default_title(results: dict[str, Any]) -> str:
    """The page title when none is given."""
    return f"Benchmark under the {results['protocol']} protocol"


def report_command(results_path: str | Path, markdown: str | Path | None, title: str | None = None,
                   compare: Sequence[str] = (), budgets: Sequence[str] = ("steps",),
                   budget_value: float | None = None, budget_results: str | Path | None = None) -> str:
    """The ``mtlzoo benchmark report`` command line that renders a page (written into the page itself)."""
    words = ["mtlzoo", "benchmark", "report", str(results_path)]
    words += ["--markdown", str(markdown)] if markdown is not None else []
    words += ["--title", title] if title is not None else []
    for name in compare:
        words += ["--compare", name]
    for budget in budgets if tuple(budgets) != ("steps",) else ():
        words += ["--budget", budget]
    words += ["--budget-value", f"{budget_value:g}"] if budget_value is not None else []
    words += ["--budget-results", str(budget_results)] if budget_results is not None else []
    return shlex.join(words)


def _check_tradeoff(text: str | None, tasks: dict[str, str]) -> None:
    """Refuse a ``--tradeoff`` naming a task the sweep does not train, before anything trains."""
    for key in (text or "").split(","):
        if text and key.strip().partition(".")[0] not in tasks:
            raise ValueError(f"--tradeoff {text!r}: {key.strip()!r} names no task of the sweep {sorted(tasks)}; "
                             "expects task.metric,task.metric")


def write_plots_or_say(results: dict[str, Any], folder: Path, tradeoff: str | None,
                       note: Callable[[str], None]) -> list[Path]:
    """The plots, or one line naming the extra when matplotlib is missing (the tables are written regardless)."""
    from mtlzoo.benchmark.plots import parse_tradeoff, write_plots

    if tradeoff:
        parse_tradeoff(tradeoff, results)
    try:
        return write_plots(results, folder, tradeoff)
    except MissingExtraError as error:
        note(f"no plots: {error}")
        return []


_WOULD = {"done": "finished (kept)", "resume": "resume from its latest checkpoint", "fresh": "train"}


def _silent(message: str) -> None:
    """Where the other ranks of a torchrun job say things."""


def _check_options(plan: Plan, tradeoff: str | None, compare: Sequence[str], only: Sequence[str],
                   note: Callable[[str], None]) -> None:
    """Refuse a bad --tradeoff / --compare / --only before anything is written; name the pairs that do not apply."""
    _check_tradeoff(tradeoff, plan.tasks)
    if compare:
        from mtlzoo.benchmark.compare import check_compare

        for name in compare:
            check_compare({"protocol": plan.protocol}, name)
    for cell in sorted({(c.architecture, c.method, c.reason) for c in plan.cells if c.reason}):
        note(f"{cell[0]} x {cell[1]}: not applicable: {cell[2]}")
    labels = {c.architecture for c in [*plan.baselines, *plan.cells]}
    unknown = sorted(set(only) - labels)
    if unknown:
        raise ValueError(f"--only {','.join(only)}: {unknown} is no architecture of the sweep; its labels: "
                         f"{sorted(labels)}")


def run_benchmark(spec: SweepSpec, command: str, spec_dir: Path | None = None, overwrite: bool = False,
                  update_spec: bool = False, title: str | None = None, compare: Sequence[str] = (),
                  tradeoff: str | None = None, dry_run: bool = False, retry_failed: bool = False,
                  shard: tuple[int, int] | None = None, only: Sequence[str] = (),
                  note: Callable[[str], None] = print) -> dict[str, Any]:
    """Plan, check, train what is missing and write ``results.json``, ``results.csv``, ``results.md`` and plots
    into the spec's out_dir; returns the results (rank 0; other ranks of a torchrun job get ``{}``).
    ``dry_run`` stops after the checks and says what each run would do (``{}`` is returned); ``retry_failed``
    trains the runs that failed (diverged, out of memory) again. ``shard=(K, N)`` trains every N-th run only
    (see :func:`run_cells`) and ``only`` the runs of those architecture labels; either writes the results only
    when every other run has finished too (``{}`` otherwise).

    A full run (neither ``shard`` nor ``only``) holds the out_dir's lock throughout: a second one is refused
    (:class:`~mtlzoo.benchmark.locks.OutDirBusy`, naming the holder's pid); shard and ``only`` processes share
    the out_dir, each run trained under its own lock, and take the out_dir's lock only to write the results."""
    if not is_main_rank():
        note = _silent  # one voice per torchrun job
    plan = plan_sweep(spec, spec_dir)
    _check_options(plan, tradeoff, compare, only, note)
    if dry_run:
        check_saved_spec(spec, update_spec)
        states = check_cells(plan, overwrite, retry_failed)
        for key, state in states.items():
            note(f"{key}: {_WOULD[state]}")
        note(f"{len(states)} runs, {sum(s != 'done' for s in states.values())} to train (dry run: nothing trained)")
        return {}
    partial = shard is not None or bool(only)
    with ExitStack() as locks:
        if not partial and is_main_rank():
            locks.callback(lock_out_dir(spec.out_dir).release)
        check_saved_spec(spec, update_spec)
        stamps = record_stamps(plan)
        states = check_cells(plan, overwrite, retry_failed)
        save_spec(spec)
        records = run_cells(plan, states, note=note, shard=shard, only=only, overwrite=overwrite,
                            retry_failed=retry_failed, stamps=stamps)
        if not is_main_rank():  # the other ranks of a torchrun job hold no metrics (rank 0 evaluates)
            return {}
        mine = f"shard {shard[0]}/{shard[1]}" if shard else f"--only {','.join(only)}"
        missing = len(states) - len(records)
        if missing:
            note(f"{mine} done; {missing} runs of other shards are not finished yet: run the command again without "
                 "--shard / --only once they are, to write the results")
            return {}
        if partial:  # the last shards to finish may get here together: one writes
            lock = FileLock(Path(spec.out_dir) / SWEEP_LOCK)
            if not lock.acquire():
                note(f"{mine} done; every run has finished and pid {lock.holder()} holds the out_dir: it writes "
                     "the results")
                return {}
            locks.callback(lock.release)
        return _write_results(spec, plan, records, command, title, compare, tradeoff, note)


def _write_results(spec: SweepSpec, plan: Plan, records: dict[str, dict], command: str, title: str | None,
                   compare: Sequence[str], tradeoff: str | None, note: Callable[[str], None]) -> dict[str, Any]:
    results = json.loads(json.dumps(build_results(spec.to_dict(), plan, records, command)))
    out_dir = Path(spec.out_dir)
    paths = write_results(out_dir, results)
    page = out_dir / "results.md"
    atomic_write_text(page, render_markdown(results, title or default_title(results),
                                            report_command(paths["json"], page, title, compare), compare))
    plots = write_plots_or_say(results, out_dir / "plots", tradeoff, note)
    note(f"results: {paths['json']}, {paths['csv']}, {page}" + (f"; plots in {out_dir / 'plots'}" if plots else ""))
    return results


def _budget_run(path: str | Path, results: dict[str, Any], budgets: Sequence[str]) -> dict[str, Any]:
    """The results of a sweep run under a spec budget, for the tables of its measure; a one-line ValueError when it
    was not run under a budget, under another protocol, or its measure is not among ``budgets``."""
    other = read_results(path)
    budget = (other.get("spec") or {}).get("budget")
    if not budget:
        raise ValueError(f"--budget-results {path}: its sweep ran without a spec budget; expects the results of a "
                         "sweep with budget: {backward: N} (e.g. benchmarks/leaderboard/sweep_v3_backward.yaml)")
    if other["protocol"] != results["protocol"]:
        raise ValueError(f"--budget-results {path}: protocol {other['protocol']!r} differs from the results' "
                         f"{results['protocol']!r}; expects the same protocol")
    if budget["measure"] not in budgets:
        raise ValueError(f"--budget-results {path}: its runs are at {budget['value']} {budget['measure']} passes; "
                         f"add --budget {budget['measure']} to render them")
    return other


def report(results_path: str | Path, markdown: str | Path | None = None, title: str | None = None,
           compare: Sequence[str] = (), plots: str | Path | None = None, tradeoff: str | None = None,
           preface: str | Path | None = None, note: Callable[[str], None] = print, budgets: Sequence[str] = (),
           budget_value: float | None = None, budget_results: str | Path | None = None) -> str:
    """Render a results file again as markdown (written to ``markdown``, returned either way) and plots;
    ``preface`` names a markdown file whose text goes under the title (what the numbers need said about them).
    ``budgets`` (``steps``, ``backward``, ``time``; default steps) are the tables each architecture gets, in
    order, ``budget_value`` the B of the one other than steps (default: the fewest any run of it reached).
    ``budget_results``: a results file of the same protocol whose sweep ran under a spec ``budget`` (each run
    trained to it with its full schedule, e.g. sweep_v3_backward.yaml); the tables of that budget's measure are
    then its runs at their ends, B its budget, beside this file's equal-steps tables."""
    budgets = check_budgets(budgets, budget_value)
    results = read_results(results_path)
    other = _budget_run(budget_results, results, budgets) if budget_results is not None else None
    limit = budget_value if other is None or budget_value is not None else other["spec"]["budget"]["value"]
    try:
        preface_text = Path(preface).read_text(encoding="utf-8").strip() if preface is not None else None
    except OSError as error:
        raise ValueError(f"--preface {preface}: cannot read it ({error.strerror})") from None
    command = report_command(results_path, markdown, title, compare, budgets, budget_value, budget_results)
    command += f" --preface {shlex.quote(str(preface))}" if preface is not None else ""
    text = render_markdown(results, title or default_title(results), command, compare, preface=preface_text,
                           budgets=budgets, budget_value=limit, budget_results=other)
    if markdown is not None:
        atomic_write_text(markdown, text)
    if plots is not None:
        write_plots_or_say(results, Path(plots), tradeoff, note)
    elif tradeoff:
        raise ValueError("--tradeoff draws a plot: give --plots DIR too")
    return text
