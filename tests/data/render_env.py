"""Render synthscenes in a fresh interpreter under chosen BLAS / SIMD settings (they bind when numpy loads)."""

import os
import subprocess
import sys

CORETYPES = ("Haswell", "SkylakeX", "Zen", "Sandybridge", "Prescott")
# what each OpenBLAS core type's kernels execute: forcing one the CPU lacks would stop on an illegal instruction
NEEDS = {"Haswell": "AVX2", "SkylakeX": "AVX512F", "Zen": "AVX2", "Sandybridge": "AVX", "Prescott": "SSE3"}
LEGACY_KEYS = ("rgb", "semseg", "parts", "instance")  # what the version 1 checksums were recorded over

_RENDER = """
import hashlib
import numpy as np
from mtlzoo.data import render_scene
for split, index, size in {scenes!r}:
    arrays = render_scene(0, split, index, size, version={version})
    digest = hashlib.sha256()
    for key in {keys!r} or sorted(arrays):
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    print(digest.hexdigest()[:16])
"""


def dispatch_targets() -> list[str]:
    """The SIMD targets this numpy dispatches to above its baseline (X86_V3, X86_V4, ... or AVX2, AVX512F, ...)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__
    return list(__cpu_dispatch__)


def cpu_has(feature: str) -> bool:
    """Whether this CPU has ``feature`` (numpy's run-time detection, e.g. ``AVX512F``)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    return bool(__cpu_features__.get(feature))


def kernel_settings() -> dict[str, dict[str, str]]:
    """Environment overrides: each OpenBLAS core type this CPU can run, and numpy with AVX-512 (then also AVX2)
    turned off."""
    targets = dispatch_targets()
    no_avx512 = [t for t in targets if "512" in t or t == "X86_V4"]
    settings = {f"OPENBLAS_CORETYPE={c}": {"OPENBLAS_CORETYPE": c} for c in CORETYPES if cpu_has(NEEDS[c])}
    settings["numpy without AVX-512"] = {"NPY_DISABLE_CPU_FEATURES": " ".join(no_avx512)}
    settings["numpy without AVX2 and AVX-512"] = {"NPY_DISABLE_CPU_FEATURES": " ".join(targets)}
    return settings


def scene_checksums(overrides: dict[str, str], version: int, scenes: list, keys: tuple[str, ...] = ()) -> list[str]:
    """sha256 (16 hex digits) of each scene's arrays (``keys``, or all of them), rendered with ``overrides`` set."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
    env.update(overrides)
    code = _RENDER.format(scenes=scenes, version=version, keys=tuple(keys))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()
