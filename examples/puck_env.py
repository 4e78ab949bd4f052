"""A D4-symmetric environment with continuous actions: a puck pushed around a square arena.

State: the puck's position and a goal position in ``[-1, 1]^2``; action: a push in ``[-1, 1]^2``.
The puck slides through a thick fluid: it moves ``STEP`` times the push and stops (no momentum, so
one image shows the whole state), and the walls stop it (the position is clipped). Rotating the
arena by quarter turns or reflecting it maps position, goal *and pushes* by the same 2x2 matrix: the
actions transform by D4's standard 2-dimensional representation (Reacher's torques, by contrast,
only change sign). symwm recovers that representation from ``act_on_action`` on the basis pushes
and builds its generic ``planar`` model.

The image shows the puck only (anti-aliased, so that sub-pixel moves change it). The goal is part
of the state and comes as an image of its own, ``info["goal_image"]`` (the puck drawn on the goal),
as in symwm's grid worlds: a goal marker drawn into every frame lets a contrastive world model tell
episodes apart without encoding what moves::

    symwm check   --env puck_env:Puck-v0
    symwm collect --env puck_env:Puck-v0 --out train.h5 --episodes 1000 --steps 10
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from symwm.envs import Dihedral, EnvSymmetry, SymmetricEnv
from symwm.envs.symmetry import check_box_action

SIZE, STEP, RADIUS, REACH = 32, 0.15, 2.5, 0.1  # image pixels, move per unit push, puck radius (pixels), goal radius
D4 = Dihedral(4, reflections=True)


class PuckSymmetry(EnvSymmetry):
    """D4 acting on every vector of the state and on the force by its 2x2 matrices."""

    def __init__(self) -> None:
        self.group = self.action_group = D4

    def act_on_state(self, g: Any, state: Mapping[str, np.ndarray]) -> dict:
        m = D4.matrix(g)
        return {key: m @ np.asarray(value, dtype=np.float64) for key, value in state.items()}

    def act_on_action(self, g: Any, action: Any) -> np.ndarray:
        return D4.matrix(g) @ np.asarray(action, dtype=np.float64)


class PuckEnv(SymmetricEnv):
    """Push the puck to the goal: reward ``-distance``, the episode ends within ``REACH``."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
        box = spaces.Box(-1.0, 1.0, (2,), np.float64)
        self.state_space = spaces.Dict({"position": box, "goal": box})
        self.symmetry = PuckSymmetry()
        self._state: dict = {}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._check_reset_options(options)
        position, goal = self.np_random.uniform(-0.9, 0.9, (2, 2))
        self._set_state({"position": position, "goal": goal})
        self._started = True
        return self._observation(), self._info()

    def step(self, action: Any):
        self._require_started("step")
        self._state = self._next_state(self._state, self._check_action(action))
        distance = float(self.goal_distance({k: v[None] for k, v in self._state.items()})[0])
        return self._observation(), -distance, distance < REACH, False, self._info()

    def goal_distance(self, states: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.linalg.norm(np.asarray(states["position"]) - np.asarray(states["goal"]), axis=-1)

    def goal_observation(self) -> np.ndarray:
        return self._draw(self._state["goal"])

    def _info(self) -> dict:
        return {"state": self.get_state(), "goal_image": self.goal_observation()}

    def _get_state(self) -> dict:
        return self._state

    def _set_state(self, state: dict) -> None:
        self._state = {k: np.array(v, dtype=np.float64) for k, v in state.items()}

    def _check_action(self, action: Any) -> np.ndarray:
        return check_box_action(action, self.action_space)

    def _next_state(self, state: Mapping[str, np.ndarray], action: np.ndarray) -> dict:
        position = np.clip(np.asarray(state["position"]) + STEP * np.asarray(action), -1.0, 1.0)  # the walls stop it
        return {"position": position, "goal": np.array(state["goal"])}

    def _draw(self, position: np.ndarray) -> np.ndarray:
        yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5
        image = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
        image[..., 2] = 40  # the arena
        px, py = (position[0] + 1) * SIZE / 2, (1 - position[1]) * SIZE / 2  # y up
        coverage = np.clip(RADIUS + 0.5 - np.hypot(xx - px, yy - py), 0.0, 1.0)  # anti-aliased edge
        image[..., 0] = np.round(255 * coverage).astype(np.uint8)
        return image

    def _observation(self) -> np.ndarray:
        return self._draw(self._state["position"])


if "Puck-v0" not in gym.registry:
    gym.register("Puck-v0", entry_point=f"{__name__}:PuckEnv", max_episode_steps=100)  # a string: specs stay JSON (Minari)
