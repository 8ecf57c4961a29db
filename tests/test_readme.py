"""The README's Python blocks run as written (from the repository root, as a user would)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(monkeypatch):
    monkeypatch.chdir(README.parent)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 2, "the README lost its Python quick start"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})
