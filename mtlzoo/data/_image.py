"""Turn a sampled synthscenes Scene into an RGB image and exact dense labels (one centre ray per pixel)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from mtlzoo.data._numerics import Numerics, numerics_for
from mtlzoo.data._render import camera_intrinsics, camera_rays, intersect, room_hits, screen_window, surface_normal
from mtlzoo.data._scene import CEILING, FLOOR, SPHERE, WALL, Scene

_ONES3 = np.ones(3, np.float32)
VOID = 255
MAX_DEPTH = 10.0
_GRAZING_COS = 0.06  # hits this oblique lose their depth and normal, like sensor dropouts at grazing angles
_ROOM_FACES = 6


@lru_cache(maxsize=8)
def _rays(size: tuple[int, int], num: Numerics) -> np.ndarray:
    rays = camera_rays(size, num)
    rays.setflags(write=False)
    return rays


def _cast(scene: Scene, dirs: np.ndarray, size: tuple[int, int],
          num: Numerics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit per ray: distance, surface id (0-5 room faces, 6+ solids) and room-frame normal.

    Each solid is only tested against the rays of its projected bounding box.
    """
    h, w = size
    origin = np.zeros(3, np.float32)
    t, axis, side = room_hits(dirs, scene.room_low, scene.room_high)
    ids = axis * 2 + side
    normals = np.zeros_like(dirs)
    normals[np.arange(len(dirs)), axis] = np.float32(1.0) - np.float32(2.0) * side  # room faces point inwards
    grid_t, grid_ids, grid_dirs, grid_normals = t.reshape(h, w), ids.reshape(h, w), dirs.reshape(h, w, 3), \
        normals.reshape(h, w, 3)
    k = camera_intrinsics(size, num)
    windows = []
    for j, solid in enumerate(scene.solids):
        r0, r1, c0, c1 = screen_window(solid.primitive, scene.rotation, k, size, num)
        if r0 >= r1 or c0 >= c1:
            continue
        hit = intersect(origin, grid_dirs[r0:r1, c0:c1].reshape(-1, 3), solid.primitive, num)
        hit = hit.reshape(r1 - r0, c1 - c0)
        window_t = grid_t[r0:r1, c0:c1]
        closer = hit < window_t
        window_t[closer] = hit[closer]
        grid_ids[r0:r1, c0:c1][closer] = _ROOM_FACES + j
        windows.append((j, (slice(r0, r1), slice(c0, c1))))
    for j, window in windows:
        mask = grid_ids[window] == _ROOM_FACES + j
        if mask.any():
            points = grid_dirs[window][mask] * grid_t[window][mask][:, None]
            grid_normals[window][mask] = surface_normal(points, scene.solids[j].primitive, num)
    return t, ids, normals


