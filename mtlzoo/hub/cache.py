"""Where checkpoints come from: ``hf-hub:`` names, the Hugging Face cache, the bundled ``weights/`` folder.

``install_to_hf_cache`` lays a local checkpoint folder out exactly as a download would
(``models--org--name/{blobs,snapshots/<commit>,refs/<revision>}``), so that with ``HF_HUB_OFFLINE=1``
both ``hf_hub_download(repo_id, file)`` and ``mtlzoo.from_pretrained("hf-hub:org/name")`` find it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from pathlib import Path

from mtlzoo.checkpoint import TMP_PREFIX
from mtlzoo.hub.files import (
    CONFIG_NAME,
    PICKLE_WEIGHTS_NAMES,
    WEIGHTS_NAME,
    CheckpointNotFoundError,
    checkpoint_files,
    sha256_file,
    write_atomic,
)

HUB_PREFIX = "hf-hub:"
_COMMIT = re.compile(r"[0-9a-f]{40}")
_REF_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_MAX_REVISION = 255


def parse_hub_name(name: str) -> tuple[str, str | None]:
    """``"hf-hub:org/name@revision"`` -> ``("org/name", "revision")`` (revision None when absent)."""
    if not name.startswith(HUB_PREFIX):
        raise ValueError(f"a hub name starts with {HUB_PREFIX!r} (e.g. 'hf-hub:org/name@main'), got {name!r}")
    repo_id, _, revision = name[len(HUB_PREFIX):].partition("@")
    validate_repo_id(repo_id)
    return repo_id, validate_revision(revision) if revision else None


def validate_repo_id(repo_id: str) -> None:
    """Accept ``org/name`` repository ids only (the form every mtlzoo checkpoint uses), as the Hub spells them."""
    from huggingface_hub.utils import HFValidationError
    from huggingface_hub.utils import validate_repo_id as hf_validate

    try:
        if isinstance(repo_id, str) and repo_id.count("/") == 1:
            hf_validate(repo_id)
            return
    except HFValidationError:
        pass
    raise ValueError(f"a hub repository id looks like 'org/name' (letters, digits, '-', '_', '.'; no '--' or '..'; "
                     f"neither part starting or ending with '-' or '.'; at most 96 characters), got {repo_id!r}")


def validate_revision(revision: str) -> str:
    """Accept a 40-hex commit or a branch / tag name (``main``, ``v1.0``, ``refs/pr/1``); returns it.

    A name is made of letters, digits, ``.``, ``_`` and ``-``, in parts joined by ``/`` (as git and the Hub
    allow; the HF cache keeps ``refs/pr/1`` as ``refs/refs/pr/1``), none empty or starting with ``.``: no
    ``..``, no absolute path, no backslash, nothing that could name a file outside the cache.
    """
    if (isinstance(revision, str) and 0 < len(revision) <= _MAX_REVISION and ".." not in revision
            and all(_REF_PART.fullmatch(part) for part in revision.split("/"))):
        return revision
    raise ValueError(f"a hub revision is a 40-hex commit or a branch / tag name (letters, digits, '.', '_', '-'; "
                     f"parts joined by '/' as in 'refs/pr/1'; no '..', no leading '/' or '.', no '\\'), "
                     f"got {revision!r}")


def _inside(root: Path, *paths: Path) -> None:
    """Refuse to write any of ``paths`` unless, resolved, it lies inside ``root`` (the cache folder)."""
    base = root.resolve()
    for path in paths:
        if not path.resolve().is_relative_to(base):
            raise ValueError(f"install_to_hf_cache would write {path.resolve()}, outside the Hugging Face cache "
                             f"{base}; the repository id and revision must name a folder inside it")


def hub_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The Hugging Face hub cache in use: ``cache_dir`` or ``HF_HUB_CACHE`` (as huggingface_hub resolves it)."""
    from huggingface_hub import constants

    return Path(cache_dir if cache_dir is not None else constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set: nothing may be downloaded, only the cache is read."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def fetch_command(repo_id: str, revision: str | None) -> str:
    """The shell command that downloads a repository into the HF cache ahead of time."""
    return f"hf download {repo_id} --revision {revision or 'main'}  (older huggingface_hub: huggingface-cli download)"


def fetch_hub_checkpoint(repo_id: str, revision: str | None = None, *, cache_dir: str | os.PathLike | None = None,
                         local_files_only: bool = False, trust_pickle: bool = False) -> Path:
    """Snapshot folder holding ``config.json`` and the weights of ``repo_id@revision`` (from the cache or the Hub).

    Only ``model.safetensors`` is looked for unless ``trust_pickle``; under ``HF_HUB_OFFLINE`` or with
    ``local_files_only`` nothing is downloaded. Raises CheckpointNotFoundError saying how to fetch it.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError, HfHubHTTPError

    validate_repo_id(repo_id)
    if revision is not None:
        validate_revision(revision)
    local_only = local_files_only or hub_offline()
    kwargs = {"repo_id": repo_id, "revision": revision, "cache_dir": cache_dir, "local_files_only": local_only}
    names = [WEIGHTS_NAME, *(PICKLE_WEIGHTS_NAMES if trust_pickle else ())]
    try:
        folder = Path(hf_hub_download(filename=CONFIG_NAME, **kwargs)).parent
        for name in names:
            try:
                weights = Path(hf_hub_download(filename=name, **kwargs))
            except EntryNotFoundError:
                continue
            if weights.parent != folder:
                raise CheckpointNotFoundError(f"{repo_id}@{revision}: {CONFIG_NAME} and {name} resolved to different "
                                              f"snapshots ({folder} and {weights.parent}); pin a commit revision")
            return folder
        missing = f"none of {names}" + ("" if trust_pickle else
                                        " (pass trust_pickle=True if the repository holds only a pickle file "
                                        "such as pytorch_model.bin and you trust it)")
    except (EntryNotFoundError, HfHubHTTPError, OSError, ValueError) as err:
        if isinstance(err, CheckpointNotFoundError):
            raise
        missing = f"{CONFIG_NAME} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    where = "offline mode is on, so only the cache was read" if local_only else "downloading failed"
    raise CheckpointNotFoundError(
        f"could not get {missing} of hub repository {repo_id!r} (revision {revision or 'main'}) from the Hugging "
        f"Face cache {hub_cache_dir(cache_dir)}; {where}. Fetch it ahead of time with "
        f"`{fetch_command(repo_id, revision)}`, or install a local copy of the folder with "
        f"mtlzoo.hub.install_to_hf_cache(folder, {repo_id!r}).")


def _content_commit(hashes: dict[str, str]) -> str:
    """A 40-hex snapshot id derived from the files' names and hashes (stable for the same content)."""
    digest = hashlib.sha1(usedforsecurity=False)
    for rel, sha in sorted(hashes.items()):
        digest.update(f"{rel}\0{sha}\n".encode())
    return digest.hexdigest()


def _link_or_copy(blob: Path, link: Path) -> None:
    """Point ``link`` at ``blob`` with a relative symlink (as huggingface_hub does), or copy it where links fail."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f"{TMP_PREFIX}{link.name}.{uuid.uuid4().hex[:12]}")
    try:
        os.symlink(os.path.relpath(blob, link.parent), tmp)
    except OSError:
        shutil.copyfile(blob, tmp)
    os.replace(tmp, link)


def install_to_hf_cache(local_dir: str | os.PathLike, repo_id: str, revision: str = "main",
                        cache_dir: str | os.PathLike | None = None) -> Path:
    """Copy a local checkpoint folder into the HF cache as ``repo_id@revision``; returns the snapshot folder.

    Files become ``blobs/<sha256>`` with ``snapshots/<commit>/<file>`` links and ``refs/<revision>``
    naming the commit (a content hash, or ``revision`` itself when it is a 40-hex commit). ``repo_id`` and
    ``revision`` are checked (:func:`validate_repo_id`, :func:`validate_revision`) and every path written
    must lie inside the cache, so no name can write elsewhere. Afterwards,
    with ``HF_HUB_OFFLINE=1``, ``from_pretrained("hf-hub:" + repo_id)`` loads it without network.
    """
    validate_repo_id(repo_id)
    validate_revision(revision)
    folder = Path(local_dir)
    if not (folder / CONFIG_NAME).is_file():
        raise ValueError(f"{str(folder)!r} is not a checkpoint folder: it has no {CONFIG_NAME}")
    hashes = {p.relative_to(folder).as_posix(): sha256_file(p) for p in checkpoint_files(folder)}
    commit = revision if _COMMIT.fullmatch(revision) else _content_commit(hashes)
    cache = hub_cache_dir(cache_dir)
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = storage / "snapshots" / commit
    _inside(cache, storage / "refs" / revision, *(snapshot / rel for rel in hashes))
    for rel, sha in hashes.items():
        blob = storage / "blobs" / sha
        if not blob.is_file():
            write_atomic(blob, lambda tmp, src=folder / rel: shutil.copyfile(src, tmp))
        _link_or_copy(blob, snapshot / rel)
    if revision != commit:
        write_atomic(storage / "refs" / revision, commit)
    return snapshot


def bundled_weights_dir() -> Path:
    """The ``weights/`` folder of a source checkout (present in a git clone and via torch.hub, not in wheels)."""
    return Path(__file__).resolve().parents[2] / "weights"
