"""Every ```python block of every docs page runs (blocks of one page in order, in one namespace), and every
``mtlzoo ...`` command of a ```bash block parses with the real CLI parser, so the docs cannot drift from the code.

A block may be kept from running only when it needs data or network that cannot exist in a test (a real
dataset root, an upload): the line before its fence is ``<!-- docs-test: skip <reason> -->``.
"""

from __future__ import annotations

import gc
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
MAX_SKIPPED = 4
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)[^\n]*$")
_SKIP = re.compile(r"^\s*<!-- docs-test: skip(?P<reason>.*?)-->\s*$")


@dataclass
class Block:
    """One fenced code block of a docs page."""

    page: Path
    line: int
    lang: str
    code: str
    skip_reason: str | None


def read_blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page`` in order, dedented, with their skip marker (if any)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, start = match["indent"], i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"
                    and lines[j].startswith(indent)), None)
        if end is None:
            raise ValueError(f"{page.name}:{start + 1}: unclosed code fence")
        body = "\n".join(line[len(indent):] for line in lines[start + 1:end])
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        skip = _SKIP.match(previous)
        blocks.append(Block(page, start + 2, match["lang"], body, skip["reason"].strip() if skip else None))
        i = end + 1
    return blocks


def _page_id(page: Path) -> str:
    return str(page.relative_to(DOCS))


PYTHON_PAGES = [p for p in PAGES if any(b.lang == "python" for b in read_blocks(p))]


def test_docs_have_runnable_snippets():
    assert len(PYTHON_PAGES) >= 6, f"expected python examples on most pages, found them on {PYTHON_PAGES}"


def test_skipped_blocks_are_few_and_explained():
    skipped = [b for p in PAGES for b in read_blocks(p) if b.skip_reason is not None]
    assert all(b.skip_reason for b in skipped), [f"{b.page.name}:{b.line}" for b in skipped if not b.skip_reason]
    assert all(b.lang == "python" for b in skipped), "only python blocks run, so only they may be skipped"
    assert len(skipped) <= MAX_SKIPPED, [f"{b.page.name}:{b.line} {b.skip_reason}" for b in skipped]


@pytest.fixture
def restore_registries():
    """Pages register their own models, balancers and task kinds; remove them afterwards (other tests
    compare the registries with hubconf.py and the docs tables)."""
    from mtlzoo.registry import Registry

    registries = [obj for obj in gc.get_objects() if type(obj) is Registry]  # type(): no proxy __class__ lookups
    saved = [dict(registry._entries) for registry in registries]
    yield
    for registry, entries in zip(registries, saved, strict=True):
        registry._entries.clear()
        registry._entries.update(entries)


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=_page_id)
def test_python_snippets_run(page, tmp_path, monkeypatch, restore_registries):
    monkeypatch.chdir(tmp_path)  # snippets that write files write them here
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    namespace = {"__name__": f"docs_{page.stem}"}
    try:
        for block in read_blocks(page):
            if block.lang != "python" or block.skip_reason is not None:
                continue
            exec(compile(block.code, f"{page.relative_to(DOCS)}:{block.line}", "exec"), namespace)  # noqa: S102
    finally:
        torch.set_num_threads(threads)


def _commands(code: str) -> list[list[str]]:
    """``mtlzoo`` argument lists of a shell block (also behind ``torchrun ... -m mtlzoo.cli``)."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line.removeprefix("$ "), comments=True)
        if not words:
            continue
        if words[0] == "mtlzoo":
            commands.append(words[1:])
        elif "mtlzoo.cli" in words and words[0] in ("torchrun", "python"):
            commands.append(words[words.index("mtlzoo.cli") + 1:])
    return commands


SHELL_COMMANDS = [(b, args) for p in PAGES for b in read_blocks(p) if b.lang in ("bash", "console", "sh")
                  for args in _commands(b.code)]


@pytest.mark.parametrize("block,args", SHELL_COMMANDS, ids=[f"{_page_id(b.page)}:{b.line}:{a[0] if a else ''}"
                                                           for b, a in SHELL_COMMANDS])
def test_cli_commands_parse(block, args):
    from mtlzoo.cli import build_parser

    parsed, extra = build_parser().parse_known_args(args)
    overrides = [item for item in extra if "=" in item and not item.startswith("-")]
    where = f"{block.page.name}:{block.line}"
    assert extra == overrides, f"{where}: unknown arguments {extra} in `mtlzoo {shlex.join(args)}`"
    assert hasattr(parsed, "func")


def test_shell_blocks_use_the_cli():
    assert len(SHELL_COMMANDS) >= 8, "the docs show the mtlzoo commands; the parser check found too few"
