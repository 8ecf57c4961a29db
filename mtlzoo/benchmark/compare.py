"""``--compare NAME``: the sweep's rows beside a published table (``mtlzoo.metrics.references``) under the same
protocol, every row's delta_m recomputed against the table's own single-task baseline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mtlzoo.benchmark.markdown import markdown_table, number


def _seed_means(row: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    return {task: {m: stat["mean"] for m, stat in metrics.items() if stat["mean"] is not None}
            for task, metrics in row["metrics"].items()}


def check_compare(results: Mapping[str, Any], name: str) -> Any:
    """The reference table ``name``; one whose protocol differs from the sweep's is a one-line ValueError."""
    from mtlzoo.metrics.references import get_reference

    try:
        reference = get_reference(name)
    except ValueError as error:
        raise ValueError(f"--compare {name}: {error}") from None
    if reference.protocol != results["protocol"]:
        raise ValueError(f"--compare {name}: the reference is under protocol {reference.protocol!r}, the sweep under "
                         f"{results['protocol']!r}; numbers compare only under the same protocol")
    return reference


def compare_section(results: Mapping[str, Any], name: str) -> list[str]:
    """Markdown lines: the published rows (with their printed delta_m) and the sweep's rows (seed means), each
    with delta_m against the table's baseline."""
    from mtlzoo.metrics.compare import STL_LABEL, compare_with_reference

    reference = check_compare(results, name)
    ours = [r for r in results["aggregates"]["rows"] if r["status"] == "ok"]
    comparisons = [compare_with_reference({"protocol": results["protocol"], "metrics": _seed_means(r)}, reference,
                                          label=f"{r['architecture']} / {r['method']}") for r in ours]
    if not comparisons:
        return []
    columns = [(t, m) for t, metrics in reference.baseline_metrics.items() for m in metrics]
    header = ["source", "method", *(f"{t} {m}" for t, m in columns),
              f"delta_m vs {reference.baseline} (%)", "published delta_m (%)"]

    def line(source: str, label: str, comparison: Any) -> list[str]:
        row = comparison.rows[label]
        published = comparison.published_delta_m[label]
        return [source, label, *(number(row[t][m]) for t, m in columns), number(comparison.delta_m[label], 2, True),
                number(published, 2, True)]

    first = comparisons[0]
    published = [line("published", label, first) for label in first.rows if label != first.label]
    mine = [line("this sweep", c.label, c) for c in comparisons]
    notes = [f"- {label}: {note}" for label, note in reference.notes.items()]
    caveat = [f"Caveat: {reference.caveat}", ""] if reference.caveat else []
    return [f"## Beside published numbers: `{reference.name}`", "",
            f"{reference.source}. Protocol `{reference.protocol}`; every row's delta_m is recomputed against the "
            f"table's single-task row `{reference.baseline}` ({STL_LABEL}); the sweep's rows use their seed-mean "
            "metrics.", "", *markdown_table(header, [*published, *mine]), "", *caveat,
            *([*notes, ""] if notes else [])]
