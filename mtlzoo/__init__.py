"""mtlzoo: multi-task architectures, gradient balancers, protocol-exact metrics and pretrained checkpoints."""

from mtlzoo.balancers import create_balancer, list_balancers
from mtlzoo.data import create_dataset, list_datasets
from mtlzoo.metrics import delta_m, evaluate, list_protocols
from mtlzoo.models import MultiTaskModel, create_model, from_pretrained, list_models, register_model
from mtlzoo.registry import Registry
from mtlzoo.schemes import create_update_rule, list_update_rules
from mtlzoo.tasks import Task, TaskKind, list_task_presets, register_task_kind, task_preset
from mtlzoo.version import __version__

__all__ = [
    "MultiTaskModel", "Registry", "Task", "TaskKind", "__version__", "create_balancer", "create_dataset",
    "create_model", "create_update_rule", "delta_m", "evaluate", "from_pretrained", "list_balancers", "list_datasets",
    "list_models", "list_protocols", "list_task_presets", "list_update_rules", "register_model", "register_task_kind",
    "task_preset",
]
