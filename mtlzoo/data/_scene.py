"""Random indoor scenes for synthscenes: a room of planes, objects on the floor, an optional figure, lights."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from mtlzoo.data._numerics import Numerics, numerics_for
from mtlzoo.data._render import Primitive, rotation

# semantic classes (mtlzoo.tasks.SYNTHSCENES_CLASSES): floor, wall, ceiling, sphere, box, cylinder, cone, figure
FLOOR, WALL, CEILING, SPHERE, BOX, CYLINDER, CONE, FIGURE = range(8)
# parts (mtlzoo.tasks.SYNTHSCENES_PARTS): background, head, torso, left_arm, right_arm, left_leg, right_leg
HEAD, TORSO, LEFT_ARM, RIGHT_ARM, LEFT_LEG, RIGHT_LEG = range(1, 7)
_OBJECT_CLASSES = (SPHERE, BOX, CYLINDER, CONE)


@dataclass
class Solid:
    """A primitive with its labels and its look: semantic class, instance id, part id, albedo and texture."""

    primitive: Primitive
    semantic: int
    instance: int
    part: int
    albedo: np.ndarray
    texture: tuple[int, float, float, np.ndarray]  # (kind 0 plain / 1 checker / 2 stripes / 3 noise, scale, amp, axis)


@dataclass
class Scene:
    """Everything needed to render one image: camera, room box, window, solids and lights, and the generator
    version that drew it (which also fixes the arithmetic it renders with)."""

    version: int
    rotation: np.ndarray
    room_low: np.ndarray
    room_high: np.ndarray
    room_looks: list[tuple[np.ndarray, tuple]]  # per room face (axis * 2 + side): albedo, texture
    window: tuple[float, float, float, float] | None  # (x0, x1, y0, y1) on the back wall, or None
    solids: list[Solid] = field(default_factory=list)
    lights: list[tuple[np.ndarray, float]] = field(default_factory=list)  # (position, intensity)
    ambient: float = 0.2
    exposure: float = 1.0
    noise: float = 0.01
    invalid_blobs: list[tuple[float, float, float, float]] = field(default_factory=list)  # cy, cx, ry, rx (0-1)


def _look(rng: np.random.Generator, num: Numerics) -> tuple[np.ndarray, tuple]:
    """A random albedo and texture, drawn independently of the class so colour alone does not give it."""
    albedo = rng.uniform(0.15, 0.95, 3).astype(np.float32)
    axis = num.direction(rng)
    return albedo, (int(rng.integers(0, 4)), float(rng.uniform(0.1, 0.5)), float(rng.uniform(0.1, 0.45)), axis)


@dataclass(frozen=True)
class FigureRecipe:
    """How a generator version draws the figure: how often, how near, how thick, and how it is dressed.

    Version 2 puts a figure in most scenes, nearer the camera and stockier, with separate looks for skin
    (head, arms), shirt (torso) and trousers (legs): at 48x64 its arms are 4-10 pixels wide (version 1:
    1-5, mostly under 2).
    """

    chance: float  # probability that a scene has a figure
    far: float | None  # farthest floor distance from the camera (None: anywhere the room allows)
    spread: float  # |x| <= spread * z keeps the figure inside the field of view
    limb: float  # arm radius, as a fraction of the figure's height
    torso: float  # torso radius, as a fraction of the height
    head: float  # head radius, as a fraction of the height
    dressed: bool  # False (version 1): head and arms share one look, torso and legs another


FIGURE_RECIPES = {1: FigureRecipe(0.5, None, 0.55, 0.035, 0.11, 0.075, dressed=False),
                  2: FigureRecipe(0.9, 2.4, 0.4, 0.065, 0.13, 0.09, dressed=True)}
FIGURE_RECIPES[3] = FIGURE_RECIPES[2]  # version 3 changes only the arithmetic (mtlzoo.data._numerics)


def _dress(rng: np.random.Generator, num: Numerics) -> tuple[np.ndarray, tuple]:
    """A look with a faint texture, so the colour of a piece of clothing reads clearly at low resolution."""
    albedo, (_, scale, amp, axis) = _look(rng, num)
    return albedo, (int(rng.integers(0, 4)), scale, 0.3 * amp, axis)


def _figure(rng: np.random.Generator, x: float, z: float, floor: float, instance: int,
            recipe: FigureRecipe, num: Numerics) -> list[Solid]:
    """A standing person-like figure: two legs, torso, two arms (cylinders) and a head (sphere)."""
    tall = rng.uniform(1.45, 1.85)
    leg_h, torso_h, head_r = 0.47 * tall, 0.33 * tall, recipe.head * tall
    torso_r, limb_r = recipe.torso * tall, recipe.limb * tall
    yaw = rng.uniform(-0.6, 0.6)
    side = np.array([num.cos(yaw), 0.0, -num.sin(yaw)])  # the figure's left, seen facing the camera
    if recipe.dressed:  # legs as thick as arms, a gap between them and beside the torso
        skin, shirt, trousers = _dress(rng, num), _dress(rng, num), _dress(rng, num)
        leg_r, leg_x, arm_x = limb_r, 0.55 * torso_r, torso_r + 1.3 * limb_r
    else:
        skin, shirt = _look(rng, num), _look(rng, num)
        trousers, leg_r, leg_x, arm_x = shirt, 1.3 * limb_r, 0.45 * torso_r, torso_r + limb_r

    def at(offset: float, lift: float) -> tuple[float, float, float]:
        return (x + offset * side[0], floor - lift, z + offset * side[2])

    arm = (limb_r, 0.85 * torso_h)
    parts = [
        (Primitive("cylinder", at(leg_x, 0.0), (leg_r, leg_h)), LEFT_LEG, trousers),
        (Primitive("cylinder", at(-leg_x, 0.0), (leg_r, leg_h)), RIGHT_LEG, trousers),
        (Primitive("cylinder", at(0.0, leg_h), (torso_r, torso_h)), TORSO, shirt),
        (Primitive("cylinder", at(arm_x, leg_h + 0.1 * torso_h), arm), LEFT_ARM, skin),
        (Primitive("cylinder", at(-arm_x, leg_h + 0.1 * torso_h), arm), RIGHT_ARM, skin),
        (Primitive("sphere", at(0.0, leg_h + torso_h + head_r * 0.95), (head_r,)), HEAD, skin),
    ]
    return [Solid(p, FIGURE, instance, part, look[0], look[1]) for p, part, look in parts]


def _object(rng: np.random.Generator, cls: int, floor: float, instance: int,
            num: Numerics) -> tuple[Solid, float]:
    """One object of class ``cls`` standing on the floor at x = z = 0, and its footprint radius."""
    if cls == SPHERE:
        r = rng.uniform(0.15, 0.5)
        prim, foot = Primitive("sphere", (0.0, floor - r, 0.0), (r,)), r
    elif cls == BOX:
        hx, hy, hz = rng.uniform(0.12, 0.5), rng.uniform(0.1, 0.6), rng.uniform(0.12, 0.5)
        prim, foot = Primitive("box", (0.0, floor, 0.0), (hx, hy, hz), float(rng.uniform(0, np.pi))), num.hypot(hx, hz)
    else:
        r, h = rng.uniform(0.1, 0.45), rng.uniform(0.3, 1.5)
        prim, foot = Primitive("cylinder" if cls == CYLINDER else "cone", (0.0, floor, 0.0), (r, h)), r
    albedo, texture = _look(rng, num)
    return Solid(prim, cls, instance, 0, albedo, texture), foot


def _place(rng: np.random.Generator, placed: list[tuple[float, float, float]], foot: float,
           low: np.ndarray, high: np.ndarray, num: Numerics, far: float | None = None,
           spread: float = 0.55) -> tuple[float, float] | None:
    """A floor position at least ``foot`` from the walls, no farther than ``far``, clear of placed footprints."""
    back = high[2] - foot - 0.2
    for _ in range(8):
        z = rng.uniform(1.3, back if far is None else min(far, back))
        half = spread * z  # stay roughly inside the field of view
        x = rng.uniform(max(low[0] + foot, -half), min(high[0] - foot, half))
        if all(num.hypot(x - px, z - pz) > foot + pf + 0.05 for px, pz, pf in placed):
            return x, z
    return None


def sample_scene(rng: np.random.Generator, version: int = 1) -> Scene:
    """Draw a random room, camera pose, objects, figure, window, lights and depth holes as ``version`` does."""
    recipe, num = FIGURE_RECIPES[version], numerics_for(version)
    cam_h = rng.uniform(1.2, 1.7)
    room_h, depth, width = rng.uniform(2.5, 3.2), rng.uniform(4.5, 9.0), rng.uniform(4.0, 8.0)
    offset = rng.uniform(-0.3, 0.3) * width
    low = np.array([offset - width / 2, cam_h - room_h, -1.0], np.float32)
    high = np.array([offset + width / 2, cam_h, depth], np.float32)
    rot = rotation(rng.uniform(0.08, 0.35), rng.uniform(-0.25, 0.25), rng.uniform(-0.05, 0.05), num)
    window = None
    if rng.random() < 0.4:
        x0 = rng.uniform(low[0] + 0.3, high[0] - 1.5)
        y1 = rng.uniform(cam_h - 1.0, cam_h - 0.8)
        window = (x0, x0 + rng.uniform(0.8, 1.4), y1 - rng.uniform(0.6, 1.2), y1)
    scene = Scene(version, rot, low, high, [_look(rng, num) for _ in range(6)], window)
    placed: list[tuple[float, float, float]] = []
    instance = 6  # 0-5 are the room faces
    if rng.random() < recipe.chance:
        spot = _place(rng, placed, 0.35, low, high, num, recipe.far, recipe.spread)
        if spot is not None:
            scene.solids += _figure(rng, spot[0], spot[1], cam_h, instance, recipe, num)
            placed.append((spot[0], spot[1], 0.35))
            instance += 1
    for _ in range(int(rng.integers(3, 10))):
        solid, foot = _object(rng, int(rng.choice(_OBJECT_CLASSES)), cam_h, instance, num)
        spot = _place(rng, placed, foot, low, high, num)
        if spot is None:
            continue
        solid.primitive = replace(solid.primitive, base=(spot[0], solid.primitive.base[1], spot[1]))
        scene.solids.append(solid)
        placed.append((spot[0], spot[1], foot))
        instance += 1
    for _ in range(int(rng.integers(1, 3))):
        pos = np.array([rng.uniform(low[0], high[0]), low[1] + 0.2, rng.uniform(0.5, depth)], np.float32)
        scene.lights.append((pos, float(rng.uniform(2.0, 7.0))))
    scene.ambient, scene.exposure, scene.noise = rng.uniform(0.1, 0.35), rng.uniform(0.7, 1.3), rng.uniform(0, 0.03)
    scene.invalid_blobs = [tuple(rng.uniform([0, 0, 0.03, 0.03], [1, 1, 0.15, 0.15])) for _ in
                           range(int(rng.integers(0, 3)))]
    return scene
