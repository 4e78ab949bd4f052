"""``symwm/Reacher-v0``: a two-link planar arm that must bring its fingertip to a goal, seen in pixels.

Model
    Two rigid links (lengths ``link_lengths``, default 1 and 1 world units, mass 1 each, uniform
    rods) simulated with pymunk in a horizontal plane without gravity. The base is pinned at the
    world origin; joint 1 connects the static base to link 1, joint 2 connects link 1 to link 2
    (pymunk ``PivotJoint``s, links do not collide). An action ``a`` in ``[-1, 1]^2`` is a pair of
    joint torques ``gear * a``; joint 2's torque acts equally and oppositely on links 1 and 2.
    Each joint has viscous damping ``damping * (relative angular velocity)``, which bounds the
    speeds. One env step lasts ``DT = 0.05`` time units, integrated in ``SUBSTEPS`` pymunk steps.
    Reward: ``-|fingertip - goal| - ctrl_cost * |a|^2``; episodes never terminate (the registered
    env is truncated after 50 steps).

State (all float64)
    ``qpos = (theta1, theta2)``: absolute angle of link 1 counter-clockwise from +x and angle of
    link 2 relative to link 1, wrapped to [-pi, pi]; ``qvel``: their time derivatives;
    ``prev_qpos``: ``qpos`` one step earlier (equal to ``qpos`` after a reset); ``goal``: the goal
    point. The pymunk bodies are rebuilt from ``(qpos, qvel)`` at the start of every step (exact
    kinematics, fresh joints without warm-started impulses), so a step is a pure function of the
    state and ``set_state`` followed by ``step`` matches simulation bit for bit.

Observation
    ``(resolution, resolution, 6)`` uint8: the RGB frame of ``prev_qpos`` stacked with the RGB
    frame of ``qpos`` (channel-last). The image spans ``[-1.2 R, 1.2 R]^2`` (``R`` the arm's reach).
    ``camera="top"``: orthographic, flat colours drawn from SDFs at pixel centres (goal red, base
    grey, link 1 blue, link 2 green, fingertip yellow); it is exactly D4-symmetric: rendering ``g.s``
    gives ``transform_grid(g, render(s))`` pixel for pixel (link endpoints are quantised to a
    dyadic grid so that 1-ulp differences of ``cos``/``sin`` of rotated angles vanish).
    ``camera="oblique"`` (default): a perspective camera 55 degrees above the table and off to one
    side; the links are shaded 3D capsules (screen-space impostors) at two heights over a pillar,
    on a checkered table lit by a fixed directional light that casts soft shadows. A rotated
    world is then *not* a rotated image.

Symmetry
    D4 (``Dihedral(4, reflections=True)``) acts on states and actions. A quarter turn ``k`` adds
    ``k pi/2`` to ``theta1`` (in ``qpos`` and ``prev_qpos``) and rotates the goal; the reflection
    ``y -> -y`` (applied first) negates ``theta1``, ``theta2``, ``qvel``, the goal's y and both
    torques. The dynamics commute with this action up to floating point rounding.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping, Sequence

import numpy as np
import pymunk
from gymnasium import spaces

from symwm.envs.groups import Dihedral
from symwm.envs.rendering import coverage, pixel_centres, segment_distance, to_uint8
from symwm.envs.symmetry import EnvSymmetry, State, SymmetricEnv, check_box_action

#: duration of one env step and number of pymunk steps it is split into
DT = 0.05
SUBSTEPS = 5
#: joint speed limit (rad per time unit); far above what the damped arm reaches
MAX_SPEED = 50.0
#: image half-width in units of the arm's reach
EXTENT_FACTOR = 1.2
#: link endpoints in the top camera are rounded to multiples of this (a power of two)
QUANTUM = 2.0**-20
CAMERAS = ("oblique", "top")


def wrap_angle(x: np.ndarray) -> np.ndarray:
    """Angles wrapped to [-pi, pi]; values already in range are returned unchanged (bit for bit)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where((x < -np.pi) | (x > np.pi), np.mod(x + np.pi, 2.0 * np.pi) - np.pi, x)


