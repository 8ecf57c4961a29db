"""The ``mtlzoo`` command: list, info, demo, train, eval, finetune, diagnose, publish, benchmark."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mtlzoo.cli_benchmark import add_benchmark_parser


def _cmd_list(args: argparse.Namespace) -> None:
    import mtlzoo
    from mtlzoo.config import shipped_configs

    listers = {
        "models": lambda: mtlzoo.list_models(args.pattern),
        "pretrained": lambda: mtlzoo.list_models(args.pattern, pretrained=True),
        "balancers": mtlzoo.list_balancers,
        "rules": mtlzoo.list_update_rules,
        "presets": mtlzoo.list_task_presets,
        "protocols": mtlzoo.list_protocols,
        "baselines": mtlzoo.metrics.list_baselines,
        "references": mtlzoo.metrics.list_references,
        "datasets": mtlzoo.list_datasets,
        "configs": shipped_configs,
    }
    if args.pretrained or args.what == "pretrained":  # a table: what each was trained on and what it scores
        from mtlzoo.listing import pretrained_table

        print(pretrained_table(args.pattern, sort=args.sort), end="")
        return
    for what in [args.what] if args.what != "all" else list(listers):
        names = listers[what]()
        print(f"{what} ({len(names)}): {', '.join(names) if names else '-'}")


def _cmd_info(args: argparse.Namespace) -> None:
    from mtlzoo.listing import model_figures
    from mtlzoo.models.info import format_info

    info = model_figures(args.model, tasks=args.tasks, input_size=args.size)
    print(json.dumps(info, indent=2) if args.json else format_info(info))


def _cmd_demo(args: argparse.Namespace) -> None:
    from mtlzoo.demo import run_demo

    run_demo(out_dir=args.out, steps=args.steps, quick=args.quick)


def _cmd_train(args: argparse.Namespace) -> None:
    from mtlzoo.config import load_config, resolve_config_path
    from mtlzoo.train.run import train_from_config

    config = load_config(resolve_config_path(args.config) if args.config else None,
                         [*_data_overrides(args), *args.overrides])
    if args.single_task:
        from mtlzoo.train.single_task import single_task_config

        config = single_task_config(config)
    config.train.overwrite = config.train.overwrite or args.overwrite
    if args.resume and config.train.overwrite:
        raise ValueError("--resume and --overwrite (train.overwrite) exclude each other: --overwrite deletes the "
                         "run that --resume would continue")
    result = train_from_config(config, resume=args.resume)
    print(json.dumps(result, indent=2))


def _cmd_eval(args: argparse.Namespace) -> None:
    from mtlzoo.scoring import score_checkpoint

    # the protocol, --baseline and --compare are checked before the evaluation, not after it
    result = score_checkpoint(args.checkpoint, data=args.data, split=args.split, protocol=args.protocol,
                              baseline=args.baseline, data_options=_options(args.data_opt), batch_size=args.batch_size,
                              device=args.device, random_init=args.random_init, compare=args.compare,
                              note=_note(args))
    text = json.dumps(result, indent=2)
    if args.json:
        from mtlzoo.checkpoint import atomic_write_text

        atomic_write_text(args.json, text)
    print(text)
    if args.compare:
        from mtlzoo.metrics import compare_with_reference

        print(compare_with_reference(result, args.compare).to_markdown(), end="")


def _cmd_finetune(args: argparse.Namespace) -> None:
    from mtlzoo.config import load_config, resolve_config_path
    from mtlzoo.train.run import finetune_from_checkpoint

    # train.best_metric may name an added task: it is checked against the fine-tuned model, not model.tasks
    config = load_config(resolve_config_path(args.config) if args.config else None,
                         [*_data_overrides(args), *args.overrides], model_tasks=False)
    config.train.overwrite = config.train.overwrite or args.overwrite
    if args.resume and config.train.overwrite:
        raise ValueError("--resume and --overwrite (train.overwrite) exclude each other: --overwrite deletes the "
                         "fine-tuning run that --resume would continue")
    result = finetune_from_checkpoint(args.checkpoint, config, add_tasks=args.add_task,
                                      freeze_encoder=args.freeze_encoder, only_new_tasks=args.only_new_tasks,
                                      random_init=args.random_init, note=_note(args), resume=args.resume)
    print(json.dumps(result, indent=2))


def _cmd_diagnose(args: argparse.Namespace) -> None:
    from mtlzoo.diagnose import gradient_report, summarize, write_report
    from mtlzoo.scoring import is_architecture_name, model_and_data
    from mtlzoo.train.run import make_loader

    # a bare architecture name means a fresh model here: gradient conflict at initialisation is a question of its own
    random_init = args.random_init or is_architecture_name(args.model)
    model, options, tasks = model_and_data(args.model, args.data, _options(args.data_opt), tasks=args.tasks,
                                           random_init=random_init, note=_note(args))
    loader = make_loader(args.data, args.split, model, options, args.batch_size, shuffle=True, tasks=tasks)
    report = gradient_report(model, loader, max_batches=args.batches, layer_depth=args.layer_depth)
    paths = write_report(report, args.out)
    print(summarize(report))
    print(f"report and plots written to {Path(args.out).resolve()}: {', '.join(p.name for p in paths)}")


def _cmd_publish(args: argparse.Namespace) -> None:
    from mtlzoo.models import publish

    url = publish(args.checkpoint, args.repo_id, revision=args.revision, private=args.private,
                  token=args.token, commit_message=args.message)
    print(f"published {args.checkpoint} to {url}")


def _sentence(error: BaseException, command: str) -> str:
    """The error's message; for the commands in ``_SENTENCE_COMMANDS``, ending with a period."""
    text = str(error)
    if command in _SENTENCE_COMMANDS and not text.endswith((".", "?", "!")):
        text += "."
    return text


