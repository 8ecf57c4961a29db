"""Multi-task architectures; importing this package registers them."""

from mtlzoo.models import (  # noqa: F401  (importing a family module registers its models)
    cross_stitch,
    cs,
    gated,
    gated_mlp,
    hps,
    invpt,
    mtan,
    mtan_segnet,
    mtinet,
    nddr,
    padnet,
    squadnet,
    stl,
    stl_mlp,
)
from mtlzoo.models.base import MultiTaskModel, Representation
from mtlzoo.models.export import publish, push_to_hub, save_pretrained
from mtlzoo.models.factory import (
    MODELS,
    create_model,
    create_model_from_config,
    from_pretrained,
    list_models,
    load_checkpoint,
    register_model,
)

__all__ = ["MODELS", "MultiTaskModel", "Representation", "create_model", "create_model_from_config",
           "from_pretrained", "list_models", "load_checkpoint", "publish", "push_to_hub", "register_model",
           "save_pretrained"]