def forward_kinematics(qpos: np.ndarray, lengths: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """World positions of the elbow and the fingertip for joint angles ``qpos``."""
    phi1, phi2 = float(qpos[0]), float(qpos[0] + qpos[1])
    elbow = np.array([lengths[0] * math.cos(phi1), lengths[0] * math.sin(phi1)])
    tip = elbow + np.array([lengths[1] * math.cos(phi2), lengths[1] * math.sin(phi2)])
    return elbow, tip


def inverse_kinematics(point: np.ndarray, lengths: Sequence[float]) -> list[np.ndarray]:
    """Both joint configurations ``qpos`` (elbow one way, then the other) that put the fingertip at ``point``."""
    l1, l2 = float(lengths[0]), float(lengths[1])
    x, y = float(point[0]), float(point[1])
    c2 = (x * x + y * y - l1 * l1 - l2 * l2) / (2.0 * l1 * l2)
    c2 = min(1.0, max(-1.0, c2))  # points on the annulus' edges
    out = []
    for sign in (1.0, -1.0):
        t2 = sign * math.acos(c2)
        t1 = math.atan2(y, x) - math.atan2(l2 * math.sin(t2), l1 + l2 * math.cos(t2))
        out.append(wrap_angle(np.array([t1, t2])))
    return out


def reacher_goal_state(env: Any, state: Mapping[str, np.ndarray] | None = None) -> State:
    """The arm at rest with its fingertip on the goal, in the elbow solution nearer the current pose (``env`` or its wrapper)."""
    base = getattr(env, "unwrapped", env)
    state = base.get_state() if state is None else state
    goal = np.asarray(state["goal"], dtype=np.float64)
    now = np.asarray(state["qpos"], dtype=np.float64)
    options = inverse_kinematics(goal, base.link_lengths)
    gap = [float(np.abs(wrap_angle(q - now)).sum()) for q in options]
    qpos = options[int(np.argmin(gap))]
    return {"qpos": qpos, "qvel": np.zeros(2), "prev_qpos": qpos.copy(), "goal": goal.copy()}


class ReacherSymmetry(EnvSymmetry):
    """D4 acting on the Reacher's states (joint angles, velocities, goal) and torques."""

    angle_keys = ("qpos", "prev_qpos")

    def __init__(self) -> None:
        self.group = Dihedral(4, reflections=True)
        self.action_group = self.group

    def _check(self, g: Any) -> None:
        if not self.group.contains(g):
            raise ValueError(f"{g!r} is not an element of {self.group.name}")

    def act_on_state(self, g: Any, state: Mapping[str, np.ndarray]) -> State:
        """Rotate/reflect the arm and the goal (see the module docstring)."""
        self._check(g)
        sign = -1.0 if g.reflection else 1.0
        turn = g.rotation * (np.pi / 2.0)
        out: State = {}
        for key in ("qpos", "prev_qpos"):
            q = sign * np.asarray(state[key], dtype=np.float64)
            out[key] = wrap_angle(q + np.array([turn, 0.0]))
        out["qvel"] = sign * np.asarray(state["qvel"], dtype=np.float64)
        out["goal"] = self.group.matrix(g) @ np.asarray(state["goal"], dtype=np.float64)
        return out

    def act_on_action(self, g: Any, action: Any) -> np.ndarray:
        """Torques are unchanged by rotations and negated by the reflection."""
        self._check(g)
        a = np.asarray(action)
        if a.dtype.kind != "f":
            a = a.astype(np.float64)
        return -a if g.reflection else a.copy()


# ----------------------------------------------------------------------------------------------
# Renderers
# ----------------------------------------------------------------------------------------------

BACKGROUND = np.array([0.93, 0.93, 0.90])
GOAL_COLOUR = np.array([0.90, 0.15, 0.15])
BASE_COLOUR = np.array([0.35, 0.35, 0.38])
LINK1_COLOUR = np.array([0.15, 0.40, 0.90])
LINK2_COLOUR = np.array([0.15, 0.72, 0.30])
TIP_COLOUR = np.array([0.98, 0.78, 0.10])


class _Geometry:
    """Sizes of the drawn parts, in world units, derived from the link lengths."""

    def __init__(self, lengths: tuple[float, float]):
        self.lengths = lengths
        self.reach = lengths[0] + lengths[1]
        self.extent = EXTENT_FACTOR * self.reach
        self.link_radius = 0.055 * self.reach
        self.base_radius = 0.08 * self.reach
        self.tip_radius = 0.07 * self.reach
        self.goal_radius = 0.08 * self.reach


class TopRenderer:
    """Orthographic top-down view with flat colours; exactly D4-symmetric pixel for pixel."""

    def __init__(self, resolution: int, geometry: _Geometry):
        self.res, self.geo = resolution, geometry
        self.px, self.py = pixel_centres(resolution, geometry.extent)
        self.pixel = 2.0 * geometry.extent / resolution
        self.background = np.broadcast_to(BACKGROUND, (resolution, resolution, 3)).copy()

    def _window(self, lo: np.ndarray, hi: np.ndarray, margin: float) -> tuple[slice, slice]:
        """Pixel rows/columns that may be touched by a shape inside the box ``[lo, hi]``."""
        r, e = self.res, self.geo.extent
        m = margin + 2.0 * self.pixel
        c0 = math.floor(((lo[0] - m) * r / e + r - 1) / 2)
        c1 = math.ceil(((hi[0] + m) * r / e + r - 1) / 2) + 1
        r0 = math.floor((-(hi[1] + m) * r / e + r - 1) / 2)
        r1 = math.ceil((-(lo[1] - m) * r / e + r - 1) / 2) + 1
        return slice(max(r0, 0), min(r1, r)), slice(max(c0, 0), min(c1, r))

    def _paint(self, img: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float, colour: np.ndarray) -> None:
        """Blend a capsule (a disk when ``a == b``) of ``colour`` into ``img``."""
        win = self._window(np.minimum(a, b), np.maximum(a, b), radius)
        px, py = self.px[win], self.py[win]
        if a[0] == b[0] and a[1] == b[1]:
            dx, dy = px - a[0], py - a[1]
            dist = np.sqrt(dx * dx + dy * dy)
        else:
            dist = segment_distance(px, py, a, b)
        alpha = coverage(dist - radius, self.pixel)[..., None]
        sub = img[win]
        sub *= 1.0 - alpha
        sub += alpha * colour

    def render(self, qpos: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The uint8 RGB frame of joint angles ``qpos`` and ``goal``."""
        geo = self.geo
        elbow, tip = forward_kinematics(qpos, geo.lengths)
        elbow = np.round(elbow / QUANTUM) * QUANTUM
        tip = np.round(tip / QUANTUM) * QUANTUM
        origin = np.zeros(2)
        goal = np.asarray(goal, dtype=np.float64)
        img = self.background.copy()
        self._paint(img, goal, goal, geo.goal_radius, GOAL_COLOUR)
        self._paint(img, origin, elbow, geo.link_radius, LINK1_COLOUR)
        self._paint(img, origin, origin, geo.base_radius, BASE_COLOUR)
        self._paint(img, elbow, tip, geo.link_radius, LINK2_COLOUR)
        self._paint(img, tip, tip, geo.tip_radius, TIP_COLOUR)
        return to_uint8(img)


class ObliqueRenderer:
    """Perspective view of the table from above at an angle, with shading and shadows.

    The table (checker texture, light falloff) is ray-cast once at construction. The arm's parts
    are capsules drawn as screen-space impostors: the projected axis with a radius that follows
    the perspective, a normal rebuilt from the offset to the axis (Lambert and Blinn-Phong
    shading from a fixed light) and a depth buffer. Shadows are the parts' capsules projected
    along the light onto the table.
    """

    ELEVATION = math.radians(55.0)
    AZIMUTH = math.radians(-65.0)  # direction from the table centre to the camera, seen from above
    FOV = math.radians(45.0)
    DISTANCE = 2.9  # camera distance from the table centre in units of the reach
    LIGHT = np.array([-0.45, 0.35, 1.0]) / np.linalg.norm([-0.45, 0.35, 1.0])

    def __init__(self, resolution: int, geometry: _Geometry):
        self.res, self.geo = resolution, geometry
        reach = geometry.reach
        el, az = self.ELEVATION, self.AZIMUTH
        back = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        self.eye = self.DISTANCE * reach * back
        self.fwd = -back
        self.right = np.cross(self.fwd, [0.0, 0.0, 1.0])
        self.right /= np.linalg.norm(self.right)
        self.up = np.cross(self.right, self.fwd)
        self._basis = (tuple(self.fwd.tolist()), tuple(self.right.tolist()), tuple(self.up.tolist()))
        self.tan_half = math.tan(self.FOV / 2.0)
        self.focal = resolution / (2.0 * self.tan_half)  # pixels per unit of (lateral / depth)
        idx = np.arange(resolution, dtype=np.float64)
        self.cols = np.broadcast_to(idx[None, :], (resolution, resolution))
        self.rows = np.broadcast_to(idx[:, None], (resolution, resolution))
        # where the ray through each pixel centre meets the table plane z = 0, and its footprint
        ndc = (2.0 * idx + 1.0 - resolution) / resolution * self.tan_half
        rd = (
            self.fwd[:, None, None]
            + ndc[None, None, :] * self.right[:, None, None]
            - ndc[None, :, None] * self.up[:, None, None]
        )
        rd /= np.linalg.norm(rd, axis=0, keepdims=True)
        t_table = -self.eye[2] / rd[2]
        self.table_xy = self.eye[:2, None, None] + t_table * rd[:2]
        self.footprint = t_table * (2.0 * self.tan_half / resolution) / np.sqrt(-rd[2])
        # a normal (u, v, w) in (pixel column, pixel row, towards the camera) dotted with the
        # light and with the Blinn-Phong half vector
        frame = np.stack([self.right, -self.up, -self.fwd])
        half = self.LIGHT - self.fwd
        self.k_light = frame @ self.LIGHT
        self.k_half = frame @ (half / np.linalg.norm(half))
        # heights of the parts: a pillar under link 1, link 2 stacked on top of link 1
        self.z1 = 0.12 * reach
        self.z2 = self.z1 + 2.0 * geometry.link_radius
        self.background = self._table()

    def _table(self) -> np.ndarray:
        """Constant background: a checkered table with a soft light falloff, on a dark floor."""
        geo = self.geo
        x, y = self.table_xy
        fp = self.footprint
        square = geo.reach / 4.0  # checker square size; the smooth sign() below anti-aliases it
        sx = np.clip(np.cos(np.pi * x / square) * square / (np.pi * fp), -1.0, 1.0)
        sy = np.clip(np.cos(np.pi * y / square) * square / (np.pi * fp), -1.0, 1.0)
        table = np.array([0.80, 0.76, 0.68]) + 0.05 * (sx * sy)[..., None]
        falloff = 1.0 - 0.25 * ((x + 0.3 * geo.reach) ** 2 + (y - 0.4 * geo.reach) ** 2) / geo.extent**2
        table = table * np.clip(falloff, 0.5, 1.0)[..., None]
        on_table = coverage(np.maximum(np.abs(x), np.abs(y)) - geo.extent, fp)[..., None]
        floor = np.array([0.22, 0.24, 0.28])
        return on_table * table + (1.0 - on_table) * floor

    def _project(self, x: float, y: float, z: float) -> tuple[float, float, float]:
        """Pixel column, pixel row and depth of the 3D point ``(x, y, z)``."""
        v = (x - self.eye[0], y - self.eye[1], z - self.eye[2])
        f, r, u = self._basis
        depth = v[0] * f[0] + v[1] * f[1] + v[2] * f[2]
        scale = self.focal / depth
        centre = (self.res - 1) / 2.0
        return (
            centre + scale * (v[0] * r[0] + v[1] * r[1] + v[2] * r[2]),
            centre - scale * (v[0] * u[0] + v[1] * u[1] + v[2] * u[2]),
            depth,
        )

    def _window(self, cols: Sequence[float], rows: Sequence[float], margin: float) -> tuple[slice, slice]:
        """Rows and columns of the pixels within ``margin`` of the box around the given pixels."""
        n = self.res
        c0, c1 = math.floor(min(cols) - margin) - 1, math.ceil(max(cols) + margin) + 2
        r0, r1 = math.floor(min(rows) - margin) - 1, math.ceil(max(rows) + margin) + 2
        return slice(min(max(r0, 0), n), min(max(r1, 0), n)), slice(min(max(c0, 0), n), min(max(c1, 0), n))

    def _table_window(self, lo: Sequence[float], hi: Sequence[float]) -> tuple[slice, slice]:
        """Pixels that see the part ``[lo, hi]`` of the table."""
        corners = [self._project(x, y, 0.0) for x in (lo[0], hi[0]) for y in (lo[1], hi[1])]
        return self._window([c[0] for c in corners], [c[1] for c in corners], 1.0)

    def _capsule(self, img: np.ndarray, zbuf: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float, colour: np.ndarray) -> None:
        """Draw a shaded capsule (a sphere when ``a == b``) with a depth test."""
        ca, rwa, da = self._project(*a)
        cb, rwb, db = self._project(*b)
        ra, rb = radius * self.focal / da, radius * self.focal / db
        win = self._window((ca, cb), (rwa, rwb), max(ra, rb))
        x, y = self.cols[win] - ca, self.rows[win] - rwa
        if x.size == 0:
            return
        d0, d1 = cb - ca, rwb - rwa
        t = np.minimum(np.maximum((x * d0 + y * d1) * (1.0 / max(d0 * d0 + d1 * d1, 1e-12)), 0.0), 1.0)
        ex, ey = x - t * d0, y - t * d1
        dist = np.sqrt(ex * ex + ey * ey)
        rad = ra + t * (rb - ra)
        alpha = np.minimum(np.maximum(0.5 + rad - dist, 0.0), 1.0)
        scale = 1.0 / np.maximum(dist, rad)
        u, v = ex * scale, ey * scale
        w = np.sqrt(np.maximum(1.0 - u * u - v * v, 0.0))
        depth = da + t * (db - da) - radius * w
        zsub = zbuf[win]
        mask = (alpha > 0.0) & (depth < zsub)
        kl, kh = self.k_light, self.k_half
        diffuse = np.maximum(u * kl[0] + v * kl[1] + w * kl[2], 0.0)
        spec = np.maximum(u * kh[0] + v * kh[1] + w * kh[2], 0.0) ** 24
        shade = (0.35 + 0.65 * diffuse)[..., None] * colour + 0.35 * spec[..., None]
        alpha = np.where(mask, alpha, 0.0)
        zbuf[win] = np.where(alpha >= 0.5, depth, zsub)
        alpha = alpha[..., None]
        sub = img[win]
        sub *= 1.0 - alpha
        sub += alpha * shade

    def _shadow(self, shadow: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float) -> None:
        """Add the soft shadow on the table of a capsule between 3D points ``a`` and ``b``."""
        light = self.LIGHT
        sa = a[:2] - a[2] * light[:2] / light[2]
        sb = b[:2] - b[2] * light[:2] / light[2]
        m = 1.5 * radius
        win = self._table_window(np.minimum(sa, sb) - m, np.maximum(sa, sb) + m)
        x, y = self.table_xy[0][win], self.table_xy[1][win]
        if x.size == 0:
            return
        sd = segment_distance(x, y, sa, sb) - radius
        soft = np.minimum(np.maximum(0.5 - sd / (0.6 * radius + self.footprint[win]), 0.0), 1.0)
        np.maximum(shadow[win], soft, out=shadow[win])

    def render(self, qpos: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The uint8 RGB frame of joint angles ``qpos`` and ``goal``."""
        geo = self.geo
        elbow, tip = forward_kinematics(qpos, geo.lengths)
        img = self.background.copy()
        # goal: a flat disk on the table
        g, gr = np.asarray(goal, dtype=np.float64), geo.goal_radius
        win = self._table_window(g - gr, g + gr)
        dx, dy = self.table_xy[0][win] - g[0], self.table_xy[1][win] - g[1]
        alpha = coverage(np.sqrt(dx * dx + dy * dy) - gr, self.footprint[win])[..., None]
        sub = img[win]
        sub *= 1.0 - alpha
        sub += alpha * GOAL_COLOUR
        # the arm: a pillar at the base, two links at two heights, a ball at the fingertip
        base_top = np.array([0.0, 0.0, self.z1])
        e1, e2 = np.array([elbow[0], elbow[1], self.z1]), np.array([elbow[0], elbow[1], self.z2])
        t2 = np.array([tip[0], tip[1], self.z2])
        r = geo.link_radius
        parts = [
            (np.zeros(3), base_top, geo.base_radius, BASE_COLOUR),
            (base_top, e1, r, LINK1_COLOUR),
            (e2, t2, r, LINK2_COLOUR),
            (t2, t2, geo.tip_radius, TIP_COLOUR),
        ]
        shadow = np.zeros((self.res, self.res))
        for a, b, radius, _ in parts:
            self._shadow(shadow, a, b, radius)
        img *= (1.0 - 0.45 * shadow)[..., None]
        zbuf = np.full((self.res, self.res), np.inf)
        for a, b, radius, colour in parts:
            self._capsule(img, zbuf, a, b, radius, colour)
        return to_uint8(img)


# ----------------------------------------------------------------------------------------------
# The environment
# ----------------------------------------------------------------------------------------------


def _positive(name: str, value: Any, allow_zero: bool = False, maximum: float = 1e3) -> float:
    """A physical constant in (0, maximum] (or [0, maximum]): larger ones overflow the integrator to NaN."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero) or value > maximum:
        bound = f"in [0, {maximum:g}]" if allow_zero else f"in (0, {maximum:g}]"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


class ReacherEnv(SymmetricEnv):
    """Two-link planar reacher in pixels (see the module docstring); D4-equivariant dynamics.

    ``goal``: ``None`` (a fixed default goal), a reachable ``(x, y)`` or ``"random"`` (new goal at
    every reset). ``camera``: ``"oblique"`` (perspective, shaded) or ``"top"`` (exactly symmetric).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": round(1.0 / DT)}
    goal_options = {"goal": "random"}
    task = "bring the fingertip to the goal (-distance - control cost)"
    #: the fingertip within this distance (world units; the arm reaches 2) of the goal reaches it
    goal_radius = 0.15

    def __init__(
        self,
        render_mode: str | None = None,
        resolution: int = 64,
        camera: str = "oblique",
        goal: str | Sequence[float] | None = None,
        link_lengths: Sequence[float] = (1.0, 1.0),
        gear: float = 5.0,
        damping: float = 1.0,
        ctrl_cost: float = 0.1,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or not 16 <= resolution <= 512:
            raise ValueError(f"resolution must be an int in 16..512 (64 or 128 recommended), got {resolution!r}")
        if not isinstance(camera, str) or camera not in CAMERAS:
            raise ValueError(f"camera must be one of {list(CAMERAS)}, got {camera!r}")
        if isinstance(link_lengths, str) or not hasattr(link_lengths, "__len__") or len(link_lengths) != 2:
            raise ValueError(f"link_lengths must be a pair of positive numbers, got {link_lengths!r}")
        lengths = tuple(_positive("link_lengths", v) for v in link_lengths)
        self.render_mode = render_mode
        self.resolution = int(resolution)
        self.camera = camera
        self.link_lengths: tuple[float, float] = (lengths[0], lengths[1])
        self.gear = _positive("gear", gear)
        self.damping = _positive("damping", damping)
        self.ctrl_cost = _positive("ctrl_cost", ctrl_cost, allow_zero=True)
        self.reach = lengths[0] + lengths[1]
        self.min_reach = abs(lengths[0] - lengths[1])
        self.random_goal = False
        if goal is None:  # 30 degrees, halfway across the reachable annulus
            radius = (self.reach + self.min_reach) / 2.0
            self.default_goal = radius * np.array([math.cos(math.pi / 6), math.sin(math.pi / 6)])
        elif isinstance(goal, str):
            if goal != "random":
                raise ValueError(f"goal must be None, 'random' or a reachable (x, y) pair, got {goal!r}")
            self.random_goal = True
            self.default_goal = None
        else:
            arr = np.asarray(goal)
            if arr.shape != (2,) or arr.dtype.kind not in "iuf" or not np.all(np.isfinite(arr)):
                raise ValueError(f"goal must be None, 'random' or a reachable (x, y) pair, got {goal!r}")
            self.default_goal = arr.astype(np.float64)
            self._check_goal(self.default_goal)

        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = spaces.Box(0, 255, (self.resolution, self.resolution, 6), np.uint8)
        angle = spaces.Box(-np.pi, np.pi, (2,), np.float64)
        self.state_space = spaces.Dict(
            {
                "qpos": angle,
                "qvel": spaces.Box(-MAX_SPEED, MAX_SPEED, (2,), np.float64),
                "prev_qpos": angle,
                "goal": spaces.Box(-self.reach, self.reach, (2,), np.float64),
            }
        )
        self.symmetry = ReacherSymmetry()
        geometry = _Geometry(self.link_lengths)
        renderer = TopRenderer if camera == "top" else ObliqueRenderer
        self._renderer = renderer(self.resolution, geometry)
        self._frames: dict[bytes, np.ndarray] = {}
        self._state: State = {}
        self._build_space()

    # -- physics ---------------------------------------------------------------------------

    def _build_space(self) -> None:
        """Create the pymunk space and the two link bodies (joints are made at every step)."""
        self._space = pymunk.Space()
        self._space.gravity = (0.0, 0.0)
        self._space.iterations = 20
        self._bodies = []
        for length in self.link_lengths:  # uniform rods of mass 1, centred on their body origin
            body = pymunk.Body(1.0, length * length / 12.0)
            self._bodies.append(body)
            self._space.add(body)

    def _load_bodies(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Put the bodies exactly where ``(qpos, qvel)`` says and add fresh (cold) joints."""
        l1, l2 = self.link_lengths
        b1, b2 = self._bodies
        phi1, phi2 = float(qpos[0]), float(qpos[0] + qpos[1])
        w1, w2 = float(qvel[0]), float(qvel[0] + qvel[1])
        c1, s1, c2, s2 = math.cos(phi1), math.sin(phi1), math.cos(phi2), math.sin(phi2)
        elbow = (l1 * c1, l1 * s1)
        b1.angle, b1.angular_velocity = phi1, w1
        b1.position = (0.5 * l1 * c1, 0.5 * l1 * s1)
        b1.velocity = (-w1 * 0.5 * l1 * s1, w1 * 0.5 * l1 * c1)
        b2.angle, b2.angular_velocity = phi2, w2
        b2.position = (elbow[0] + 0.5 * l2 * c2, elbow[1] + 0.5 * l2 * s2)
        b2.velocity = (-w1 * elbow[1] - w2 * 0.5 * l2 * s2, w1 * elbow[0] + w2 * 0.5 * l2 * c2)
        if self._space.constraints:
            self._space.remove(*self._space.constraints)
        self._space.add(
            pymunk.PivotJoint(self._space.static_body, b1, (0.0, 0.0), (-0.5 * l1, 0.0)),
            pymunk.PivotJoint(b1, b2, (0.5 * l1, 0.0), (-0.5 * l2, 0.0)),
        )

    def _check_action(self, action: Any) -> np.ndarray:
        return check_box_action(action, self.action_space)

    def _next_state(self, state: Mapping[str, np.ndarray], action: np.ndarray) -> State:
        qpos, qvel = self._simulate(state["qpos"], state["qvel"], action)
        return {"qpos": qpos, "qvel": qvel, "prev_qpos": state["qpos"], "goal": state["goal"]}

    def _simulate(self, qpos: np.ndarray, qvel: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integrate one env step from ``(qpos, qvel)``; return the new ``(qpos, qvel)``."""
        self._load_bodies(qpos, qvel)
        b1, b2 = self._bodies
        tau1, tau2 = self.gear * float(action[0]), self.gear * float(action[1])
        h = DT / SUBSTEPS
        for _ in range(SUBSTEPS):
            w1, w2 = b1.angular_velocity, b2.angular_velocity
            joint1 = tau1 - self.damping * w1
            joint2 = tau2 - self.damping * (w2 - w1)
            b1.torque = joint1 - joint2
            b2.torque = joint2
            self._space.step(h)
        qpos = wrap_angle(np.array([b1.angle, b2.angle - b1.angle]))
        w1, w2 = b1.angular_velocity, b2.angular_velocity
        qvel = np.clip(np.array([w1, w2 - w1]), -MAX_SPEED, MAX_SPEED)
        return qpos, qvel

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_space", "_bodies"):  # scratch simulator, rebuilt from the state at each step
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build_space()

    # -- Gymnasium API -----------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Random joint angles, small random velocities, and the (fixed or random) goal."""
        super().reset(seed=seed)
        self._check_reset_options(options)
        rng = self.np_random
        qpos = rng.uniform(-np.pi, np.pi, size=2)
        qvel = rng.uniform(-0.25, 0.25, size=2)
        goal = self._sample_goal(rng) if self.random_goal else self.default_goal.copy()
        self._state = {"qpos": qpos, "qvel": qvel, "prev_qpos": qpos.copy(), "goal": goal}
        self._started = True
        return self._observation(), self._info()

    def step(self, action: Any):
        """Apply joint torques ``gear * action`` for one step of ``DT``."""
        self._require_started("step")
        a = self._check_action(action)
        self._state = self._next_state(self._state, a)
        distance = self.distance()
        reward = -distance - self.ctrl_cost * float(a @ a)
        return self._observation(), reward, False, False, self._info(distance)

    def render(self) -> np.ndarray | None:
        """The current RGB frame (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            return None
        self._require_started("render")
        return self._frame(self._state["qpos"], self._state["goal"]).copy()

    # -- helpers -----------------------------------------------------------------------------

    def fingertip(self) -> np.ndarray:
        """World position of the fingertip."""
        self._require_started("fingertip")
        return forward_kinematics(self._state["qpos"], self.link_lengths)[1]

    def distance(self) -> float:
        """Distance from the fingertip to the goal."""
        return float(np.linalg.norm(self.fingertip() - self._state["goal"]))

    def goal_distance(self, states: Mapping[str, np.ndarray]) -> np.ndarray:
        """Fingertip-to-goal distance of each state of a batch (world units)."""
        l1, l2 = self.link_lengths
        q = np.asarray(states["qpos"], dtype=np.float64)
        tip = np.stack(
            [l1 * np.cos(q[:, 0]) + l2 * np.cos(q[:, 0] + q[:, 1]), l1 * np.sin(q[:, 0]) + l2 * np.sin(q[:, 0] + q[:, 1])],
            axis=1,
        )
        return np.linalg.norm(tip - np.asarray(states["goal"], dtype=np.float64), axis=1)

    def goal_observation(self) -> np.ndarray:
        """The arm at rest with its fingertip on the goal (:func:`reacher_goal_state`), rendered."""
        self._require_started("goal_observation")
        goal_state = reacher_goal_state(self)
        tip = forward_kinematics(goal_state["qpos"], self.link_lengths)[1]
        assert np.allclose(tip, goal_state["goal"], atol=1e-6), "inverse kinematics missed the goal"
        return self.observation_of(goal_state)

    def _info(self, distance: float | None = None) -> dict[str, Any]:
        return {"state": self.get_state(), "distance": self.distance() if distance is None else distance}

    def _sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        """A goal uniform (by area) in the inner part of the reachable annulus."""
        width = self.reach - self.min_reach
        lo, hi = self.min_reach + 0.1 * width, self.reach - 0.05 * width
        radius = math.sqrt(rng.uniform(lo * lo, hi * hi))
        angle = rng.uniform(-np.pi, np.pi)
        return radius * np.array([math.cos(angle), math.sin(angle)])

    def _check_goal(self, goal: np.ndarray) -> None:
        r = float(np.linalg.norm(goal))
        tol = 1e-9 * self.reach
        if not self.min_reach - tol <= r <= self.reach + tol:
            raise ValueError(
                f"goal {goal.tolist()} is not reachable: its distance {r:.4g} from the base must be "
                f"in [{self.min_reach:.4g}, {self.reach:.4g}] (link_lengths {list(self.link_lengths)})"
            )

    def _frame(self, qpos: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The RGB frame of ``qpos`` and ``goal``, from a small cache (each step renders one frame)."""
        key = qpos.tobytes() + goal.tobytes()
        frame = self._frames.get(key)
        if frame is None:
            frame = self._renderer.render(qpos, goal)
            if len(self._frames) >= 4:
                self._frames.pop(next(iter(self._frames)))
            self._frames[key] = frame
        return frame

    # -- SymmetricEnv hooks ------------------------------------------------------------------

    def _get_state(self) -> State:
        return self._state

    def _set_state(self, state: State) -> None:
        self._state = {k: np.array(v, dtype=np.float64, copy=True) for k, v in state.items()}

    def _check_state(self, state: State) -> None:
        self._check_goal(state["goal"])

    def _observation(self) -> np.ndarray:
        s = self._state
        return np.concatenate([self._frame(s["prev_qpos"], s["goal"]), self._frame(s["qpos"], s["goal"])], axis=-1)


__all__ = ["ReacherEnv", "ReacherSymmetry", "TopRenderer", "ObliqueRenderer", "wrap_angle", "forward_kinematics"]