_SENTENCE_COMMANDS = ("eval", "diagnose", "info", "list")


def _note(args: argparse.Namespace) -> Callable[[str], None]:
    """Tell the user (on stderr, so stdout stays machine-readable) which weights a command uses."""
    return lambda message: print(f"mtlzoo {args.command}: {message}", file=sys.stderr)


def _options(items: Sequence[str] | None) -> dict:
    from mtlzoo.config import parse_yaml

    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--data-opt {item!r}: expects key=value, e.g. size=[96,128]")
        key, value = item.split("=", 1)
        out[key] = parse_yaml(value, f"--data-opt {key}")
    return out


def _data_overrides(args: argparse.Namespace) -> list[str]:
    """Config overrides for ``--data`` / ``--data-opt`` of train and finetune: ``--data`` replaces data.name, its
    options data.kwargs and how it is scored (eval.protocol, eval.baseline: the new data set's defaults); a data set
    that declares its tasks (folder:, hf:) also sets model.tasks. Overrides on the command line still win."""
    options = _options(args.data_opt)
    if args.data is None:
        return [f"data.kwargs.{key}={json.dumps(value)}" for key, value in options.items()]
    from mtlzoo.data import dataset_tasks

    out = [f"data.name={json.dumps(args.data)}", f"data.kwargs={json.dumps(options)}", "eval.protocol=null",
           "eval.baseline=null"]
    if not any(item.split("=", 1)[0].strip() == "model.tasks" for item in args.overrides):
        tasks = dataset_tasks(args.data, options)
        if tasks is not None:
            out.append(f"model.tasks={json.dumps([t.to_dict() for t in tasks])}")
    return out


