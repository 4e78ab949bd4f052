"""Rotating object: turn a chiral 3D "molecule" until it matches a goal orientation (the paper's 3D Teapot).

**Object.** A central ball (the rotation centre) with four arms in a distorted tetrahedral
arrangement. Each arm is a stick ending in a ball; the four arms differ in direction, length,
ball radius and brightness, so the object has no rotational symmetry, and since the three longest
arms are not coplanar with the centre it is chiral (not congruent to its mirror image). Model
coordinates are fixed (:data:`ARM_DIRECTIONS` etc.); orientation ``R`` puts model point ``p`` at
world point ``R @ p``.

**Camera.** Orthographic, looking down the world -z axis, x to the right and y up, spanning
``[-EXTENT, EXTENT]``; the whole object fits in view in every orientation. Each pixel shoots a ray
along -z; spheres and the sticks (finite cylinders) are intersected analytically, vectorised over
the pixels of each primitive's bounding box, with a z-buffer. Shading is Lambertian from a fixed
directional light plus ambient, times the primitive's brightness and a mild depth cue (nearer is
brighter); the background is black. Observation: a ``resolution x resolution x 1`` uint8 image.

**State.** ``orientation`` (3x3 rotation matrix, the object's pose) and ``target`` (3x3 rotation
matrix, the goal pose). ``set_state`` rejects non-rotations and re-orthonormalises (SVD) the rest.

**Actions.** ``actions="small"``: ``Discrete(6)``, rotations by ``2 pi / 30`` (12 degrees) about
the world axes +x, -x, +y, -y, +z, -z, in that order. ``actions="continuous"``:
``Box(-max_angle, max_angle, (3,))``, an axis-angle rotation vector ``v`` (angle ``|v|``), first
rescaled to norm ``max_angle`` if longer (default ``max_angle = 3 * 2 pi / 30``, i.e. 36
degrees). Either way the rotation ``A`` acts in the world frame: ``R' = A R``.

**Task.** Reset draws ``R`` and ``target`` independently from the Haar measure (redrawing the target
while it is within ``goal_tolerance``). Reward: ``-d(R', target)``, the geodesic distance in radians
(also on the terminal step); the episode terminates when ``d < goal_tolerance``. ``info`` has
``state``, ``distance`` and ``goal_image`` (the observation of the target pose).

**Symmetry.** The group SO(3) acts on states by ``R -> g R``, ``target -> g target`` and on
actions by conjugation ``A -> g A g^-1``, i.e. a rotation vector ``v -> g v`` (after the norm
rescaling). The dynamics are equivariant and the reward, a bi-invariant distance, is invariant.
For ``actions="small"`` the conjugate of an axis rotation is again one only when ``g`` permutes
the signed axes, so the ``action_group`` is the octahedral group (24 rotations); for
``actions="continuous"`` it is all of SO(3).
"""

from __future__ import annotations

import numbers
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from symwm.envs.groups import (
    SO3,
    Octahedral,
    geodesic_distance,
    geodesic_distances,
    is_rotation_matrix,
    rotation_from_vector,
)
from symwm.envs.rendering import pixel_centres, to_uint8
from symwm.envs.symmetry import (
    EnvSymmetry,
    State,
    SymmetricEnv,
    check_box_action,
    check_discrete_action,
)

# -- the model (object coordinates, rotation centre at the origin) -----------------------------

#: unit directions of the four arms (a distorted tetrahedron)
ARM_DIRECTIONS = np.array(
    [[1.0, 0.9, 1.1], [1.1, -1.0, -0.8], [-0.9, 1.2, -1.0], [-1.0, -1.0, 0.9]]
)
ARM_DIRECTIONS = ARM_DIRECTIONS / np.linalg.norm(ARM_DIRECTIONS, axis=1, keepdims=True)
#: distance from the centre to each arm's end ball
ARM_LENGTHS = np.array([0.78, 0.66, 0.55, 0.45])
#: radius of each arm's end ball
ARM_BALL_RADII = np.array([0.19, 0.15, 0.17, 0.11])
#: brightness (albedo) of each arm's end ball
ARM_ALBEDOS = np.array([1.0, 0.78, 0.56, 0.36])
CORE_RADIUS = 0.24
CORE_ALBEDO = 0.7
STICK_RADIUS = 0.05
STICK_ALBEDO = 0.85
#: half-width of the orthographic view; every point of the object is within 0.97 of the centre
EXTENT = 1.02

