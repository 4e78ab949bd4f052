"""A symmetric environment of one's own, taken end to end by symwm without editing symwm.

Two tokens move on a 6x6 *torus* (a step off one edge comes back on the other) and may share a
cell. The dynamics commute with quarter turns of the board and with swapping the tokens, so the
group is ``C4 x S2``; its action on states and actions is written here, once, in
:class:`TorusSymmetry`. Registering the environment with gymnasium is all symwm needs::

    symwm check   --env custom_env:TorusTokens-v0
    symwm collect --env custom_env:TorusTokens-v0 --out runs/torus/train.h5 --episodes 1000 --steps 10
    symwm collect --env custom_env:TorusTokens-v0 --out runs/torus/eval.h5 --episodes 200 --twins quarter-turn --seed 1
    symwm train   --env custom_env:TorusTokens-v0 --dataset runs/torus/train.h5 --out-dir runs/torus/ours
    symwm eval runs/torus/ours/best.pt --dataset runs/torus/eval.h5 --horizon 5

(run from this directory, or with it on ``PYTHONPATH``: ``custom_env:`` makes gymnasium import this
module, which registers the id). The model family is chosen from what the environment declares:
a ``planar x permutations`` symmetry, ``n_objects``, ``Discrete(4 n_objects)`` actions and square
images are the grid family's contract (``symwm.world_models.models.grid.supports``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from symwm.envs import Dihedral, DirectProduct, EnvSymmetry, Symmetric, SymmetricEnv
from symwm.envs.groups import direction_transform, grid_cell_transform
from symwm.envs.symmetry import check_discrete_action

SIZE, TOKENS, CELL = 6, 2, 4  # board cells, tokens, pixels per cell
MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])  # up, right, down, left as (drow, dcol)
COLORS = np.array([[230, 60, 60], [60, 90, 230]], dtype=np.uint8)


class TorusSymmetry(EnvSymmetry):
    """Quarter turns of the board times token swaps, acting on positions and on actions."""

    def __init__(self) -> None:
        self.planar, self.permutations = Dihedral(4), Symmetric(TOKENS)
        self.group = self.action_group = DirectProduct(self.planar, self.permutations)

    def act_on_state(self, g: Any, state: dict) -> dict:
        planar, perm = g
        moved = grid_cell_transform(planar, np.asarray(state["positions"]), SIZE)
        return {"positions": self.permutations.permute(perm, moved, axis=0)}

    def act_on_action(self, g: Any, action: Any) -> int:
        planar, perm = g
        token, motion = divmod(int(action), 4)
        return 4 * perm.perm[token] + int(direction_transform(planar, motion))


class TorusTokensEnv(SymmetricEnv):
    """Move token ``a // 4`` by motion ``a % 4`` (up, right, down, left), wrapping at the edges."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.n_objects = TOKENS
        self.action_space = spaces.Discrete(4 * TOKENS)
        self.observation_space = spaces.Box(0, 255, (SIZE * CELL, SIZE * CELL, 3), np.uint8)
        self.state_space = spaces.Dict({"positions": spaces.Box(0, SIZE - 1, (TOKENS, 2), np.int64)})
        self.symmetry = TorusSymmetry()
        self._state: dict = {}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._check_reset_options(options)
        self._set_state({"positions": self.np_random.integers(0, SIZE, (TOKENS, 2))})
        self._started = True
        return self._observation(), {"state": self.get_state()}

    def step(self, action: Any):
        self._require_started("step")
        self._state = self._next_state(self._state, self._check_action(action))
        return self._observation(), 0.0, False, False, {"state": self.get_state()}

    def _get_state(self) -> dict:
        return self._state

    def _set_state(self, state: dict) -> None:
        self._state = {"positions": np.array(state["positions"], dtype=np.int64)}

    def _check_action(self, action: Any) -> int:
        return check_discrete_action(action, self.action_space)

    def _next_state(self, state: dict, action: int) -> dict:
        token, motion = divmod(action, 4)
        positions = np.array(state["positions"], dtype=np.int64)
        positions[token] = (positions[token] + MOVES[motion]) % SIZE
        return {"positions": positions}

    def _observation(self) -> np.ndarray:
        image = np.zeros(self.observation_space.shape, dtype=np.uint8)
        for color, (row, col) in zip(COLORS, self._state["positions"]):
            cell = image[row * CELL : (row + 1) * CELL, col * CELL : (col + 1) * CELL]
            np.maximum(cell, color, out=cell)  # tokens on one cell mix their colours
        return image


if "TorusTokens-v0" not in gym.registry:
    gym.register("TorusTokens-v0", entry_point=f"{__name__}:TorusTokensEnv", max_episode_steps=100)  # a string: specs stay JSON (Minari)
