"""Uploading a checkpoint folder to the Hugging Face Hub (``mtlzoo.models.export.publish`` checks it first)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mtlzoo.checkpoint import read_json
from mtlzoo.hub.cache import validate_repo_id
from mtlzoo.hub.card import render_model_card
from mtlzoo.hub.files import CARD_NAME, CONFIG_NAME, PICKLE_WEIGHTS_NAMES, write_atomic
from mtlzoo.version import __version__

# Never published: pickles (mtlzoo does not load them by default) and hidden or temporary files.
_IGNORED = [*PICKLE_WEIGHTS_NAMES, "*.pkl", "*.pt", "*.pth", ".*", "**/.*", "__pycache__/*"]


def upload_checkpoint(checkpoint_dir: str | os.PathLike, repo_id: str, *, revision: str | None = None,
                      private: bool | None = None, token: str | None = None, commit_message: str | None = None,
                      create_pr: bool = False) -> Any:
    """Upload a checkpoint folder (model.safetensors, config.json, README.md) to ``repo_id``; returns the CommitInfo.

    A missing model card is rendered from config.json; the repository (and ``revision`` branch) is
    created if needed. Pickles and hidden files are never uploaded.
    """
    from huggingface_hub import HfApi

    validate_repo_id(repo_id)
    folder = Path(checkpoint_dir)
    config = read_json(folder / CONFIG_NAME)
    if not (folder / CARD_NAME).is_file():
        write_atomic(folder / CARD_NAME, render_model_card(config, repo_id=repo_id))
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    message = commit_message or f"Upload {config.get('name') or config['architecture']} (mtlzoo {__version__})"
    return api.upload_folder(repo_id=repo_id, folder_path=str(folder), revision=revision, commit_message=message,
                             create_pr=create_pr, ignore_patterns=_IGNORED)