LIGHT = np.array([-0.5, 0.6, 0.8]) / np.linalg.norm([-0.5, 0.6, 0.8])
AMBIENT, DIFFUSE = 0.25, 0.75

#: signed world axes of the small actions, in action order: +x, -x, +y, -y, +z, -z
SMALL_AXES = np.array(
    [[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0], [0, 0, 1.0], [0, 0, -1.0]]
)
SMALL_ANGLE = 2.0 * np.pi / 30.0
DEFAULT_MAX_ANGLE = 3.0 * SMALL_ANGLE

ACTION_MODES = ("small", "continuous")
_MATRIX_KEYS = ("orientation", "target")


def arm_end_points() -> np.ndarray:
    """Model coordinates of the four end-ball centres, shape (4, 3)."""
    return ARM_DIRECTIONS * ARM_LENGTHS[:, None]


def orthonormalise(r: np.ndarray) -> np.ndarray:
    """The rotation nearest to ``r`` (polar factor via SVD), entries clipped to [-1, 1]."""
    u, _, vt = np.linalg.svd(r)
    return np.clip(u @ vt, -1.0, 1.0)


class RotationSymmetry(EnvSymmetry):
    """SO(3) acting by left multiplication on poses and by conjugation on rotation actions."""

    def __init__(self, actions: str = "small", max_angle: float = DEFAULT_MAX_ANGLE):
        if actions not in ACTION_MODES:
            raise ValueError(f"actions must be one of {list(ACTION_MODES)}, got {actions!r}")
        self.actions = actions
        self.max_angle = float(np.float32(max_angle))  # as the env: the float32 box bound
        self.group = SO3()
        self.action_group = Octahedral() if actions == "small" else SO3()
        if actions == "small":
            self._action_space: spaces.Space = spaces.Discrete(len(SMALL_AXES))
        else:
            self._action_space = _continuous_space(self.max_angle)

    def _check_group_element(self, g: Any) -> np.ndarray:
        if not self.group.contains(g):
            raise ValueError(
                f"g must be an element of {self.group.name} (a 3x3 float rotation matrix), got {g!r}"
            )
        return np.asarray(g, dtype=np.float64)

    def act_on_state(self, g: Any, state: Mapping[str, np.ndarray]) -> State:
        """The state with ``orientation -> g @ orientation`` and ``target -> g @ target``."""
        g = self._check_group_element(g)
        return {key: g @ np.asarray(state[key], dtype=np.float64) for key in _MATRIX_KEYS}

    def act_on_action(self, g: Any, action: Any) -> Any:
        """The conjugated action ``g A g^-1``: an action index (small) or ``g @ v`` (continuous)."""
        g = self._check_group_element(g)
        if self.actions == "continuous":
            v = clip_rotation_vector(check_box_action(action, self._action_space), self.max_angle)
            return g @ v  # float64: |g v| = |v| <= max_angle, so it stays in the box
        a = check_discrete_action(action, self._action_space)
        if not self.action_group.contains(g):
            raise ValueError(
                "g does not map the discrete action set to itself: with actions='small' only the "
                "24 rotations of symmetry.action_group (the octahedral group) permute the axis "
                "rotations; use actions='continuous' for the full SO(3) action"
            )
        axis = g @ SMALL_AXES[a]
        return int(np.argmax(SMALL_AXES @ axis))  # the signed axis with dot product 1


