"""The arithmetic a synthscenes generator version renders with: CPU-dependent (1, 2) or portable (3 on).

Versions 1 and 2 use BLAS products (``@``), numpy's SIMD-dispatched ``sin`` / ``cos`` and the normal
sampler: their last bits depend on the OpenBLAS kernel and the instruction set, and the sin-fract noise
texture turns a last bit into another pixel. Version 3 uses only operations IEEE 754 rounds exactly
(``+ - * /``, ``sqrt``, ``floor``, min / max, comparisons), each product written as element-wise terms
summed in a fixed order, sine and cosine as fixed polynomials in Python floats, and unsigned integer
hashing for noise, so every machine renders the same bytes.
"""

from __future__ import annotations

import math

import numpy as np

_ONES3 = np.ones(3, np.float32)
_HALF_PI = math.pi / 2
# murmur3's 32-bit finaliser constants and three odd multipliers that spread cell coordinates over 32 bits
_MIX1, _MIX2 = np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35)
_SPREAD = (np.uint32(0x8DA6B343), np.uint32(0xD8163841), np.uint32(0xCB1AB31F))
_INV_2_24 = np.float32(1.0 / (1 << 24))
_SQRT3 = np.float32(math.sqrt(3.0))  # sqrt is exactly rounded: the same float everywhere


class KernelNumerics:
    """Versions 1 and 2: BLAS products and numpy's transcendentals (results depend on the CPU's kernels)."""

    portable = False

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a @ b

    def rowdot(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Row-wise dot products of two (N, 3) arrays (a matrix product: faster than einsum or sum(axis=1))."""
        return (a * b) @ _ONES3

    def sin(self, x: float) -> float:
        return np.sin(x)

    def cos(self, x: float) -> float:
        return np.cos(x)

    def square(self, x: float) -> float:
        return x ** 2

    def hypot(self, x: float, y: float) -> np.float64:
        return np.hypot(x, y)

    def direction(self, rng: np.random.Generator) -> np.ndarray:
        """A random unit 3-vector (float32)."""
        axis = rng.normal(size=3).astype(np.float32)
        return axis / np.linalg.norm(axis)

    def gaussian(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Standard normal float32 sensor noise."""
        return rng.standard_normal(shape, dtype=np.float32)

    def stripes(self, coord: np.ndarray, period: np.ndarray) -> np.ndarray:
        """A periodic profile in [0, 1] of ``coord`` with the given period."""
        return 0.5 + 0.5 * np.sin(coord * (2 * np.pi / period))

    def noise(self, cells: np.ndarray) -> np.ndarray:
        """Value noise in [0, 1) per integer cell (N, 3): the classic sin-fract hash."""
        hashed = np.sin(cells @ np.float32([12.9898, 78.233, 37.719])) * 43758.547
        return hashed - np.floor(hashed)


class PortableNumerics:
    """Version 3 on: exactly rounded operations in a fixed order, the same bits on every CPU."""

    portable = True

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``a @ b`` for a contracted axis of length <= 3, as explicit products summed left to right."""
        a, b = np.asarray(a), np.asarray(b)
        if b.ndim == 1:
            terms = [a[..., k] * b[k] for k in range(b.shape[0])]
        else:
            terms = [a[..., k, None] * b[k] for k in range(b.shape[0])]
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total

    def rowdot(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Row-wise dot products of two (N, 3) arrays, summed x + y + z."""
        return a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1] + a[:, 2] * b[:, 2]

    def sin(self, x: float) -> float:
        return _sin_cos(float(x))[0]

    def cos(self, x: float) -> float:
        return _sin_cos(float(x))[1]

    def square(self, x: float) -> float:
        return x * x

    def hypot(self, x: float, y: float) -> np.float64:
        """A numpy float64 like np.hypot, so that sums with float32 scalars promote the same way."""
        return np.float64(math.sqrt(float(x) * float(x) + float(y) * float(y)))

    def direction(self, rng: np.random.Generator) -> np.ndarray:
        """A random unit 3-vector (float32) from uniform draws (no sampler with exp / log inside)."""
        while True:
            axis = rng.uniform(-1.0, 1.0, 3)
            length2 = axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]
            if 1e-4 < length2 <= 1.0:  # inside the unit ball: every direction equally likely
                return (axis / math.sqrt(length2)).astype(np.float32)

    def gaussian(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Unit-variance float32 noise as a centred sum of four uniforms (Irwin-Hall; no exp / log)."""
        u = rng.random((4, *shape), dtype=np.float32)
        return ((u[0] + u[1]) + (u[2] + u[3]) - np.float32(2.0)) * _SQRT3

    def stripes(self, coord: np.ndarray, period: np.ndarray) -> np.ndarray:
        """A smoothed triangle wave in [0, 1] of ``coord`` with the given period (polynomial: no sine)."""
        phase = coord / period
        tri = np.abs((phase - np.floor(phase)) * np.float32(2.0) - np.float32(1.0))
        return tri * tri * (np.float32(3.0) - np.float32(2.0) * tri)

    def noise(self, cells: np.ndarray) -> np.ndarray:
        """Value noise in [0, 1) per integer cell (N, 3) from a 32-bit integer hash (wrapping arithmetic)."""
        ints = cells.astype(np.int64).astype(np.uint32)
        h = (ints[:, 0] * _SPREAD[0]) ^ (ints[:, 1] * _SPREAD[1]) ^ (ints[:, 2] * _SPREAD[2])
        h ^= h >> np.uint32(16)
        h *= _MIX1
        h ^= h >> np.uint32(13)
        h *= _MIX2
        h ^= h >> np.uint32(16)
        return (h >> np.uint32(8)).astype(np.float32) * _INV_2_24


Numerics = KernelNumerics | PortableNumerics
_KERNEL, _PORTABLE = KernelNumerics(), PortableNumerics()
FIRST_PORTABLE_VERSION = 3


def numerics_for(version: int) -> Numerics:
    """The arithmetic generator ``version`` renders with."""
    return _PORTABLE if version >= FIRST_PORTABLE_VERSION else _KERNEL


def _sin_cos(x: float) -> tuple[float, float]:
    """sin(x) and cos(x) in Python float arithmetic: reduce to |r| <= pi/4, then Taylor polynomials to r^18.

    Accurate to a few units in the last place for the angles the generator draws (|x| <= pi); every
    operation is an exactly rounded double operation, so the result is the same on every machine.
    """
    quadrant = round(x / _HALF_PI)
    r = x - quadrant * _HALF_PI
    r2 = r * r
    sin_r, cos_r = 1.0, 1.0
    for k in range(16, 0, -2):  # Horner from the innermost term: 1 - r^2/((k)(k+1)) (...)
        sin_r = 1.0 - r2 / ((k) * (k + 1)) * sin_r
        cos_r = 1.0 - r2 / ((k - 1) * (k)) * cos_r
    sin_r *= r
    return ((sin_r, cos_r), (cos_r, -sin_r), (-sin_r, -cos_r), (-cos_r, sin_r))[quadrant % 4]
