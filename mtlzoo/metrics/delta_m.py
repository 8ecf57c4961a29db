"""Multi-task performance delta_m against a single-task baseline, in the three styles papers use."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from mtlzoo.metrics.baselines import Baseline, get_baseline
from mtlzoo.metrics.protocols import DELTA_STYLES, PROTOCOLS, Protocol, get_protocol
from mtlzoo.registry import unknown_name_error
from mtlzoo.tasks import TASK_KINDS, Task, list_task_presets, task_preset

Metrics = Mapping[str, Mapping[str, float]]
TasksArg = None | str | Mapping[str, Task | str] | Iterable[Task]
DOMINANCE_POINTS = 10.0  # a task's share of delta_m (percentage points) from which it can dominate the value
SMALL_BASELINE = 0.01  # a ratio metric's baseline below this makes its relative change unstable (0.005 -> 0.02: +300%)


def _metric_directions() -> dict[str, int | None]:
    """Direction of each metric name over all task kinds (None when kinds disagree)."""
    table: dict[str, int | None] = {}
    for kind_name in TASK_KINDS.names():
        for metric, sign in TASK_KINDS.get(kind_name).metrics.items():
            table[metric] = sign if table.get(metric, sign) == sign else None
    return table


def _task_name_kinds() -> dict[str, str]:
    """Kind of each task name used by the presets (semseg -> segmentation, ...)."""
    return {t.name: t.kind for preset in list_task_presets() for t in task_preset(preset)}


def _resolve_kinds(tasks: TasksArg) -> dict[str, str]:
    """{task name: kind} from a preset or protocol name, a {name: Task | kind} mapping or a list of Tasks."""
    if tasks is None:
        return {}
    if isinstance(tasks, str):
        if tasks in list_task_presets():
            return {t.name: t.kind for t in task_preset(tasks)}
        if tasks in PROTOCOLS and PROTOCOLS.get(tasks).task_preset:
            return _resolve_kinds(PROTOCOLS.get(tasks).task_preset)
        raise unknown_name_error("task preset or protocol", tasks, list_task_presets() + PROTOCOLS.names())
    if isinstance(tasks, Mapping):
        return {name: (t.kind if isinstance(t, Task) else TASK_KINDS.get(t).name) for name, t in tasks.items()}
    kinds = {}
    for t in tasks:
        if not isinstance(t, Task):
            raise TypeError(f"tasks must be a preset name, a mapping or a list of Task, got an item {t!r}")
        kinds[t.name] = t.kind
    return kinds


def _kind_of(task: str, kinds: Mapping[str, str], keys: Iterable[str]) -> str | None:
    """The kind of ``task``: given, known from the presets, or the only kinds whose metrics hold ``keys``."""
    if task in kinds:
        return kinds[task]
    known = _task_name_kinds()
    if task in known:
        return known[task]
    if task in TASK_KINDS:
        return task
    keys = set(keys)
    candidates = [k for k in TASK_KINDS.names() if keys <= set(TASK_KINDS.get(k).metrics)]
    return candidates[0] if len(candidates) == 1 else None


def _direction(metric: str, kind: str | None) -> int:
    if kind is not None:
        return TASK_KINDS.get(kind).direction(metric)
    sign = _metric_directions().get(metric)
    if sign is None:
        raise ValueError(f"cannot tell whether a larger {metric!r} is better; pass tasks= (a preset name, "
                         "a list of Task or a {task: kind} mapping)")
    return sign


def _headline(task: str, kind: str | None, keys: Iterable[str]) -> str:
    """The one metric Vandenhende's delta uses for ``task``."""
    if kind is not None:
        return TASK_KINDS.get(kind).vandenhende_metric
    choices = {TASK_KINDS.get(k).vandenhende_metric for k in TASK_KINDS.names()
               if set(keys) <= set(TASK_KINDS.get(k).metrics)}
    if len(choices) != 1:
        raise ValueError(f"cannot tell the headline metric of task {task!r} (candidates {sorted(choices)}); "
                         "pass tasks= or select=")
    return choices.pop()


def _is_fraction(metric: str, kind: str | None) -> bool:
    """Whether ``metric`` is a ratio in [0, 1]: by the task's kind, else by any kind's say-so."""
    kinds = [kind] if kind is not None else TASK_KINDS.names()
    return any(metric in TASK_KINDS.get(k).fraction_metrics for k in kinds)


