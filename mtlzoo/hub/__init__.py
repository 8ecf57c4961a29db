"""Checkpoints: save/load/push, model cards, pretrained configs, ``hf-hub:`` names and the offline HF cache."""

from mtlzoo.hub.cache import bundled_weights_dir, fetch_hub_checkpoint, install_to_hf_cache, parse_hub_name
from mtlzoo.hub.card import render_model_card
from mtlzoo.hub.files import CheckpointNotFoundError
from mtlzoo.hub.load import (
    adapt_tasks,
    find_weights,
    from_pretrained,
    load_checkpoint,
    load_pretrained_cfg,
    load_state,
    read_weights,
)
from mtlzoo.hub.push import publish, push_to_hub
from mtlzoo.hub.save import save_pretrained, state_for_saving

__all__ = [
    "CheckpointNotFoundError", "adapt_tasks", "bundled_weights_dir", "fetch_hub_checkpoint", "find_weights",
    "from_pretrained", "install_to_hf_cache", "load_checkpoint", "load_pretrained_cfg", "load_state",
    "parse_hub_name", "publish", "push_to_hub", "read_weights", "render_model_card", "save_pretrained",
    "state_for_saving",
]
