"""A C6-symmetric environment of one's own: a token on a hexagonal board, six discrete moves.

The board is the hexagon of cells within ``RADIUS`` steps of the centre (cube coordinates
``x + y + z = 0``). Action ``d`` moves the token one cell in direction ``d`` (0..5,
counter-clockwise); a move off the board is a no-op. Rotating the board by 60 degrees maps the
board to itself and direction ``d`` to ``d + 1``, so the dynamics commute with C6. The group and its
actions are declared in :class:`HexSymmetry`; symwm derives the permutation representation on
the six actions from ``act_on_action`` and picks its generic ``planar`` model family.

The image shows the token only. The goal cell is part of the state and comes as an image of its
own, ``info["goal_image"]`` (the token drawn on the goal; ``goal_observation``), as in symwm's grid
worlds: content drawn into every frame that no action changes (a goal marker) lets a contrastive
world model tell episodes apart without encoding what moves, and it then learns nothing of the
dynamics. The goal task (``goal_distance``, ``goal_observation``) lets symwm's planners reach the
goal cell, and ``symwm.agents.sb3.GoalImageObservation`` shows it to a pixel agent::

    symwm check   --env hex_env:HexToken-v0
    symwm collect --env hex_env:HexToken-v0 --out train.h5 --episodes 1000 --steps 5
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from symwm.envs import Dihedral, EnvSymmetry, SymmetricEnv
from symwm.envs.symmetry import check_discrete_action

RADIUS, SIZE = 3, 32  # board radius in cells, image size in pixels
DIRECTIONS = np.array([[1, -1, 0], [1, 0, -1], [0, 1, -1], [-1, 1, 0], [-1, 0, 1], [0, -1, 1]])  # cube coordinates


def rotate(cells: np.ndarray, k: int) -> np.ndarray:
    """Cube coordinates turned by ``k`` sixths of a turn: (x, y, z) -> (-y, -z, -x) per step (direction d -> d + 1)."""
    out = np.asarray(cells, dtype=np.int64)
    for _ in range(k % 6):
        out = -out[..., [1, 2, 0]]
    return out


def draw_discs(cells: Any) -> np.ndarray:
    """A ``SIZE x SIZE`` RGB image with a disc on each cell, the i-th in colour channel i."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    image = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    for channel, cell in enumerate(cells):
        px = SIZE / 2 + 2.4 * np.sqrt(3) * (cell[0] + cell[2] / 2)  # axial (q = x, r = z) to pixels
        py = SIZE / 2 + 2.4 * 1.5 * cell[2]
        image[..., channel][(xx - px) ** 2 + (yy - py) ** 2 <= 2.2**2] = 255
    return image


class HexSymmetry(EnvSymmetry):
    """C6: turns of the board by multiples of 60 degrees, acting on the token, the goal and the moves."""

    def __init__(self) -> None:
        self.group = self.action_group = Dihedral(6)

    def act_on_state(self, g: Any, state: Mapping[str, np.ndarray]) -> dict:
        return {key: rotate(value, g.rotation) for key, value in state.items()}

    def act_on_action(self, g: Any, action: Any) -> int:
        return (int(action) + g.rotation) % 6


class HexTokenEnv(SymmetricEnv):
    """Move a token across a hexagonal board towards a goal cell (reward 1 and the end on arrival)."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.action_space = spaces.Discrete(6)
        self.observation_space = spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
        cell = spaces.Box(-RADIUS, RADIUS, (3,), np.int64)
        self.state_space = spaces.Dict({"token": cell, "goal": cell})
        self.symmetry = HexSymmetry()
        self.cells = np.array([c for c in np.ndindex(*(2 * RADIUS + 1,) * 3) if sum(c) == 3 * RADIUS]) - RADIUS
        self._state: dict = {}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._check_reset_options(options)
        token, goal = self.cells[self.np_random.choice(len(self.cells), 2, replace=False)]
        self._set_state({"token": token, "goal": goal})
        self._started = True
        return self._observation(), self._info()

    def step(self, action: Any):
        self._require_started("step")
        self._state = self._next_state(self._state, self._check_action(action))
        done = bool((self._state["token"] == self._state["goal"]).all())
        return self._observation(), float(done), done, False, self._info()

    def goal_distance(self, states: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.abs(np.asarray(states["token"]) - np.asarray(states["goal"])).max(axis=-1).astype(np.float64)

    def goal_observation(self) -> np.ndarray:
        return self._draw(self._state["goal"])

    def _info(self) -> dict:
        return {"state": self.get_state(), "goal_image": self.goal_observation()}

    def _get_state(self) -> dict:
        return self._state

    def _set_state(self, state: dict) -> None:
        self._state = {k: np.array(v, dtype=np.int64) for k, v in state.items()}

    def _check_state(self, state: dict) -> None:
        for key, cell in state.items():
            if cell.sum() != 0 or np.abs(cell).max() > RADIUS:
                raise ValueError(f"invalid state: {key} {cell.tolist()} is not a cell of the board")

    def _check_action(self, action: Any) -> int:
        return check_discrete_action(action, self.action_space)

    def _next_state(self, state: Mapping[str, np.ndarray], action: int) -> dict:
        moved = np.asarray(state["token"]) + DIRECTIONS[action]
        token = moved if np.abs(moved).max() <= RADIUS else np.asarray(state["token"])
        return {"token": np.array(token), "goal": np.array(state["goal"])}

    def _draw(self, token: np.ndarray) -> np.ndarray:
        return draw_discs([token])

    def _observation(self) -> np.ndarray:
        return self._draw(self._state["token"])


if "HexToken-v0" not in gym.registry:
    gym.register("HexToken-v0", entry_point=f"{__name__}:HexTokenEnv", max_episode_steps=50)  # a string: specs stay JSON (Minari)
