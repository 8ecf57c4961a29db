"""mmoe_synthetic: the MMoE paper's construction (checked against plain numpy), the same bytes under every BLAS
kernel and SIMD dispatch, and one-line errors for bad options."""

import hashlib
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from render_env import kernel_settings

import mtlzoo
from mtlzoo.data._portable import log, sin_cos, standard_normal
from mtlzoo.data.mmoe_synthetic import INPUT_DIM, MMoESynthetic, generate, task_constants

# (split, length, correlation, seed): the shipped checkpoints' data (every split at its default length) and others
CASES = [("train", 10000, 0.5, 0), ("val", 2000, 0.5, 0), ("test", 2000, 0.5, 0), ("test", 300, -0.9, 7),
         ("train", 300, 1.0, 3)]
CHECKSUM = "98d5679a99e2b641"  # sha256 of every case's x and y; recorded 2026-12-06, the same everywhere
_DIGEST = """
import hashlib
from mtlzoo.data.mmoe_synthetic import generate
digest = hashlib.sha256()
for split, length, p, seed in {cases!r}:
    arrays = generate(split, length, p, seed)
    digest.update(arrays["x"].tobytes())
    digest.update(arrays["y"].tobytes())
print(digest.hexdigest()[:16])
"""

# the same construction with LAPACK, BLAS and numpy's sine (as benchmarks/mmoe_synthetic.py draws it)
_KERNEL_DIGEST = """
import hashlib, math
import numpy as np
rng = np.random.default_rng(0)
u, _ = np.linalg.qr(rng.standard_normal((100, 2)))
w = np.stack([u[:, 0], 0.5 * u[:, 0] + math.sqrt(0.75) * u[:, 1]])
alpha, beta, x = rng.standard_normal(10), rng.standard_normal(10), rng.standard_normal((2000, 100))
z = x @ w.T
print(hashlib.sha256((z + np.sin(z[:, :, None] * alpha + beta).sum(axis=2)).tobytes()).hexdigest()[:16])
"""


def _checksum(overrides: dict[str, str], code: str = _DIGEST.format(cases=CASES)) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
    env.update(overrides)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_the_arrays_have_the_pinned_checksum():
    digest = hashlib.sha256()
    for split, length, p, seed in CASES:
        arrays = generate(split, length, p, seed)
        digest.update(arrays["x"].tobytes())
        digest.update(arrays["y"].tobytes())
    assert digest.hexdigest()[:16] == CHECKSUM


@pytest.mark.slow
def test_one_checksum_under_every_blas_kernel_and_simd_dispatch():
    settings = kernel_settings()  # the OpenBLAS core types this CPU runs, numpy without AVX-512 (and AVX2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        sums = dict(zip(settings, pool.map(_checksum, settings.values()), strict=True))
    assert set(sums.values()) == {CHECKSUM}, sums


def test_the_settings_do_reach_the_kernels():
    """The BLAS construction gives other bits under another OpenBLAS kernel: the test above can fail."""
    settings = kernel_settings()
    names = [n for n in ("OPENBLAS_CORETYPE=Haswell", "OPENBLAS_CORETYPE=Sandybridge") if n in settings]
    if len(names) < 2:
        pytest.skip("this CPU runs only one of the OpenBLAS core types compared (Haswell needs AVX2)")
    assert len({_checksum(settings[name], _KERNEL_DIGEST) for name in names}) == 2


@pytest.mark.parametrize("p", [-1.0, -0.3, 0.0, 0.5, 0.9, 1.0])
def test_the_weight_vectors_are_unit_vectors_at_cosine_p(p):
    w = task_constants(p, seed=4)["w"]
    assert w.shape == (2, INPUT_DIM)
    assert np.linalg.norm(w, axis=1) == pytest.approx([1.0, 1.0], abs=1e-12)
    assert float(w[0] @ w[1]) == pytest.approx(p, abs=1e-12)


def test_the_labels_follow_the_papers_formula():
    """y_i = w_i.x + sum_k sin(alpha_k w_i.x + beta_k) + eps_i, recomputed with BLAS and numpy's sine."""
    constants, arrays = task_constants(0.5, 0), generate("val", 2000, 0.5, 0)
    z = arrays["x"] @ constants["w"].T
    clean = z + np.sin(z[:, :, None] * constants["alpha"] + constants["beta"]).sum(axis=2)
    rng = np.random.default_rng([0, 2])  # the val split's stream: x, then the two noises, per example
    noise = 0.1 * standard_normal(rng, (2000, INPUT_DIM + 2))[:, INPUT_DIM:]
    assert np.abs(arrays["y"] - (clean + noise)).max() < 1e-12 * np.abs(arrays["y"]).max()
    residual = arrays["y"] - clean
    assert residual.mean() == pytest.approx(0.0, abs=0.01) and residual.std() == pytest.approx(0.1, rel=0.05)
    assert arrays["x"].mean() == pytest.approx(0.0, abs=0.01) and arrays["x"].std() == pytest.approx(1.0, abs=0.01)