def _void_mask(scene: Scene, ids: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Pixels that look through the window of the back wall (face z-high = id 5)."""
    if scene.window is None:
        return np.zeros(len(ids), bool)
    x0, x1, y0, y1 = scene.window
    x, y = points[:, 0], points[:, 1]
    return (ids == 5) & (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def _tables(scene: Scene) -> dict[str, np.ndarray]:
    """Per surface id lookup tables: semantic class, instance, part, albedo and texture parameters."""
    room_sem = [WALL, WALL, CEILING, FLOOR, WALL, WALL]  # faces: x-low, x-high, y-low (ceiling), y-high, z-low, z-high
    looks = [(a, t) for a, t in scene.room_looks] + [(s.albedo, s.texture) for s in scene.solids]
    return {
        "semantic": np.array(room_sem + [s.semantic for s in scene.solids], np.uint8),
        "instance": np.array(list(range(_ROOM_FACES)) + [s.instance for s in scene.solids], np.int16),
        "part": np.array([0] * _ROOM_FACES + [s.part for s in scene.solids], np.uint8),
        "albedo": np.stack([a for a, _ in looks]).astype(np.float32),
        "tex_kind": np.array([t[0] for _, t in looks]),
        "tex_scale": np.array([t[1] for _, t in looks], np.float32),
        "tex_amp": np.array([t[2] for _, t in looks], np.float32),
        "tex_axis": np.stack([t[3] for _, t in looks]).astype(np.float32),
    }


def _fraction(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


def _texture(points: np.ndarray, ids: np.ndarray, tab: dict[str, np.ndarray], num: Numerics) -> np.ndarray:
    """Solid (3-D) textures: plain, checker, stripes or hashed value noise, as a brightness factor."""
    kind = tab["tex_kind"][ids]
    used = set(np.unique(tab["tex_kind"]).tolist())
    scale = tab["tex_scale"][ids]
    flat = np.full(len(ids), 0.5, np.float32)
    cells = np.floor(points / scale[:, None]) if used & {1, 3} else None
    checker = _fraction(0.5 * num.matmul(cells, _ONES3)) * 2.0 if 1 in used else flat
    stripes = num.stripes(num.rowdot(points, tab["tex_axis"][ids]), scale) if 2 in used else flat
    noise = num.noise(cells) if 3 in used else flat
    pattern = np.where(kind == 1, checker, np.where(kind == 2, stripes, np.where(kind == 3, noise, flat)))
    amp = tab["tex_amp"][ids]
    return 1.0 - amp + 2.0 * amp * pattern


def _shade(scene: Scene, points: np.ndarray, normals: np.ndarray, ids: np.ndarray, tab: dict,
           rng: np.random.Generator, num: Numerics) -> np.ndarray:
    """Lambert shading with ambient light, 1-2 tinted point lights, exposure, gamma 2 and sensor noise."""
    sq_points = num.rowdot(points, points)
    n_dot_p = num.rowdot(normals, points)
    light = np.full((len(points), 3), scene.ambient, np.float32)
    for pos, power in scene.lights:  # |pos - P|^2 and n . (pos - P) from matrix-vector products
        dist2 = np.maximum(sq_points - 2.0 * num.matmul(points, pos) + np.float32(num.matmul(pos, pos)), 1e-6)
        cos = (num.matmul(normals, pos) - n_dot_p) / np.sqrt(dist2)
        tint = rng.uniform(0.8, 1.2, 3).astype(np.float32)
        light += np.outer(np.maximum(cos, 0.0) * (power / (1.0 + dist2)), tint)
    shade = _texture(points, ids, tab, num) * np.float32(scene.exposure)
    colour = np.sqrt(np.clip(tab["albedo"][ids] * light * shade[:, None], 0.0, 1.0))  # gamma 2
    return colour + np.float32(scene.noise) * num.gaussian(rng, colour.shape)


def _edges(instance: np.ndarray) -> np.ndarray:
    """1-pixel boundaries: pixels whose instance differs from their right or lower neighbour."""
    edge = np.zeros(instance.shape, bool)
    edge[:, :-1] |= instance[:, :-1] != instance[:, 1:]
    edge[:-1, :] |= instance[:-1, :] != instance[1:, :]
    return edge


@lru_cache(maxsize=8)
def _pixel_grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel row and column coordinates scaled to [0, 1)."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy / h, xx / w


def _blob_mask(size: tuple[int, int], blobs: list) -> np.ndarray:
    """Union of the elliptical depth-dropout blobs (centre and radii as fractions of the image)."""
    mask = np.zeros(size, bool)
    if not blobs:
        return mask
    yy, xx = _pixel_grid(size)
    for cy, cx, ry, rx in blobs:
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return mask


def render(scene: Scene, size: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """RGB (uint8 HxWx3) and labels: semseg / parts / saliency / edge (uint8, 255 void), depth (float32
    metres, 0 invalid), normals (float32 HxWx3 camera frame, zero invalid) and instance ids (int16)."""
    h, w = size
    num = numerics_for(scene.version)
    cam = _rays(size, num)
    dirs = num.matmul(cam, scene.rotation.T)
    t, ids, normals = _cast(scene, dirs, size, num)
    points = dirs * t[:, None]
    tab = _tables(scene)
    void = _void_mask(scene, ids, points)
    rgb = _shade(scene, points, normals, ids, tab, rng, num)
    sky = np.array([0.75, 0.85, 1.0], np.float32) * (0.9 + 0.1 * cam[:, 1:2])
    rgb = np.where(void[:, None], sky, rgb)
    cam_normals = num.matmul(normals, scene.rotation)  # room -> camera frame
    cosine = -num.rowdot(cam_normals, cam) / np.sqrt(num.rowdot(cam, cam))
    invalid = void | (t > MAX_DEPTH) | (cosine < _GRAZING_COS) | _blob_mask(size, scene.invalid_blobs).ravel()
    semantic = np.where(void, VOID, tab["semantic"][ids]).astype(np.uint8)
    instance = np.where(void, -1, tab["instance"][ids]).astype(np.int16).reshape(h, w)
    part = tab["part"][ids]
    figure = part > 0
    parts = np.where(void, VOID, part) if figure.any() else np.full_like(part, VOID)
    return {
        "rgb": np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8).reshape(h, w, 3),
        "semseg": semantic.reshape(h, w),
        "depth": np.where(invalid, 0.0, t).astype(np.float32).reshape(h, w),
        "normals": np.where(invalid[:, None], 0.0, cam_normals).astype(np.float32).reshape(h, w, 3),
        "edge": np.where(void.reshape(h, w), VOID, _edges(instance)).astype(np.uint8),
        "saliency": np.where(void, VOID, semantic >= SPHERE).astype(np.uint8).reshape(h, w),
        "parts": parts.astype(np.uint8).reshape(h, w),
        "instance": instance,
    }
