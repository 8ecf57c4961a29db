"""Multi-task architectures; importing this package registers them."""

from mtlzoo.models import hps  # noqa: F401  (registers hps_*)
from mtlzoo.models import cs, squadnet  # noqa: F401  (registers cs_*, squadnet_*)
from mtlzoo.models import cross_stitch, mtan, mtan_segnet, nddr, stl  # noqa: F401  (registers the zoo part 1)
from mtlzoo.models import gated, gated_mlp  # noqa: F401  (registers mmoe_*, cgc_*, ple_*, dselectk_*)
from mtlzoo.models import mtinet, padnet  # noqa: F401  (registers padnet_*, mtinet_*)
from mtlzoo.models import invpt  # noqa: F401  (registers invpt_*)
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
