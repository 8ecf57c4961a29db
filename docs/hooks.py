"""mkdocs hook: fill the generated tables of the docs from mtlzoo's registries at build time.

A page asks for a table with a marker line such as ``<!-- mtlzoo:zoo-table -->``; the tables are
built from the model, pretrained, balancer and protocol registries and kept in the pages between
their markers (so they read without a docs build). ``python docs/hooks.py --write`` refreshes them;
``python docs/hooks.py`` prints every table.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ZOO_INPUT_SIZE = (288, 384)
ZOO_TASKS = "nyud"
ZOO_VECTOR_TASKS = [{"name": "task1", "kind": "regression"}, {"name": "task2", "kind": "regression"}]  # *_mlp models
# a start marker, then (when the page holds the table already) the table and the end marker
_BLOCK = re.compile(r"<!-- mtlzoo:([a-z-]+) -->(?:\n.*?\n<!-- /mtlzoo:\1 -->)?", re.DOTALL)
_RST_ROLE = re.compile(r":(?:func|meth|class|mod|attr|data|obj|exc):<code>~?")
_RST_LITERAL = re.compile(r"::(\s*</p>)")
_CITATION = re.compile(r"\(([^()]*?(?:\b(?:19|20)\d\d\b|DOI)[^()]*)\)")


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    return "\n".join([_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)])


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n")[0].replace("\n", " ").strip()


def _format_results(results: dict[str, Any]) -> str:
    """``{"protocol": p, "metrics": {task: {metric: v}}}`` -> ``semseg miou 0.61, ... (protocol p)``."""
    metrics = results.get("metrics") or {}
    parts = [f"{task} {metric} {value:.3g}" for task, values in metrics.items() for metric, value in values.items()]
    if not parts:
        return "-"
    return f"{', '.join(parts)} (`{results.get('protocol', '?')}` protocol)"


def _count(name: str) -> dict[str, Any]:
    """model_info of ``name`` for ZOO_TASKS, built on the meta device (shapes only: fast, no memory);
    on the CPU when an operation has no meta implementation."""
    import torch

    import mtlzoo
    from mtlzoo.models.info import model_info

    tasks = ZOO_VECTOR_TASKS if name.endswith("_mlp") else ZOO_TASKS
    try:
        with torch.device("meta"):
            return model_info(mtlzoo.create_model(name, tasks=tasks), input_size=ZOO_INPUT_SIZE)
    except (NotImplementedError, RuntimeError):
        return model_info(name, tasks=tasks, input_size=ZOO_INPUT_SIZE)


def zoo_table() -> str:
    """One row per registered architecture: parameters and FLOPs (nyud tasks), pretrained tags, description."""
    import mtlzoo
    from mtlzoo.models import MODELS

    rows = []
    for name in mtlzoo.list_models():
        info = _count(name)
        tags = ", ".join(f"`{tag}`" for tag in mtlzoo.list_models(f"{name}.*", pretrained=True)) or "-"
        rows.append([f"`{name}`", f"{info['params'] / 1e6:.2f}", f"{info['params_shared'] / 1e6:.2f}",
                     f"{info['gflops']:.1f}", tags, _first_line(MODELS.get(name))])
    h, w = ZOO_INPUT_SIZE
    header = ["model", "params (M)", "shared (M)", f"GFLOPs @{h}x{w}", "pretrained", "description"]
    return _table(header, rows)


def pretrained_table() -> str:
    """One row per pretrained tag: data set, tasks, and the recorded results with their protocol."""
    import mtlzoo
    from mtlzoo.models.pretrained import PRETRAINED_CFGS

    names = mtlzoo.list_models(pretrained=True)
    if not names:
        return "*No pretrained weights are registered in this version; `mtlzoo list pretrained` prints them.*"
    rows = []
    for name in names:
        cfg = PRETRAINED_CFGS.get(name)
        tasks = cfg.tasks if isinstance(cfg.tasks, str) else ", ".join(t["name"] for t in cfg.tasks)
        rows.append([f"`{name}`", cfg.dataset or "-", tasks, _format_results(cfg.results), f"`{cfg.hub_id}`"])
    return _table(["name", "trained on", "tasks", "results", "hub id"], rows)


def _results_cell(row: dict[str, str], key: str) -> str:
    """``mean ± std`` of a results column (std left out when empty)."""
    mean, std = row.get(key, ""), row.get(f"{key}_std", "")
    if not mean:
        return "-"
    return f"{float(mean):.4g} ± {float(std):.2g}" if std else f"{float(mean):.4g}"


def results_tables() -> str:
    """Every results/*.csv (:mod:`mtlzoo.results_tables`) as a markdown table, best delta_m first."""
    from mtlzoo.results_tables import FIXED_COLUMNS, read_tables

    tables = read_tables()
    if not tables:
        return "*No results tables yet: `python benchmarks/results_tables.py` writes them.*"
    parts = []
    for name, rows in tables.items():
        metrics = [k for k in rows[0] if k not in FIXED_COLUMNS and not k.endswith("_std")]
        header = ["model", "version", "input", "params (M)", "GFLOPs", "CPU img/s", "method", "seeds",
                  "delta_m (%)", *metrics]
        body = [[f"`{r['model']}.{r['tag']}`", r["data_version"] or "-", r["img_size"], r["param_count"],
                 r["gflops"], r["infer_img_per_s"] or "-", r["method"] or "-", r["seeds"],
                 _results_cell(r, "delta_m"), *[_results_cell(r, k) for k in metrics]] for r in rows]
        parts.append(f"### `results/{name}.csv`\n\n{_table(header, body)}")
    return "\n\n".join(parts)


def _balancer_class(name: str) -> tuple[Any, Any]:
    """(an instance, its class) for a registered balancer (factories such as ``mgda_ub`` are called)."""
    from mtlzoo.balancers import create_balancer

    balancer = create_balancer(name)
    return balancer, type(balancer)


def _cost(balancer: Any) -> str:
    from mtlzoo.balancers import GramianBalancer, JacobianBalancer, LossBalancer

    if isinstance(balancer, LossBalancer):
        return "loss-level: one backward" + (" + one forward after the step" if balancer.needs.post_step_losses else "")
    if balancer.level == "features":
        return "feature-level: one encoder backward + T head backwards"
    if isinstance(balancer, GramianBalancer):
        return "T backwards on the shared parameters (T x T Gramian)"
    if isinstance(balancer, JacobianBalancer):
        return "T backwards + the T x P Jacobian in memory"
    raise TypeError(f"unknown balancer family for {type(balancer).__name__}")


def _needs(balancer: Any) -> str:
    needs = balancer.needs
    wanted = [label for flag, label in [(needs.losses, "losses"), (needs.gramian, "Gramian"),
                                        (needs.jacobian, "Jacobian"), (needs.features, "feature grads"),
                                        (needs.post_step_losses, "post-step losses")] if flag]
    return ", ".join(wanted)


def _paper(name: str, cls: type) -> str:
    """The citation in parentheses of the registered object's or its module's docstring."""
    from mtlzoo.balancers import BALANCERS

    for doc in (inspect.getdoc(BALANCERS.get(name)), inspect.getdoc(cls), inspect.getdoc(sys.modules[cls.__module__])):
        match = _CITATION.search(doc or "")
        if match:
            return match.group(1).replace("\n", " ")
    return "-"


def _defaults(cls: type, balancer: Any) -> str:
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.default is not inspect.Parameter.empty and p.name != "jacobian_mode"]
    shown = [f"{p.name}={p.default!r}" for p in params if p.name != "level"]
    shown.append(f"level={balancer.level!r}")
    return ", ".join(shown)


def balancer_table() -> str:
    """One row per registered balancer: family, what it needs, cost class, paper, default arguments."""
    import mtlzoo

    rows = []
    for name in mtlzoo.list_balancers():
        balancer, cls = _balancer_class(name)
        family = next(base.__name__ for base in cls.__mro__ if base.__name__.endswith("Balancer")
                      and base.__module__ == "mtlzoo.balancers.base" and base.__name__ != "Balancer")
        doc = inspect.getdoc(sys.modules[cls.__module__]) or ""
        note = " **Reconstruction** (paper unavailable)." if "reconstruct" in doc.lower() else ""
        rows.append([f"`{name}`", family.removesuffix("Balancer").lower(), _needs(balancer), _cost(balancer),
                     _paper(name, cls) + note, f"`{_defaults(cls, balancer)}`"])
    return _table(["name", "family", "needs", "cost per step", "paper", "defaults"], rows)


def protocol_table() -> str:
    """One row per evaluation protocol: paper family, task preset, delta_m style, shipped baseline."""
    from mtlzoo.metrics import get_protocol, list_protocols

    rows = []
    for name in list_protocols():
        p = get_protocol(name)
        rows.append([f"`{name}`", p.family, f"`{p.task_preset}`" if p.task_preset else "-", p.delta_style,
                     f"`{p.baseline}`" if p.baseline else "-", p.description])
    return _table(["protocol", "paper family", "task preset", "delta_m style", "baseline", "what it computes"], rows)


def config_table() -> str:
    """One row per shipped config: model, tasks, data, method, steps, and the recipe its header comment gives."""
    import yaml

    from mtlzoo.config import resolve_config_path, shipped_configs

    rows = []
    for name in shipped_configs():
        text = resolve_config_path(name).read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        recipe = " ".join(line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#"))
        model, train = data.get("model", {}), data.get("train", {})
        rows.append([f"`{name}`", f"`{model.get('name', '-')}`", model.get("tasks", "-"),
                     data.get("data", {}).get("name", "-"), f"`{data.get('method', {}).get('name', '-')}`",
                     train.get("steps", "-"), recipe])
    return _table(["config", "model", "tasks", "data", "method", "steps", "recipe"], rows)


def schema_table() -> str:
    """One row per config section: its keys with their defaults and the section's docstring."""
    import dataclasses

    from mtlzoo.config import Config

    rows = []
    for section in dataclasses.fields(Config):
        cls = section.default_factory
        if not dataclasses.is_dataclass(cls):  # a top-level key, not a section (imports:)
            rows.append([f"`{section.name}`", "user modules (plugins) imported before any name is resolved",
                         f"`{section.name}={cls()!r}`"])
            continue
        defaults = cls()
        keys = ", ".join(f"`{f.name}={getattr(defaults, f.name)!r}`" for f in dataclasses.fields(cls))
        rows.append([f"`{section.name}`", _first_line(cls), keys])
    return _table(["section", "what", "keys and defaults"], rows)


def balancer_api() -> str:
    """mkdocstrings directives for every module that defines a registered balancer (the method docstrings)."""
    import mtlzoo

    modules = sorted({_balancer_class(name)[1].__module__ for name in mtlzoo.list_balancers()})
    return "\n\n".join(f"::: {module}\n    options:\n      heading_level: 3" for module in modules)


TABLES: dict[str, Callable[[], str]] = {"zoo-table": zoo_table, "pretrained-table": pretrained_table,
                                        "balancer-table": balancer_table, "protocol-table": protocol_table,
                                        "config-table": config_table, "schema-table": schema_table,
                                        "balancer-api": balancer_api,
                                        "results-tables": results_tables}


def render_markers(markdown: str) -> str:
    """Fill every ``<!-- mtlzoo:NAME -->`` ... ``<!-- /mtlzoo:NAME -->`` block (or a lone start marker) with the
    generated table NAME between the two markers (unknown names raise).

    The pages keep the tables between their markers, so they read on GitHub without a docs build;
    ``python docs/hooks.py --write`` refreshes them and a test fails when a committed table is stale.
    """
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in TABLES:
            raise ValueError(f"unknown docs table marker {name!r}; known: {sorted(TABLES)}")
        return f"<!-- mtlzoo:{name} -->\n{TABLES[name]()}\n<!-- /mtlzoo:{name} -->"

    return _BLOCK.sub(replace, markdown)


DOCS = Path(__file__).resolve().parent


def write_pages(folder: Path = DOCS) -> list[Path]:
    """Refresh the generated tables of every page under ``folder`` in place; the pages that changed."""
    changed = []
    for page in sorted(folder.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        fresh = render_markers(text)
        if fresh != text:
            tmp = page.with_name(f".{page.name}.tmp")
            tmp.write_text(fresh, encoding="utf-8")
            tmp.replace(page)
            changed.append(page)
    return changed


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """mkdocs hook: generate the tables a page asks for."""
    return render_markers(markdown)


def on_page_content(html: str, **kwargs: Any) -> str:
    """mkdocs hook: the docstrings use reST roles (``:func:`x` ``) and ``::`` before literal blocks; show them as
    plain code and a colon."""
    return _RST_LITERAL.sub(r":\1", _RST_ROLE.sub("<code>", html))


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        for path in write_pages():
            print(f"refreshed {path}")
    else:
        for table in TABLES.values():
            print(table(), end="\n\n")
