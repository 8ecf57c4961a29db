"""The documentation site builds with ``mkdocs build --strict`` (every warning fails), as ``make docs`` runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_strict_build_has_no_warnings(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "WARNING" not in log, log[-4000:]
    zoo = (tmp_path / "site" / "zoo" / "index.html").read_text(encoding="utf-8")
    assert "hps_tiny" in zoo and "<table>" in zoo, "the generated zoo table is missing"
    benchmarks = (tmp_path / "site" / "benchmarks" / "index.html").read_text(encoding="utf-8")
    first_heading = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
    assert first_heading in benchmarks, "benchmarks/RESULTS.md was not included"
