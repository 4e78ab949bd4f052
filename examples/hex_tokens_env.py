"""An object-factored environment of one's own with symmetry C6 x S3: three tokens on a hexagonal board.

Three tokens (red, green, blue) sit on different cells of the hexagonal board of ``hex_env``.
Action ``a = 6 * token + direction`` moves one token one cell in a direction (0..5,
counter-clockwise); a move off the board or onto another token is a no-op. Turning the board by
60 degrees maps direction ``d`` to ``d + 1``, and the tokens move alike, so relabelling them (a
permutation ``perm``: token ``i`` becomes token ``perm[i]``, drawn in that token's colour) commutes with
the dynamics too: the group is ``C6 x S3``. :class:`HexTokensSymmetry` declares it as a
:class:`~symwm.envs.groups.DirectProduct`; symwm reads the layout ``a = 6 * token + direction`` and the
motions' representation off ``act_on_action`` and picks its ``planar-objects`` family::

    symwm check   --env hex_tokens_env:HexTokens-v0
    symwm collect --env hex_tokens_env:HexTokens-v0 --out train.h5 --episodes 1000 --steps 5
    symwm train   --env hex_tokens_env:HexTokens-v0 --dataset train.h5 --variant ours
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from hex_env import DIRECTIONS, RADIUS, SIZE, draw_discs, rotate
from symwm.envs import Dihedral, EnvSymmetry, SymmetricEnv
from symwm.envs.groups import DirectProduct, Symmetric
from symwm.envs.symmetry import check_discrete_action

N_TOKENS = 3


class HexTokensSymmetry(EnvSymmetry):
    """C6 x S3: turns of the board (tokens and directions) and relabellings of the tokens."""

    def __init__(self) -> None:
        self.group = self.action_group = DirectProduct(Dihedral(6), Symmetric(N_TOKENS))

    def act_on_state(self, g: Any, state: Mapping[str, np.ndarray]) -> dict:
        turn, perm = g
        return {"tokens": self.group.factors[1].permute(perm, rotate(state["tokens"], turn.rotation), axis=0)}

    def act_on_action(self, g: Any, action: Any) -> int:
        turn, perm = g
        token, direction = divmod(int(action), 6)
        return 6 * perm.perm[token] + (direction + turn.rotation) % 6


class HexTokensEnv(SymmetricEnv):
    """Push three coloured tokens around a hexagonal board (no reward: a world-model environment)."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.action_space = spaces.Discrete(6 * N_TOKENS)
        self.observation_space = spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
        self.state_space = spaces.Dict({"tokens": spaces.Box(-RADIUS, RADIUS, (N_TOKENS, 3), np.int64)})
        self.symmetry = HexTokensSymmetry()
        self.cells = np.array([c for c in np.ndindex(*(2 * RADIUS + 1,) * 3) if sum(c) == 3 * RADIUS]) - RADIUS
        self._state: dict = {}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._check_reset_options(options)
        self._set_state({"tokens": self.cells[self.np_random.choice(len(self.cells), N_TOKENS, replace=False)]})
        self._started = True
        return self._observation(), {"state": self.get_state()}

    def step(self, action: Any):
        self._require_started("step")
        self._state = self._next_state(self._state, self._check_action(action))
        return self._observation(), 0.0, False, False, {"state": self.get_state()}

    def _get_state(self) -> dict:
        return self._state

    def _set_state(self, state: dict) -> None:
        self._state = {"tokens": np.array(state["tokens"], dtype=np.int64)}

    def _check_state(self, state: dict) -> None:
        tokens = state["tokens"]
        if (tokens.sum(axis=1) != 0).any() or np.abs(tokens).max() > RADIUS:
            raise ValueError(f"invalid state: tokens {tokens.tolist()} are not all cells of the board")
        if len({tuple(t) for t in tokens.tolist()}) != N_TOKENS:
            raise ValueError(f"invalid state: two tokens share a cell in {tokens.tolist()}")

    def _check_action(self, action: Any) -> int:
        return check_discrete_action(action, self.action_space)

    def _next_state(self, state: Mapping[str, np.ndarray], action: int) -> dict:
        token, direction = divmod(action, 6)
        tokens = np.array(state["tokens"])
        moved = tokens[token] + DIRECTIONS[direction]
        free = not any((moved == other).all() for i, other in enumerate(tokens) if i != token)
        if np.abs(moved).max() <= RADIUS and free:
            tokens[token] = moved
        return {"tokens": tokens}

    def _observation(self) -> np.ndarray:
        return draw_discs(self._state["tokens"])  # token i in colour channel i

if "HexTokens-v0" not in gym.registry:
    gym.register("HexTokens-v0", entry_point=f"{__name__}:HexTokensEnv", max_episode_steps=50)
