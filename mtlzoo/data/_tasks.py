"""Which of a data set's tasks a caller asked for: names (or Tasks) checked against the tasks it labels."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mtlzoo.registry import unknown_name_error
from mtlzoo.tasks import Task


def chosen_task_names(tasks: Iterable[str | Task] | None, known: Sequence[str], dataset: str) -> tuple[str, ...]:
    """The names of ``tasks`` (all of ``known`` when None); a name ``dataset`` does not label is a one-line error
    listing the ones it does."""
    if tasks is None:
        return tuple(known)
    names = tuple(t.name if isinstance(t, Task) else t for t in tasks)
    for name in names:
        if name not in known:
            raise unknown_name_error(f"{dataset} task", name, list(known))
    return names
