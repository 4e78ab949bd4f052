"""A D4-symmetric environment with continuous actions: a puck pushed around a square arena.

State: the puck's position and velocity and a goal position in ``[-1, 1]^2``; action: a force in
``[-1, 1]^2``. The walls stop the puck (the position is clipped, the velocity across the wall is
zeroed). Rotating the arena by quarter turns or reflecting it maps positions, velocities, goal *and
forces* by the same 2x2 matrix: the actions transform by D4's standard 2-dimensional
representation (Reacher's torques, by contrast, only change sign). symwm recovers that
representation from ``act_on_action`` on the basis forces and builds its generic ``planar`` model::

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

SIZE, DT, DRAG, REACH = 32, 0.1, 0.8, 0.1  # image pixels, time step, velocity kept per step, goal radius
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
        self.state_space = spaces.Dict({"position": box, "velocity": spaces.Box(-10.0, 10.0, (2,), np.float64), "goal": box})
        self.symmetry = PuckSymmetry()
        self._state: dict = {}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._check_reset_options(options)
        position, goal = self.np_random.uniform(-0.9, 0.9, (2, 2))
        self._set_state({"position": position, "velocity": np.zeros(2), "goal": goal})
        self._started = True
        return self._observation(), {"state": self.get_state()}

    def step(self, action: Any):
        self._require_started("step")
        self._state = self._next_state(self._state, self._check_action(action))
        distance = float(self.goal_distance({k: v[None] for k, v in self._state.items()})[0])
        return self._observation(), -distance, distance < REACH, False, {"state": self.get_state()}

    def goal_distance(self, states: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.linalg.norm(np.asarray(states["position"]) - np.asarray(states["goal"]), axis=-1)

    def goal_observation(self) -> np.ndarray:
        return self._draw(self._state["goal"], self._state["goal"])

    def _get_state(self) -> dict:
        return self._state

    def _set_state(self, state: dict) -> None:
        self._state = {k: np.array(v, dtype=np.float64) for k, v in state.items()}

    def _check_action(self, action: Any) -> np.ndarray:
        return check_box_action(action, self.action_space)

    def _next_state(self, state: Mapping[str, np.ndarray], action: np.ndarray) -> dict:
        velocity = DRAG * np.asarray(state["velocity"]) + DT * np.asarray(action)
        moved = np.asarray(state["position"]) + DT * velocity
        position = np.clip(moved, -1.0, 1.0)
        velocity = np.where(position != moved, 0.0, velocity)  # a wall stops the motion across it
        return {"position": position, "velocity": velocity, "goal": np.array(state["goal"])}

    def _draw(self, position: np.ndarray, goal: np.ndarray) -> np.ndarray:
        yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5
        image = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
        image[..., 2] = 40  # the arena
        for point, channel, radius in ((goal, 1, 2.5), (position, 0, 2.0)):
            px, py = (point[0] + 1) * SIZE / 2, (1 - point[1]) * SIZE / 2  # y up
            image[..., channel][(xx - px) ** 2 + (yy - py) ** 2 <= radius**2] = 255
        return image

    def _observation(self) -> np.ndarray:
        return self._draw(self._state["position"], self._state["goal"])


if "Puck-v0" not in gym.registry:
    gym.register("Puck-v0", entry_point=f"{__name__}:PuckEnv", max_episode_steps=100)  # a string: specs stay JSON (Minari)
