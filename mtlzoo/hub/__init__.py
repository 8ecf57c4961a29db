"""Checkpoint files: reading and writing folders, model cards, the offline HF cache, uploads.

Plain file I/O over dicts and tensors; it builds no model. :mod:`mtlzoo.models.factory` (``create_model``,
``from_pretrained``) and :mod:`mtlzoo.models.export` (``save_pretrained``, ``push_to_hub``, ``publish``)
use it, as timm's builder uses its hub module.
"""

from mtlzoo.hub.cache import bundled_weights_dir, fetch_hub_checkpoint, install_to_hf_cache, parse_hub_name
from mtlzoo.hub.card import render_model_card
from mtlzoo.hub.files import CheckpointNotFoundError
from mtlzoo.hub.load import CheckpointFiles, find_weights, locate_pretrained, read_checkpoint, read_weights
from mtlzoo.hub.push import upload_checkpoint
from mtlzoo.hub.save import state_for_saving, write_checkpoint

__all__ = [
    "CheckpointFiles", "CheckpointNotFoundError", "bundled_weights_dir", "fetch_hub_checkpoint", "find_weights",
    "install_to_hf_cache", "locate_pretrained", "parse_hub_name", "read_checkpoint", "read_weights",
    "render_model_card", "state_for_saving", "upload_checkpoint", "write_checkpoint",
]
