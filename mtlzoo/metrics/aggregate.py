"""Combine several results (seeds, or the last epochs as the MTAN family reports) into one."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from mtlzoo.metrics.evaluate import EvalResult

Metrics = Mapping[str, Mapping[str, float]]


def average_results(results: Iterable[Metrics]) -> tuple[EvalResult, dict[str, dict[str, float]]]:
    """Mean and sample standard deviation of every metric over ``results`` (e.g. 3 seeds, or the last
    10 epochs as CAGrad / Nash-MTL / FAMO average them), as ``(mean, std)`` nested dicts.

    All results must hold the same tasks and metrics and, when they say so, the same protocol; the mean
    keeps that protocol. Compute delta_m from the mean, as the papers do.
    """
    results = list(results)
    if not results:
        raise ValueError("average_results needs at least one result")
    layout = {t: sorted(m) for t, m in results[0].items()}
    protocols = {getattr(r, "protocol", None) for r in results} - {None}
    if len(protocols) > 1:
        raise ValueError(f"cannot average results from different protocols: {sorted(protocols)}")
    for r in results[1:]:
        other = {t: sorted(m) for t, m in r.items()}
        if other != layout:
            raise ValueError(f"results differ in tasks or metrics: {layout} vs {other}")
    n = len(results)
    mean = {t: {m: sum(r[t][m] for r in results) / n for m in ms} for t, ms in layout.items()}
    std = {t: {m: math.sqrt(sum((r[t][m] - mean[t][m]) ** 2 for r in results) / (n - 1)) if n > 1 else 0.0
               for m in ms} for t, ms in layout.items()}
    return EvalResult(mean, protocols.pop() if protocols else "unknown"), std