def _protocol_tasks(proto: Protocol) -> set[str]:
    """The task names a protocol's ``delta_metrics`` speak for: those it names and those of its task preset."""
    preset = {t.name for t in task_preset(proto.task_preset)} if proto.task_preset else set()
    return set(proto.delta_metrics or {}) | preset


def _check_units(task: str, metric: str, value: float, base: float, kind: str | None) -> None:
    if _is_fraction(metric, kind) and (value > 1.0) != (base > 1.0):
        raise ValueError(f"{task}.{metric}: result {value} and baseline {base} look like different units; "
                         "mtlzoo reports fractions in [0, 1], so divide percentages by 100")
    if base == 0:
        raise ValueError(f"{task}.{metric}: the baseline is 0, so a relative change is undefined")


def result_parts(result: Mapping) -> tuple[Metrics, str | None]:
    """(metrics, protocol) of an ``EvalResult``, of its saved ``to_dict()`` form, or of a plain metrics dict."""
    saved = result.get("metrics")
    if isinstance(saved, Mapping) and isinstance(result.get("protocol"), str):
        return saved, result["protocol"]
    return result, getattr(result, "protocol", None)


def _as_metrics(baseline: Metrics | Baseline | str) -> Metrics:
    if isinstance(baseline, str):
        return get_baseline(baseline).metrics
    if isinstance(baseline, Baseline):
        return baseline.metrics
    return result_parts(baseline)[0]


def _terms(metrics: Metrics, baseline: Metrics | Baseline | str, style: str, tasks: TasksArg,
           select: Mapping[str, str | Iterable[str]] | None,
           covered: Collection[str] | None) -> tuple[dict[str, dict[str, float]], set[str]]:
    """:func:`delta_m_terms`, plus the tasks with a ratio metric whose baseline is below ``SMALL_BASELINE``."""
    if style not in DELTA_STYLES:
        raise unknown_name_error("delta_m style", style, list(DELTA_STYLES))
    base = _as_metrics(baseline)
    metrics = result_parts(metrics)[0]
    kinds = _resolve_kinds(tasks)
    names = [t for t in metrics if t in base and (select is None or t in select
                                                  or (covered is not None and t not in covered))]
    if not names:
        raise ValueError(f"no task is in both the results {sorted(metrics)} and the baseline {sorted(base)}"
                         + (f" among the selected {sorted(select)}" if select is not None else ""))
    terms: dict[str, dict[str, float]] = {}
    small: set[str] = set()
    for task in names:
        kind = _kind_of(task, kinds, list(metrics[task]) + list(base[task]))
        if select is not None and task in select:
            chosen = [select[task]] if isinstance(select[task], str) else list(select[task])
        elif style == "vandenhende":
            chosen = [_headline(task, kind, metrics[task])]
        else:
            chosen = [m for m in metrics[task] if m in base[task]]
        missing = [m for m in chosen if m not in metrics[task] or m not in base[task]]
        if missing or not chosen:
            raise ValueError(f"task {task!r}: metric(s) {missing or chosen} missing from the results "
                             f"({sorted(metrics[task])}) or the baseline ({sorted(base[task])})")
        terms[task] = {}
        for m in chosen:
            value, ref = float(metrics[task][m]), float(base[task][m])
            _check_units(task, m, value, ref, kind)
            terms[task][m] = 100.0 * _direction(m, kind) * (value - ref) / ref
            if _is_fraction(m, kind) and abs(ref) < SMALL_BASELINE:
                small.add(task)
    return terms, small


def delta_m_terms(metrics: Metrics, baseline: Metrics | Baseline | str, style: str = "vandenhende",
                  tasks: TasksArg = None, select: Mapping[str, str | Iterable[str]] | None = None,
                  covered: Collection[str] | None = None) -> dict[str, dict[str, float]]:
    """Per task and metric, the relative change ``100 * s * (M - B) / B`` (positive = better) behind delta_m.

    Tasks present in both ``metrics`` and ``baseline`` enter (only those in ``select`` if given, plus any
    task outside ``covered``, the task names ``select`` speaks for); per task the ``select``-ed metrics, else
    the kind's Vandenhende metric for ``vandenhende``, else every metric both share.
    """
    return _terms(metrics, baseline, style, tasks, select, covered)[0]


