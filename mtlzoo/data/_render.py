"""Vectorised analytic ray casting for synthscenes: camera rays, ray-primitive hits and surface normals.

Frames: the camera frame is OpenCV's (x right, y down, z forward). The "room" frame is the camera
frame turned by the camera's pitch / yaw / roll, so gravity points along +y and the floor is the plane
y = camera height. Ray directions carry z = 1 in the camera frame, so the hit parameter t of a ray
is directly the z-depth of the hit in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mtlzoo.data._numerics import Numerics

HFOV_DEGREES = 62.0
_INF = np.float32(np.inf)


def camera_intrinsics(size: tuple[int, int], num: Numerics) -> np.ndarray:
    """3x3 pinhole matrix for an (H, W) image: fixed horizontal field of view, principal point at the centre."""
    h, w = size
    if num.portable:
        half = HFOV_DEGREES * math.pi / 360.0
        f = 0.5 * w * num.cos(half) / num.sin(half)
    else:
        f = 0.5 * w / np.tan(np.deg2rad(HFOV_DEGREES) / 2.0)
    return np.array([[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]], dtype=np.float64)


def camera_rays(size: tuple[int, int], num: Numerics) -> np.ndarray:
    """Per-pixel ray directions (H*W, 3) in the camera frame through pixel centres, with z = 1."""
    h, w = size
    k = camera_intrinsics(size, num)
    v, u = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    x = (u - k[0, 2]) / k[0, 0]
    y = (v - k[1, 2]) / k[1, 1]
    return np.stack([x.ravel(), y.ravel(), np.ones(h * w, np.float32)], axis=1).astype(np.float32)


def rotation(pitch: float, yaw: float, roll: float, num: Numerics) -> np.ndarray:
    """Camera-to-room rotation: pitch about x (positive looks down), yaw about y, roll about z."""
    cp, sp, cy, sy = num.cos(pitch), num.sin(pitch), num.cos(yaw), num.sin(yaw)
    cr, sr = num.cos(roll), num.sin(roll)
    rx = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return num.matmul(num.matmul(ry, rx), rz).astype(np.float32)


@dataclass(frozen=True)
class Primitive:
    """One solid in the room frame. ``shape``: sphere | box | cylinder | cone; ``base`` is the centre of
    its lowest point's footprint (x, y_bottom, z) except for spheres (centre); ``size`` holds radius /
    half extents / height as the shape needs; ``yaw`` turns boxes about the vertical axis."""

    shape: str
    base: tuple[float, float, float]
    size: tuple[float, ...]
    yaw: float = 0.0


def room_hits(dirs: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, ...]:
    """For rays from the origin, inside the box [low, high]: exit distance, axis (0, 1, 2) and side (0 low, 1 high)."""
    hits, sides = [], []
    with np.errstate(divide="ignore"):
        for a in range(3):
            d = dirs[:, a]
            positive = d > 0
            hits.append(np.where(positive, high[a], low[a]).astype(np.float32) / d)
            sides.append(positive)
    tx, ty, tz = (np.where(np.isfinite(t), t, _INF) for t in hits)
    t = np.minimum(np.minimum(tx, ty), tz)
    axis = np.where(t == tx, 0, np.where(t == ty, 1, 2))
    side = np.where(axis == 0, sides[0], np.where(axis == 1, sides[1], sides[2])).astype(np.int64)
    return t, axis, side


def _smallest_root(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both roots (near, far) of a t^2 + b t + c = 0, inf where there is no real root."""
    disc = b * b - 4.0 * a * c
    ok = (disc >= 0) & (np.abs(a) > 1e-12)
    root = np.sqrt(np.where(ok, disc, 0.0))
    den = np.where(ok, 2.0 * a, 1.0)
    t0, t1 = (-b - root) / den, (-b + root) / den
    near, far = np.minimum(t0, t1), np.maximum(t0, t1)
    return np.where(ok, near, _INF), np.where(ok, far, _INF)


def _sphere(o: np.ndarray, d: np.ndarray, p: Primitive, num: Numerics) -> np.ndarray:
    oc = o - np.asarray(p.base, np.float32)
    a = num.rowdot(d, d)
    b = 2.0 * num.matmul(d, oc)
    c = np.float32(num.matmul(oc, oc) - num.square(p.size[0]))
    near, _ = _smallest_root(a, b, c)
    return np.where(near > 0, near, _INF)


def _upright(o: np.ndarray, d: np.ndarray, p: Primitive, cone: bool, num: Numerics) -> np.ndarray:
    """Hit of a vertical cylinder or cone (apex up) standing on y = base[1], with its top cap."""
    radius, height = p.size
    x0, y0, z0 = o[0] - p.base[0], o[1] - p.base[1], o[2] - p.base[2]  # y measured from the bottom (y-down)
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    a = dx * dx + dz * dz
    b = 2.0 * (x0 * dx + z0 * dz)
    c = np.full_like(a, x0 * x0 + z0 * z0)
    if cone:  # x^2 + z^2 = (k (y + height))^2 with y in [-height, 0]
        k2 = num.square(radius / height)
        yy = y0 + height
        a, b, c = a - k2 * dy * dy, b - 2.0 * k2 * yy * dy, c - k2 * yy * yy
    else:
        c = c - radius * radius
    best = np.full(len(d), _INF, np.float32)
    for t in _smallest_root(a, b, c):
        y = y0 + t * dy
        ok = (t > 0) & (y <= 0) & (y >= -height) & (t < best)
        best = np.where(ok, t, best)
    if not cone:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (-height - y0) / dy
        xc, zc = x0 + t * dx, z0 + t * dz
        ok = (t > 0) & (xc * xc + zc * zc <= radius * radius) & (t < best)
        best = np.where(ok, t, best)
    return best.astype(np.float32)