def test_the_portable_functions_match_numpy_to_the_last_bits():
    rng = np.random.default_rng(0)
    x = rng.uniform(-60.0, 60.0, 100_000)
    sin, cos = sin_cos(x)
    assert np.abs(sin - np.sin(x)).max() < 1e-15 and np.abs(cos - np.cos(x)).max() < 1e-15
    u = np.concatenate([rng.random(100_000) + 1e-300, [1.0, 0.5, 2.0 ** -60, 1.0 - 2.0 ** -53]])
    assert np.abs(log(u) - np.log(u)).max() < 4e-15
    g = standard_normal(rng, (20_000, 50))
    assert g.mean() == pytest.approx(0.0, abs=0.005) and g.std() == pytest.approx(1.0, abs=0.005)
    assert (g > 3.0).mean() == pytest.approx(1.35e-3, rel=0.1)  # the tail of N(0, 1): 1 - Phi(3)


def test_examples_depend_on_seed_split_and_index_only():
    short, long = generate("test", 10, 0.5, 0), generate("test", 2000, 0.5, 0)
    assert np.array_equal(short["x"], long["x"][:10]) and np.array_equal(short["y"], long["y"][:10])
    assert not np.array_equal(generate("val", 10, 0.5, 0)["x"], short["x"])
    assert not np.array_equal(generate("test", 10, 0.5, 1)["x"], short["x"])
    assert np.array_equal(generate("test", 10, 0.9, 0)["x"], short["x"])  # p changes the labels, not the inputs
    assert not np.array_equal(generate("test", 10, 0.9, 0)["y"], short["y"])


def test_the_registered_data_set_and_its_samples():
    data = mtlzoo.create_dataset("mmoe_synthetic", split="test", length=5, tasks=["task2"])
    assert len(data) == 5 and data.name == "mmoe_synthetic-v1" and data.default_protocol == "mmoe_synthetic"
    sample = data[-1]
    assert sorted(sample) == ["image", "task2"] and sample["image"].shape == (INPUT_DIM,)
    assert sample["task2"].shape == (1,) and sample["image"].dtype == torch.float32
    assert float(sample["task2"]) == pytest.approx(generate("test", 5)["y"][4, 1], rel=1e-6)
    assert len(MMoESynthetic("train")) == 10000 and len(MMoESynthetic("val")) == 2000
    with pytest.raises(IndexError, match="out of range for length 5"):
        data[5]


def test_items_draw_nothing_from_the_global_rngs_as_the_class_declares():
    """``draws_randomness = False`` lets the trainer skip seeding each item; reading one must leave every global
    generator where it was."""
    import random

    data = MMoESynthetic("train", length=50)
    assert MMoESynthetic.draws_randomness is False
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    items = [data[i] for i in range(-50, 50)]
    assert torch.equal(torch.get_rng_state(), states[0]) and np.array_equal(np.random.get_state()[1], states[1])
    assert random.getstate() == states[2] and torch.equal(items[0]["image"], data.inputs[0])


@pytest.mark.parametrize("options, error, fragments", [
    ({"correlation": 1.5}, ValueError, ("correlation", "[-1, 1]", "1.5")),
    ({"correlation": -1.01}, ValueError, ("correlation", "[-1, 1]")),
    ({"correlation": math.nan}, ValueError, ("correlation", "[-1, 1]", "nan")),
    ({"correlation": "0.5"}, TypeError, ("correlation", "a number in [-1, 1]", "str")),
    ({"correlation": True}, TypeError, ("correlation", "bool")),
    ({"split": "validation"}, ValueError, ("mmoe_synthetic split", "'validation'", "val")),
    ({"split": 1}, TypeError, ("split", "['train', 'val', 'test']", "int")),
    ({"seed": -1}, ValueError, ("seed", ">= 0")),
    ({"seed": 1.5}, TypeError, ("seed", "an integer", "float")),
    ({"length": 0}, ValueError, ("length", ">= 1")),
    ({"length": "10"}, TypeError, ("length", "an integer", "str")),
    ({"tasks": ["task3"]}, ValueError, ("mmoe_synthetic task", "task1", "task2")),
    ({"tasks": "task1"}, TypeError, ("tasks", "a list of task names")),
])
def test_bad_options_are_refused_on_one_line_naming_the_option(options, error, fragments):
    with pytest.raises(error) as caught:
        MMoESynthetic(**options)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