@dataclass(frozen=True)
class DeltaBreakdown:
    """delta_m (``value``, in ``style``), each task's share of it (``by_task``: they add up to ``value``) and the
    task whose relative change dominates it (``dominated_by``, None when none does; see :func:`dominant_task`)."""

    value: float
    style: str
    by_task: dict[str, float]
    dominated_by: str | None


def dominant_task(by_task: Mapping[str, float], small_baseline: Collection[str] = ()) -> str | None:
    """The task whose share of delta_m outweighs the other tasks' shares together (absolute values) and is
    either at least ``DOMINANCE_POINTS`` percentage points or comes from a ratio baseline below
    ``SMALL_BASELINE`` (``small_baseline``: such tasks); None when no task does or there is only one task."""
    if len(by_task) < 2:
        return None
    task = max(by_task, key=lambda name: abs(by_task[name]))
    rest = sum(abs(share) for name, share in by_task.items() if name != task)
    if abs(by_task[task]) > rest and (abs(by_task[task]) >= DOMINANCE_POINTS or task in small_baseline):
        return task
    return None


def delta_m_breakdown(metrics: Metrics, baseline: Metrics | Baseline | str, style: str | None = None,
                      tasks: TasksArg = None, select: Mapping[str, str | Iterable[str]] | None = None,
                      protocol: str | Protocol | None = None) -> DeltaBreakdown:
    """:func:`delta_m` with each task's share of it and the task that dominates it, if one does (a near-zero
    baseline, e.g. an mIoU of 0.005, turns a small change into hundreds of percent). The value is the
    published formula, unchanged; the flag only says how far to trust it as a summary."""
    metrics, carried = result_parts(metrics)
    if protocol is None and carried in PROTOCOLS:
        protocol = carried
    covered = None
    if protocol is not None:
        proto = get_protocol(protocol)
        style = style or proto.delta_style
        if select is None and proto.delta_metrics is not None:
            select, covered = proto.delta_metrics, _protocol_tasks(proto)
        tasks = tasks if tasks is not None else proto.task_preset
    style = style or "vandenhende"
    terms, small = _terms(metrics, baseline, style, tasks, select, covered)
    if style == "vandenhende":
        several = {t: list(v) for t, v in terms.items() if len(v) != 1}
        if several:
            raise ValueError(f"style 'vandenhende' takes one metric per task, got {several}; use 'libmtl'")
        value = sum(v for task in terms.values() for v in task.values()) / len(terms)
        by_task = {t: sum(v.values()) / len(terms) for t, v in terms.items()}
    elif style == "nash":
        flat = [v for task in terms.values() for v in task.values()]
        value = -sum(flat) / len(flat)
        by_task = {t: -sum(v.values()) / len(flat) for t, v in terms.items()}
    else:
        value = sum(sum(task.values()) / len(task) for task in terms.values()) / len(terms)
        by_task = {t: sum(v.values()) / len(v) / len(terms) for t, v in terms.items()}
    return DeltaBreakdown(value, style, by_task, dominant_task(by_task, small))


def delta_m(metrics: Metrics, baseline: Metrics | Baseline | str, style: str | None = None,
            tasks: TasksArg = None, select: Mapping[str, str | Iterable[str]] | None = None,
            protocol: str | Protocol | None = None) -> float:
    """Multi-task performance relative to a single-task baseline, in percent.

    ``vandenhende``: mean over tasks of one metric's signed relative change, positive = better;
    ``nash``: mean over all metrics, negative = better (CAGrad / Nash-MTL / FAMO Delta m);
    ``libmtl``: mean over tasks of the mean over that task's metrics, positive = better.
    Directions come from the task kinds (``tasks``: a preset or protocol name, a list of Task or
    ``{task: kind}``), else from the metric names. ``metrics`` and ``baseline`` may be results of
    ``evaluate`` (or their saved ``to_dict()`` form); ``baseline`` may name a shipped baseline. ``protocol``
    (default: the one ``metrics`` carries) supplies the style and the metrics when they are not given; a task
    outside the protocol's task preset (a new task, a user kind) then enters with its kind's default.
    :func:`delta_m_breakdown` also says whether one task's change dominates the value.
    """
    return delta_m_breakdown(metrics, baseline, style, tasks, select, protocol).value