def _yaw_matrix(yaw: float, num: Numerics) -> np.ndarray:
    c, s = num.cos(yaw), num.sin(yaw)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32)


def _box(o: np.ndarray, d: np.ndarray, p: Primitive, num: Numerics) -> np.ndarray:
    hx, hy, hz = p.size
    centre = np.asarray(p.base, np.float32) - np.array([0.0, hy, 0.0], np.float32)
    rot = _yaw_matrix(p.yaw, num)  # local -> room; rows of rot.T map room -> local
    lo = num.matmul(rot.T, o - centre)
    ld = num.matmul(d, rot)
    half = np.array([hx, hy, hz], np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-half - lo) / ld
        t2 = (half - lo) / ld
    near = np.nanmax(np.minimum(t1, t2), axis=1)
    far = np.nanmin(np.maximum(t1, t2), axis=1)
    ok = (near <= far) & (near > 0)
    return np.where(ok, near, _INF).astype(np.float32)


def intersect(o: np.ndarray, d: np.ndarray, p: Primitive, num: Numerics) -> np.ndarray:
    """Distance t (z-depth) to the first hit of each ray with ``p``; inf where the ray misses."""
    if p.shape == "sphere":
        return _sphere(o, d, p, num)
    if p.shape == "box":
        return _box(o, d, p, num)
    if p.shape in ("cylinder", "cone"):
        return _upright(o, d, p, p.shape == "cone", num)
    raise ValueError(f"unknown primitive shape {p.shape!r}; accepted: sphere, box, cylinder, cone")


_CORNERS = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], bool)


def bounding_corners(p: Primitive, num: Numerics) -> np.ndarray:
    """The 8 corners (8, 3) of an axis-aligned box in the room frame that contains ``p``."""
    base = np.asarray(p.base, np.float32)
    if p.shape == "sphere":
        r = p.size[0]
        lo, hi = base - r, base + r
    else:
        reach = float(num.hypot(p.size[0], p.size[2])) if p.shape == "box" else p.size[0]
        height = 2.0 * p.size[1] if p.shape == "box" else p.size[1]
        lo, hi = base - np.float32([reach, height, reach]), base + np.float32([reach, 0.0, reach])
    return np.where(_CORNERS, hi, lo)


def screen_window(p: Primitive, rot: np.ndarray, k: np.ndarray, size: tuple[int, int],
                  num: Numerics) -> tuple[int, int, int, int]:
    """Pixel rows [r0, r1) and columns [c0, c1) that can see ``p`` (the whole image if it reaches behind).

    ``rot`` is the camera-to-room rotation and ``k`` the intrinsics of an image of ``size``.
    """
    h, w = size
    cam = num.matmul(bounding_corners(p, num), rot)  # room -> camera frame
    if (cam[:, 2] <= 0.05).any():
        return 0, h, 0, w
    u = k[0, 0] * cam[:, 0] / cam[:, 2] + k[0, 2]
    v = k[1, 1] * cam[:, 1] / cam[:, 2] + k[1, 2]
    c0, c1 = min(max(int(u.min()) - 1, 0), w), min(max(int(u.max()) + 2, 0), w)
    r0, r1 = min(max(int(v.min()) - 1, 0), h), min(max(int(v.max()) + 2, 0), h)
    return r0, r1, c0, c1


def surface_normal(points: np.ndarray, p: Primitive, num: Numerics) -> np.ndarray:
    """Outward unit normals (N, 3) of ``p`` at surface ``points`` (N, 3), in the room frame."""
    rel = points - np.asarray(p.base, np.float32)
    if p.shape == "sphere":
        n = rel
    elif p.shape == "box":
        hx, hy, hz = p.size
        rot = _yaw_matrix(p.yaw, num)
        local = num.matmul(rel + np.array([0.0, hy, 0.0], np.float32), rot)
        scaled = np.abs(local) / np.array([hx, hy, hz], np.float32)
        axis = scaled.argmax(axis=1)
        n_local = np.zeros_like(local)
        n_local[np.arange(len(local)), axis] = np.sign(local[np.arange(len(local)), axis])
        n = num.matmul(n_local, rot.T)
    else:
        radius, height = p.size
        n = np.stack([rel[:, 0], np.zeros(len(rel), np.float32), rel[:, 2]], axis=1)
        if p.shape == "cone":
            n[:, 1] = -(radius / height) * np.sqrt(rel[:, 0] ** 2 + rel[:, 2] ** 2)
        else:
            cap = rel[:, 1] <= -height + 1e-4
            n[cap] = np.array([0.0, -1.0, 0.0], np.float32)
    return n / np.maximum(np.sqrt(num.rowdot(n, n)), 1e-12)[:, None]