def clip_rotation_vector(v: np.ndarray, max_angle: float) -> np.ndarray:
    """``v`` rescaled to norm ``max_angle`` if it is longer (commutes with rotations)."""
    norm = float(np.linalg.norm(v))
    return v * (max_angle / norm) if norm > max_angle else v


def _continuous_space(max_angle: float) -> spaces.Box:
    return spaces.Box(-max_angle, max_angle, (3,), np.float32)


class RotatingObjectEnv(SymmetricEnv):
    """Rotate a chiral molecule-like object into a target orientation; SO(3)-symmetric."""

    task = "reach a target orientation (-geodesic distance)"
    pose_key = "orientation"  # SO(3) acts on it by left multiplication (hard negatives, pose error)

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        render_mode: str | None = None,
        actions: str = "small",
        max_angle: float = DEFAULT_MAX_ANGLE,
        resolution: int = 64,
        goal_tolerance: float = 0.25,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        if actions not in ACTION_MODES:
            raise ValueError(f"actions must be one of {list(ACTION_MODES)}, got {actions!r}")
        if not _is_real(max_angle) or not 0.0 < max_angle <= np.pi:
            raise ValueError(f"max_angle must be a number in (0, pi] radians, got {max_angle!r}")
        if not _is_real(goal_tolerance) or not 0.0 < goal_tolerance < np.pi:
            raise ValueError(f"goal_tolerance must be a number in (0, pi) radians, got {goal_tolerance!r}")
        if not isinstance(resolution, numbers.Integral) or isinstance(resolution, bool) or not 16 <= resolution <= 512:
            raise ValueError(f"resolution must be an integer in 16..512, got {resolution!r}")

        self.render_mode = render_mode
        self.actions = actions
        # the float32 box bound and the norm bound must coincide exactly for exact equivariance
        self.max_angle = float(np.float32(max_angle))
        self.resolution = int(resolution)
        self.goal_tolerance = float(goal_tolerance)

        self.observation_space = spaces.Box(0, 255, (self.resolution, self.resolution, 1), np.uint8)
        if actions == "small":
            self.action_space = spaces.Discrete(len(SMALL_AXES))
        else:
            self.action_space = _continuous_space(self.max_angle)
        unit = spaces.Box(-1.0, 1.0, (3, 3), np.float64)
        self.state_space = spaces.Dict({"orientation": unit, "target": unit})
        self.symmetry = RotationSymmetry(actions, self.max_angle)

        #: the rotation vector of each Discrete action (the SO(3) action contract; None for continuous rotation vectors)
        self.action_rotation_vectors: np.ndarray | None = SMALL_ANGLE * SMALL_AXES if actions == "small" else None
        self._small_rotations = np.stack([rotation_from_vector(SMALL_ANGLE * a) for a in SMALL_AXES])
        xs, ys = pixel_centres(self.resolution, EXTENT)
        self._xs = np.ascontiguousarray(xs[0])  # column centres, left to right
        self._ys = np.ascontiguousarray(ys[:, 0])  # row centres, top to bottom
        self._pixel = 2.0 * EXTENT / self.resolution
        self._orientation = np.eye(3)
        self._target = np.eye(3)
        self._goal_key: bytes | None = None
        self._goal_obs: np.ndarray | None = None

    # -- SymmetricEnv hooks ----------------------------------------------------------------

    def _check_action(self, action: Any) -> np.ndarray:
        """The action's rotation matrix (small: the axis rotation; continuous: the norm-clipped vector's)."""
        if self.actions == "small":
            return self._small_rotations[check_discrete_action(action, self.action_space)]
        return rotation_from_vector(clip_rotation_vector(check_box_action(action, self.action_space), self.max_angle))

    def _next_state(self, state: Mapping[str, np.ndarray], rotation: np.ndarray) -> State:
        return {"orientation": orthonormalise(rotation @ state["orientation"]), "target": state["target"]}

    def _get_state(self) -> State:
        return {"orientation": self._orientation, "target": self._target}

    def _set_state(self, state: State) -> None:
        self._orientation = np.array(state["orientation"], dtype=np.float64)
        self._target = np.array(state["target"], dtype=np.float64)

    def _check_state(self, state: State) -> None:
        for key in _MATRIX_KEYS:
            r = state[key]
            if not is_rotation_matrix(r):
                raise ValueError(
                    f"invalid state: {key!r} is not a rotation matrix (need R^T R = I and det R = +1; "
                    f"got det {np.linalg.det(r):.6g}, max |R^T R - I| = "
                    f"{np.max(np.abs(r.T @ r - np.eye(3))):.3g})"
                )
            state[key] = orthonormalise(r)

    def _observation(self) -> np.ndarray:
        return self.render_orientation(self._orientation)

    # -- Gymnasium API ---------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw a Haar-uniform pose and a Haar-uniform target at least ``goal_tolerance`` away."""
        super().reset(seed=seed)
        self._check_reset_options(options)
        so3 = self.symmetry.group
        self._orientation = so3.sample(self.np_random)
        self._target = so3.sample(self.np_random)
        while geodesic_distance(self._orientation, self._target) < self.goal_tolerance:
            self._target = so3.sample(self.np_random)
        self._started = True
        return self._observation(), self._info(self.distance())

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Rotate the object by the action (in the world frame); reward ``-distance`` to the target."""
        self._require_started("step")
        self._orientation = self._next_state(self._get_state(), self._check_action(action))["orientation"]
        distance = self.distance()
        terminated = distance < self.goal_tolerance
        return self._observation(), -distance, terminated, False, self._info(distance)

    def render(self) -> np.ndarray | None:
        """The current frame as an RGB ``(resolution, resolution, 3)`` uint8 image."""
        if self.render_mode is None:
            gym.logger.warn(
                "RotatingObjectEnv.render() called without a render_mode; "
                "pass render_mode='rgb_array' to the constructor"
            )
            return None
        self._require_started("render")
        return np.repeat(self._observation(), 3, axis=2)

    # -- helpers ---------------------------------------------------------------------------

    def distance(self) -> float:
        """Geodesic distance (radians) from the current orientation to the target."""
        return geodesic_distance(self._orientation, self._target)

    def goal_distance(self, states: Mapping[str, np.ndarray]) -> np.ndarray:
        """Geodesic distance (radians) between each state's orientation and its target."""
        return geodesic_distances(states["orientation"], states["target"])

    def goal_observation(self) -> np.ndarray:
        """The object at its target orientation (``info["goal_image"]``)."""
        self._require_started("goal_observation")
        return self.goal_image()

    def goal_image(self) -> np.ndarray:
        """The observation of the target orientation (cached per target)."""
        key = self._target.tobytes()
        if self._goal_key != key or self._goal_obs is None:
            self._goal_obs = self.render_orientation(self._target)
            self._goal_key = key
        return self._goal_obs.copy()

    def _info(self, distance: float) -> dict[str, Any]:
        return {"state": self.get_state(), "distance": distance, "goal_image": self.goal_image()}

    def render_orientation(self, rotation: np.ndarray) -> np.ndarray:
        """Grayscale uint8 image ``(resolution, resolution, 1)`` of the object in pose ``rotation``."""
        res = self.resolution
        zbuf = np.full((res, res), -np.inf)
        image = np.zeros((res, res))
        ends = arm_end_points() @ rotation.T  # (4, 3) world centres of the end balls
        dirs = ARM_DIRECTIONS @ rotation.T
        self._draw_sphere(zbuf, image, np.zeros(3), CORE_RADIUS, CORE_ALBEDO)
        for i in range(len(ARM_LENGTHS)):
            self._draw_stick(zbuf, image, dirs[i], ARM_LENGTHS[i])
            self._draw_sphere(zbuf, image, ends[i], ARM_BALL_RADII[i], ARM_ALBEDOS[i])
        return to_uint8(image)[:, :, None]

    def _window(self, lo_x: float, hi_x: float, lo_y: float, hi_y: float) -> tuple[slice, slice]:
        """Row and column slices of the pixels whose centres may lie in the given world box."""
        res, p = self.resolution, self._pixel
        c0 = max(int(np.floor((lo_x + EXTENT) / p)), 0)
        c1 = min(int(np.ceil((hi_x + EXTENT) / p)) + 1, res)
        r0 = max(int(np.floor((EXTENT - hi_y) / p)), 0)
        r1 = min(int(np.ceil((EXTENT - lo_y) / p)) + 1, res)
        return slice(r0, r1), slice(c0, c1)

    def _shade(
        self,
        zbuf: np.ndarray,
        image: np.ndarray,
        rows: slice,
        cols: slice,
        hit: np.ndarray,
        z: np.ndarray,
        lambert: np.ndarray,
        albedo: float,
    ) -> None:
        """Z-buffered write of Lambertian intensities into ``image[rows, cols]``."""
        zsub = zbuf[rows, cols]
        mask = hit & (z > zsub)
        depth_cue = 0.8 + 0.2 * (z / EXTENT)  # in [0.6, 1.0]
        value = albedo * (AMBIENT + DIFFUSE * np.maximum(lambert, 0.0)) * depth_cue
        np.copyto(zsub, z, where=mask)
        np.copyto(image[rows, cols], value, where=mask)

    def _draw_sphere(
        self, zbuf: np.ndarray, image: np.ndarray, c: np.ndarray, r: float, albedo: float
    ) -> None:
        rows, cols = self._window(c[0] - r, c[0] + r, c[1] - r, c[1] + r)
        dx = self._xs[cols][None, :] - c[0]
        dy = self._ys[rows][:, None] - c[1]
        h2 = r * r - (dx * dx + dy * dy)
        hit = h2 >= 0.0
        dz = np.sqrt(np.maximum(h2, 0.0))
        lambert = (dx * LIGHT[0] + dy * LIGHT[1] + dz * LIGHT[2]) * (1.0 / r)
        self._shade(zbuf, image, rows, cols, hit, c[2] + dz, lambert, albedo)

    def _draw_stick(self, zbuf: np.ndarray, image: np.ndarray, u: np.ndarray, length: float) -> None:
        """The cylinder from the origin along unit ``u``; its flat ends are hidden inside the balls."""
        a2 = 1.0 - u[2] * u[2]  # squared length of the axis' projection onto the image
        if a2 < 1e-6:  # seen end-on: covered by the end ball or the core
            return
        rs = STICK_RADIUS
        b = u * length
        rows, cols = self._window(
            min(0.0, b[0]) - rs, max(0.0, b[0]) + rs, min(0.0, b[1]) - rs, max(0.0, b[1]) + rs
        )
        wx = self._xs[cols][None, :]
        wy = self._ys[rows][:, None]
        k = wx * u[0] + wy * u[1]  # axial coordinate of the pixel's z = 0 point
        # ray point (wx, wy, s): |w|^2 - (w.u)^2 = rs^2  <=>  a2 s^2 - 2 uz k s + (wx^2 + wy^2 - k^2 - rs^2) = 0
        bq = u[2] * k
        disc = bq * bq - a2 * (wx * wx + wy * wy - k * k - rs * rs)
        s = (bq + np.sqrt(np.maximum(disc, 0.0))) * (1.0 / a2)  # the front (larger z) root
        t = k + s * u[2]
        hit = (disc >= 0.0) & (t >= 0.0) & (t <= length)
        nx, ny, nz = wx - t * u[0], wy - t * u[1], s - t * u[2]
        lambert = (nx * LIGHT[0] + ny * LIGHT[1] + nz * LIGHT[2]) * (1.0 / rs)
        self._shade(zbuf, image, rows, cols, hit, s, lambert, STICK_ALBEDO)


def _is_real(value: Any) -> bool:
    """Whether ``value`` is a finite real number (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and bool(np.isfinite(value))

