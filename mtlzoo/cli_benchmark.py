"""The ``mtlzoo benchmark`` subcommand: its arguments and what ``run`` and ``report`` do with them."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def _note(message: str) -> None:
    """Tell the user on stderr (stdout stays machine-readable)."""
    print(f"mtlzoo benchmark: {message}", file=sys.stderr)


def _benchmark_spec(args: argparse.Namespace) -> tuple[dict, str]:
    """The sweep spec of ``benchmark run`` (the SPEC file, then the flags that replace its keys, then overrides
    added to its own) and the command that reproduces it."""
    from mtlzoo.config import parse_yaml

    data = {}
    if args.spec is not None and "=" in args.spec and not Path(args.spec).exists():  # an override, not a file
        args.overrides, args.spec = [args.spec, *args.overrides], None
    if args.spec is not None:
        if not Path(args.spec).is_file():
            raise FileNotFoundError(f"sweep spec {args.spec!r} does not exist")
        data = parse_yaml(Path(args.spec).read_text(encoding="utf-8"), args.spec) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{args.spec}: the top level must be a mapping (config:, architectures:, methods:...)")
    words = ["mtlzoo", "benchmark", "run", *([args.spec] if args.spec else [])]
    for key in ("config", "architectures", "methods", "seeds", "baselines", "protocol", "out_dir"):
        value = getattr(args, key)
        if value is not None:
            words += [f"--{key.replace('_', '-')}", value]
            data[key] = parse_yaml(value, f"--{key}") if key == "seeds" else \
                [v.strip() for v in value.split(",")] if key in ("architectures", "methods") else value
    if args.overrides:
        data["overrides"] = [*(data.get("overrides") or []), *args.overrides]
    words += args.overrides
    return data, shlex.join(words)


def _cmd_benchmark(args: argparse.Namespace) -> None:
    """Run ``benchmark run`` or ``benchmark report``."""
    from mtlzoo.benchmark import report, run_benchmark, spec_from_dict
    from mtlzoo.benchmark.runner import parse_shard

    if args.action == "report":
        text = report(args.results, markdown=args.markdown, title=args.title, compare=args.compare,
                      plots=args.plots, tradeoff=args.tradeoff, preface=args.preface, note=_note,
                      budgets=args.budget, budget_value=args.budget_value, budget_results=args.budget_results)
        if args.markdown is None:
            print(text, end="")
        else:
            print(f"wrote {args.markdown}")
        return
    data, command = _benchmark_spec(args)
    spec = spec_from_dict(data)
    run_benchmark(spec, command, spec_dir=Path(args.spec).parent if args.spec else None, overwrite=args.overwrite,
                  update_spec=args.update_spec, title=args.title, compare=args.compare, tradeoff=args.tradeoff,
                  dry_run=args.dry_run, retry_failed=args.retry_failed,
                  shard=parse_shard(args.shard) if args.shard else None,
                  only=[a for a in (args.only or "").split(",") if a], note=_note)


def add_benchmark_parser(sub: argparse._SubParsersAction) -> None:
    """The ``benchmark`` subcommand with its ``run`` and ``report`` actions."""
    p = sub.add_parser("benchmark", help="sweep architectures x methods x seeds with single-task baselines; tables")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="train every missing cell of a sweep and write results.{json,csv,md}")
    run.add_argument("spec", nargs="?", default=None, help="sweep spec YAML (see docs/benchmark.md)")
    for key, what in (("config", "base config: shipped name or path"),
                      ("architectures", "comma-separated model names"), ("methods", "comma-separated balancers / "
                                                                                    "update rules"),
                      ("seeds", "a count or a list, e.g. 3 or [0,1,2]"),
                      ("baselines", "'auto' (the base config's single-task form) or 'none'"),
                      ("protocol", "protocol every run is scored under"), ("out_dir", "the sweep's folder")):
        run.add_argument(f"--{key.replace('_', '-')}", dest=key, default=None, help=f"replaces the spec's {key}: "
                         f"{what}")
    run.add_argument("--overwrite", action="store_true",
                     help="retrain cells whose folder holds a run of another config (default: refuse)")
    run.add_argument("--update-spec", action="store_true",
                     help="continue an out_dir whose saved spec differs (unchanged cells are kept)")
    run.add_argument("--retry-failed", action="store_true",
                     help="train the runs that failed (diverged, out of memory) again (default: keep them as failed)")
    run.add_argument("--dry-run", action="store_true",
                     help="check the spec and every run folder, say what each run would do, train nothing")
    run.add_argument("--shard", default=None, metavar="K/N",
                     help="train only runs K, K+N, K+2N... (N processes sharing the out_dir; the last one to finish "
                          "writes the results)")
    run.add_argument("--only", default=None, metavar="LABEL[,LABEL]",
                     help="train only the runs of these architectures (their labels; the baseline's is stl_*)")
    _add_benchmark_render(run)
    run.add_argument("overrides", nargs="*", help="section.key=value added to the spec's overrides")
    run.set_defaults(func=_cmd_benchmark)
    rep = actions.add_parser("report", help="render a results.json again (markdown, comparison, plots)")
    rep.add_argument("results", help="a results.json written by `mtlzoo benchmark run`")
    rep.add_argument("--markdown", default=None, help="write the page here (default: print it)")
    rep.add_argument("--plots", default=None, help="write the plots into this folder")
    rep.add_argument("--preface", default=None, metavar="FILE",
                     help="a markdown file whose text goes under the page title (e.g. what the budget means)")
    rep.add_argument("--budget", action="append", default=[], choices=("steps", "backward", "time"),
                     help="compare at equal steps (default), equal backward passes or equal training time; "
                          "repeat it for one table per budget, e.g. --budget steps --budget backward")
    rep.add_argument("--budget-value", type=float, default=None, metavar="B",
                     help="the budget B of the --budget other than steps (default: per architecture, the fewest "
                          "any of its runs reached)")
    rep.add_argument("--budget-results", default=None, metavar="RESULTS",
                     help="the results.json of a sweep run under a spec budget (e.g. budget: {backward: 200}): the "
                          "tables of that budget are its runs at their ends, beside this file's equal-steps tables")
    _add_benchmark_render(rep)
    rep.set_defaults(func=_cmd_benchmark)


def _add_benchmark_render(p: argparse.ArgumentParser) -> None:
    p.add_argument("--title", default=None, help="title of the markdown page")
    p.add_argument("--compare", action="append", default=[], metavar="NAME",
                   help="put a published table (mtlzoo.metrics.references) beside the rows, same protocol")
    p.add_argument("--tradeoff", default=None, metavar="TASK.METRIC,TASK.METRIC",
                   help="also plot these two metrics against each other, e.g. semseg.miou,depth.rmse")
