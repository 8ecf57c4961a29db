"""The portable arithmetic of synthscenes version 3 against numpy / math (independent re-computations)."""

import math

import numpy as np
import pytest

from mtlzoo.data._numerics import KernelNumerics, PortableNumerics, _sin_cos, numerics_for

PORTABLE = PortableNumerics()


def test_versions_pick_their_arithmetic():
    assert isinstance(numerics_for(1), KernelNumerics) and isinstance(numerics_for(2), KernelNumerics)
    assert isinstance(numerics_for(3), PortableNumerics)


@pytest.mark.parametrize("x", np.linspace(-math.pi, math.pi, 1001).tolist() + [0.0, 1e-9, math.pi / 4, 2.5114975])
def test_sin_cos_match_libm_to_a_few_ulp(x):
    s, c = _sin_cos(x)
    assert abs(s - math.sin(x)) <= 4e-16 and abs(c - math.cos(x)) <= 4e-16


def test_products_equal_numpy_matmul_up_to_rounding():
    rng = np.random.default_rng(0)
    a, m, v = rng.normal(size=(50, 3)), rng.normal(size=(3, 3)), rng.normal(size=3)
    for left, right in ((a, m), (a, v), (m, m), (m, v), (v, v)):
        np.testing.assert_allclose(PORTABLE.matmul(left, right), left @ right, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(PORTABLE.rowdot(a, a), (a * a).sum(1), rtol=1e-12)
    assert PORTABLE.matmul(a.astype(np.float32), m.astype(np.float32)).dtype == np.float32


def test_noise_is_a_hash_of_the_cell_in_unit_range():
    cells = np.float32(np.random.default_rng(1).integers(-200, 200, size=(20000, 3)))
    noise = PORTABLE.noise(cells)
    assert noise.dtype == np.float32 and 0.0 <= noise.min() and noise.max() < 1.0
    assert np.array_equal(noise, PORTABLE.noise(cells.copy()))  # a function of the cell alone
    counts = np.histogram(noise, bins=10, range=(0, 1))[0]
    assert counts.min() > 0.9 * len(cells) / 10  # close to uniform
    shifted = PORTABLE.noise(cells + np.float32([1, 0, 0]))
    assert abs(np.corrcoef(noise, shifted)[0, 1]) < 0.05  # neighbouring cells are unrelated


def test_stripes_gaussian_and_direction_have_the_right_law():
    phase = np.linspace(-3, 3, 6001, dtype=np.float32)
    stripes = PORTABLE.stripes(phase, np.float32(1.0))
    assert stripes.min() >= 0.0 and stripes.max() <= 1.0
    np.testing.assert_allclose(stripes[:-1000], stripes[1000:], atol=1e-5)  # period 1
    rng = np.random.default_rng(2)
    noise = PORTABLE.gaussian(rng, (200000,))
    assert noise.dtype == np.float32 and abs(noise.mean()) < 0.01 and abs(noise.std() - 1.0) < 0.01
    directions = np.stack([PORTABLE.direction(rng) for _ in range(2000)])
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0, atol=1e-6)
    assert np.abs(directions.mean(0)).max() < 0.05  # no preferred direction
