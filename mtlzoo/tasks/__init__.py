"""Tasks drive everything: a Task names a prediction; its TaskKind supplies loss, head, metrics and directions.

``kind`` holds the TaskKind contract and registry, ``kinds`` one module per shipped kind or family (importing
it registers them), ``task`` the Task dataclass and the benchmark presets.
"""

from mtlzoo.tasks.kind import HIGHER, LOWER, TASK_KINDS, TaskKind, register_task_kind
from mtlzoo.tasks.kinds.depth import DEPTH_METRICS
from mtlzoo.tasks.kinds.normals import NORMALS_METRICS
from mtlzoo.tasks.kinds.segmentation import SEG_METRICS
from mtlzoo.tasks.task import (
    SYNTHSCENES_CLASSES,
    SYNTHSCENES_PARTS,
    Task,
    list_task_presets,
    resolve_tasks,
    stack_losses,
    task_preset,
)

__all__ = [
    "DEPTH_METRICS", "HIGHER", "LOWER", "NORMALS_METRICS", "SEG_METRICS", "SYNTHSCENES_CLASSES", "SYNTHSCENES_PARTS",
    "TASK_KINDS", "Task", "TaskKind", "list_task_presets", "register_task_kind", "resolve_tasks", "stack_losses",
    "task_preset",
]
