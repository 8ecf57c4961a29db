"""Element-wise float64 arithmetic that gives the same bits on every CPU, for generated data that is pinned.

BLAS products (``@``, ``np.dot``), numpy's float reductions (``np.sum``: pairwise, SIMD-width dependent) and
numpy's or libm's transcendentals (``np.sin``, ``np.log``; the tails of ``Generator.standard_normal``) may
differ in the last bit between OpenBLAS kernels, instruction sets and C libraries. Everything here uses only
operations IEEE 754 rounds exactly (``+ - * /``, ``sqrt``, ``floor``, ``frexp``, selection), applied to whole
arrays in a fixed order, and uniform draws (``Generator.random``: integer bits scaled by a power of two).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Cody-Waite split of pi/2 (fdlibm's pio2_1, pio2_1t): k * _PIO2_HI is exact for |k| < 2^20
_PIO2_HI, _PIO2_LO = 1.57079632673412561417e+00, 6.07710050650619224932e-11
_TWO_OVER_PI = 2.0 / math.pi
_MAX_ANGLE = 2.0 ** 19  # beyond this, k * _PIO2_HI is no longer exact
# ln 2 in two parts (fdlibm's ln2_hi, ln2_lo): e * _LN2_HI is exact for the exponents of doubles
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_SQRT_HALF = math.sqrt(0.5)  # sqrt is exactly rounded: the same double everywhere


def sin_cos(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sin(x) and cos(x) of a float64 array (|x| < 2^19): reduce to |r| <= pi/4, then Taylor polynomials to r^17.

    Within a few units in the last place of the true values; the same bits on every machine.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size and not float(np.max(np.abs(x))) < _MAX_ANGLE:
        raise ValueError(f"sin_cos takes finite angles below 2^19 in magnitude, got up to {np.max(np.abs(x))!r}")
    k = np.floor(x * _TWO_OVER_PI + 0.5)
    r = (x - k * _PIO2_HI) - k * _PIO2_LO
    r2 = r * r
    sin_r, cos_r = np.ones_like(r), np.ones_like(r)
    for n in range(16, 0, -2):  # Horner from the innermost term: 1 - r^2 / (n (n + 1)) (...)
        sin_r = 1.0 - r2 / (n * (n + 1)) * sin_r
        cos_r = 1.0 - r2 / ((n - 1) * n) * cos_r
    sin_r = sin_r * r
    quadrant = k - 4.0 * np.floor(k * 0.25)  # k mod 4, exactly
    sin = np.where(quadrant == 0, sin_r, np.where(quadrant == 1, cos_r, np.where(quadrant == 2, -sin_r, -cos_r)))
    cos = np.where(quadrant == 0, cos_r, np.where(quadrant == 1, -sin_r, np.where(quadrant == 2, -cos_r, sin_r)))
    return sin, cos


def log(u: np.ndarray) -> np.ndarray:
    """Natural logarithm of a positive float64 array: u = m 2^e with m in [sqrt(1/2), sqrt(2)), then
    log m = 2 atanh((m - 1) / (m + 1)) as an odd series to s^21 (|s| <= 0.172)."""
    m, e = np.frexp(np.asarray(u, dtype=np.float64))
    low = m < _SQRT_HALF
    m = np.where(low, m * 2.0, m)
    e = (e - low).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    series = np.full_like(s, 1.0 / 21.0)
    for n in range(19, 0, -2):
        series = 1.0 / n + s2 * series
    return (e * _LN2_HI + 2.0 * s * series) + e * _LN2_LO


def standard_normal(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    """Standard normal float64 draws (Box-Muller on uniform pairs); the last axis must be even.

    Along the last axis, pair j uses the uniforms 2j and 2j + 1 of that row, so a row depends only on the draws
    before it: the first n rows of a longer array are the n rows of a shorter one.
    """
    shape = tuple(int(v) for v in shape)
    if not shape or shape[-1] % 2:
        raise ValueError(f"standard_normal needs an even last axis (draws come in pairs), got shape {shape}")
    u = rng.random(shape)
    radius = np.sqrt(-2.0 * log(1.0 - u[..., 0::2]))  # 1 - u is in (0, 1]: never log(0)
    sin, cos = sin_cos(2.0 * math.pi * u[..., 1::2])
    out = np.empty(shape)
    out[..., 0::2], out[..., 1::2] = radius * cos, radius * sin
    return out


def dot(columns: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``columns @ weights`` for a (N, D) array and a (D,) vector: products summed over D from first to last."""
    total = columns[:, 0] * weights[0]
    for k in range(1, weights.shape[0]):
        total = total + columns[:, k] * weights[k]
    return total


def vector_dot(a: np.ndarray, b: np.ndarray) -> float:
    """The dot product of two 1-D arrays, summed from the first coordinate to the last in Python floats."""
    total = 0.0
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        total += x * y
    return total
