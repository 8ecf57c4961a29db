"""mtlzoo: multi-task architectures, gradient balancers, protocol-exact metrics and pretrained checkpoints."""

from mtlzoo.models import MultiTaskModel, create_model, list_models, register_model
from mtlzoo.registry import Registry
from mtlzoo.tasks import Task, list_task_presets, task_preset

__version__ = "0.1.0"

__all__ = [
    "MultiTaskModel", "Registry", "Task", "__version__", "create_model", "list_models", "list_task_presets",
    "register_model", "task_preset",
]