def _import_plugins(modules: Sequence[str]) -> None:
    """Entry-point plugins, then ``--import`` modules (found on PYTHONPATH or in the current folder)."""
    from mtlzoo.plugins import import_modules, load_entry_point_plugins

    load_entry_point_plugins()
    if modules and "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.append(str(Path.cwd()))  # the console script's sys.path lacks the folder it runs in
    import_modules(modules)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``mtlzoo`` command (exposed for docs and tests)."""
    from mtlzoo.version import __version__

    parser = argparse.ArgumentParser(prog="mtlzoo", description="Multi-task learning model zoo.")
    parser.add_argument("--version", action="version", version=f"mtlzoo {__version__}")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import this module first (repeatable), so the models, balancers, task kinds, data sets "
                             "and protocols it registers can be named; also: a config's imports: list and the "
                             "mtlzoo.plugins entry-point group")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list models, pretrained weights, balancers, presets, protocols...")
    p.add_argument("what", nargs="?", default="all",
                   choices=["all", "models", "pretrained", "balancers", "rules", "presets", "protocols", "datasets",
                            "configs", "baselines", "references"])
    p.add_argument("--pattern", default="*", help="fnmatch filter for model names")
    p.add_argument("--pretrained", action="store_true",
                   help="the pretrained weights as a table: tag, data and version, input size, parameters, GFLOPs, "
                        "CPU images/s, delta_m and headline metrics over seeds (also `mtlzoo list pretrained`)")
    p.add_argument("--sort", default="name", metavar="COLUMN",
                   help="order of the pretrained table, best first: name, delta_m, params, gflops, img_s or a "
                        "TASK.METRIC such as semseg.miou (default: name)")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("info", help="parameters and FLOPs of a model for a task preset and input size")
    p.add_argument("model", help="an architecture name, a pretrained name.tag, a checkpoint or run folder, or hf-hub:")
    p.add_argument("--tasks", default=None, help="for an architecture name: task preset (default: nyud) or "
                   "NAME:KIND[:CHANNELS],... e.g. a:regression,b:regression")
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="input size (default: the checkpoint's recorded one, else 288 384)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("demo", help="the end-to-end demo on synthscenes (a few minutes on a laptop CPU)")
    p.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    p.add_argument("--steps", type=int, default=None, help="training steps per model (default: the demo's own)")
    p.add_argument("--quick", action="store_true", help="a much shorter run, for smoke tests")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="train from a YAML config with key=value overrides")
    p.add_argument("--config", help="YAML file or shipped config name (see `mtlzoo list configs`)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint of train.out_dir")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run already in train.out_dir and start clean (default: refuse a non-empty one)")
    p.add_argument("--single-task", action="store_true",
                   help="train the config's single-task baselines (stl_* model, ew, train.out_dir + '_stl'); then "
                        "pass that run folder as eval.baseline=... to get delta_m")
    _add_run_data_args(p)
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.steps=500 method.name=pcgrad")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint folder on a data set under a protocol")
    _add_data_args(p)
    p.add_argument("checkpoint", help="a checkpoint folder, a run folder (its checkpoints/latest), checkpoints/latest, "
                   "a pretrained name(.tag) or hf-hub:ORG/NAME; scored on the data settings it recorded (--data-opt "
                   "overrides) and on the tasks the data labels")
    p.add_argument("--protocol", default=None, help="protocol preset (default: the data set's)")
    p.add_argument("--baseline", default=None, help="'auto', a shipped baseline name, a JSON result file (--json) or "
                   "a run / checkpoint folder; none measured on other data (another data set or version)")
    p.add_argument("--device", default=None)
    p.add_argument("--json", default=None, help="also write the result to this JSON file")
    p.add_argument("--compare", default=None, metavar="NAME",
                   help="also print the result beside a published table (`mtlzoo list references`), same protocol")
    _add_random_init(p)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("finetune", help="add task heads to a checkpoint and train them (optionally frozen encoder)")
    p.add_argument("checkpoint")
    p.add_argument("--add-task", action="append", default=[], metavar="NAME:KIND[:CHANNELS]",
                   help="a task to add, e.g. sal:saliency or scene:classification:10")
    p.add_argument("--freeze-encoder", action="store_true", help="keep the shared part as it is")
    p.add_argument("--only-new-tasks", action="store_true",
                   help="train only the added heads (with --freeze-encoder the old outputs stay unchanged)")
    p.add_argument("--config", help="YAML file or shipped config name for data, optimizer and loop")
    p.add_argument("--overwrite", action="store_true", help="delete the run already in train.out_dir first")
    p.add_argument("--resume", action="store_true",
                   help="continue the fine-tuning run in train.out_dir from its latest checkpoint (same checkpoint, "
                        "--add-task and freeze flags as when it started)")
    _add_run_data_args(p)
    _add_random_init(p)
    p.add_argument("overrides", nargs="*", help="section.key=value overrides")
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("diagnose", help="gradient-conflict report of a model or checkpoint on some batches")
    p.add_argument("model", help="a registered model name (random weights), a checkpoint folder, a run folder (its "
                   "checkpoints/latest) or checkpoints/latest")
    _add_data_args(p)
    p.add_argument("--tasks", default=None, help="task preset for a model name (default: the data set's)")
    p.add_argument("--random-init", action="store_true",
                   help="random weights (what a bare architecture name gets here anyway); refused for a checkpoint")
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--layer-depth", type=int, default=3, help="name levels that make one layer of the map")
    p.add_argument("--out", default="outputs/diagnose")
    p.set_defaults(func=_cmd_diagnose)

    p = sub.add_parser("publish", help="push a checkpoint folder (weights, config, model card) to the HF Hub")
    p.add_argument("checkpoint")
    p.add_argument("--repo-id", required=True, help="org/name on the Hugging Face Hub")
    p.add_argument("--revision", default=None)
    p.add_argument("--private", action="store_true")
    p.add_argument("--token", default=None)
    p.add_argument("--message", default="Upload mtlzoo checkpoint")
    p.set_defaults(func=_cmd_publish)
    add_benchmark_parser(sub)
    return parser


def _add_random_init(p: argparse.ArgumentParser) -> None:
    p.add_argument("--random-init", action="store_true",
                   help="with a bare architecture name: random weights (default: its default pretrained tag, "
                        "refused when it has none)")


def _add_run_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="data set replacing the config's (with its options and protocol): "
                   "a registered name, folder:PATH (tasks from its tasks.json) or hf:NAME_OR_PATH")
    p.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="data set option (data.kwargs.KEY), e.g. size=[96,128]")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="synthscenes",
                   help="registered data set name, folder:PATH or hf:NAME_OR_PATH (default: synthscenes)")
    p.add_argument("--split", default="val")
    p.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="data set option, e.g. root=/data/NYUD or length=64")
    p.add_argument("--batch-size", type=int, default=8)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mtlzoo`` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may follow options (argparse stops filling a positional list at the first option)
    if extra and hasattr(args, "overrides") and all("=" in item and not item.startswith("-") for item in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from mtlzoo.extras import MissingExtraError
    from mtlzoo.train.distributed import DistTimeoutError
    from mtlzoo.train.interrupt import TrainingInterrupted

    try:
        _import_plugins(args.imports)
        args.func(args)
    except (ValueError, FileNotFoundError, MissingExtraError) as error:
        print(f"mtlzoo {args.command}: error: {_sentence(error, args.command)}", file=sys.stderr)
        return 2
    except DistTimeoutError as error:  # a runtime failure (exit 1), but one line says which rank and what to do
        print(f"mtlzoo {args.command}: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # disk full, read-only folder (CheckpointWriteError names the checkpoint): one line
        print(f"mtlzoo {args.command}: error: {error}", file=sys.stderr)
        return 1
    except TrainingInterrupted as stop:
        print(f"mtlzoo {args.command}: {stop}", file=sys.stderr)
        return stop.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
