"""Object grid worlds (the paper's 2D Shapes, 3D Blocks and Rush Hour domains): shared dynamics.

``n_objects`` objects live on a ``grid_size x grid_size`` grid, at most one per cell. Action
``a = 4 * i + m`` applies motion ``m`` to object ``i``:

* absolute motions (Shapes2D, Cubes3D): ``m`` in up, right, down, left;
* relative motions (RushHour, objects carry an orientation): forward, backward, turn left,
  turn right.

A move into a wall or onto another object is a no-op. Cells are ``(row, col)`` with row 0 at the
top of the top-down view; up means ``row - 1``.

Symmetry: ``C4 x S_n`` by default (rotate the grid by quarter turns, permute objects), or
``D4 x S_n`` with ``symmetry="D4"`` (adds the reflection across the horizontal axis). Group
elements are pairs ``(DihedralElement, Permutation)`` (see :mod:`symwm.envs.groups`).

Optional goal task (``goal_moves=k``): at reset a goal configuration is made from the start by
``k`` random effective moves that never revisit a configuration, so it is at most ``k`` moves
away. Reaching it gives reward 1 and terminates the episode; the goal is part of the ground-truth
state (and transformed with it) and ``info`` carries it as a state and as an image.
"""

from __future__ import annotations

import heapq
import math
from abc import abstractmethod
from typing import Any, Mapping, Sequence

import numpy as np
from gymnasium import spaces

from symwm.envs.groups import (
    Dihedral,
    DirectProduct,
    Symmetric,
    direction_transform,
    grid_cell_transform,
)
from symwm.envs.symmetry import EnvSymmetry, State, SymmetricEnv, check_discrete_action

DIRECTIONS = ("up", "right", "down", "left")
RELATIVE_MOTIONS = ("forward", "backward", "turn_left", "turn_right")
DELTAS = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], dtype=np.int64)  # (drow, dcol) per direction
SYMMETRY_CHOICES = ("C4", "D4")


#: the farthest goal a reset draws (each move of the random walk costs a state copy; 10**5 took 30 s)
MAX_GOAL_MOVES = 1000


class SubsetDiscrete(spaces.Discrete):
    """``Discrete(n)`` restricted to an allowed subset: ``sample`` and ``contains`` respect it.

    The index set stays ``0..n-1`` so that models and the group action see the full action set;
    the paper's limited-action datasets (e.g. cubes without "left") are built from such spaces.
    """

    def __init__(self, n: int, allowed: Sequence[int], seed: int | None = None):
        super().__init__(n, seed=seed)
        mask = np.zeros(n, dtype=np.int8)
        mask[list(allowed)] = 1
        if not mask.any():
            raise ValueError("SubsetDiscrete needs at least one allowed action")
        self.mask = mask

    def sample(self, mask: np.ndarray | None = None, probability: np.ndarray | None = None) -> np.int64:
        """A uniformly random allowed action (or from ``mask`` intersected with the allowed set)."""
        if probability is not None:
            return super().sample(probability=probability * self.mask)
        combined = self.mask if mask is None else (self.mask & np.asarray(mask, dtype=np.int8))
        return super().sample(mask=combined.astype(np.int8))

    def contains(self, x: Any) -> bool:
        return bool(super().contains(x) and self.mask[int(x) - self.start])

    def __repr__(self) -> str:
        return f"SubsetDiscrete({self.n}, allowed={np.flatnonzero(self.mask).tolist()})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, SubsetDiscrete) and super().__eq__(other) and bool(
            np.array_equal(self.mask, other.mask)
        )


def needs_motion(start: Mapping[str, np.ndarray], goal: Mapping[str, np.ndarray], motion: str = "left") -> bool:
    """Whether every solution from ``start`` to ``goal`` uses ``motion`` (absolute motions only).

    Without "left" no object's column can ever decrease (up, right and down keep or raise it; a
    blocked move changes nothing), so a goal with some object left of its start column is
    unreachable without "left", and any goal with no such object is reachable without it unless
    other objects block the way. The same holds for every direction by symmetry.
    """
    if motion not in DIRECTIONS:
        raise ValueError(f"motion must be one of {DIRECTIONS}, got {motion!r}")
    delta = DELTAS[DIRECTIONS.index(motion)]
    axis = int(np.flatnonzero(delta)[0])
    sign = int(delta[axis])
    change = (np.asarray(goal["positions"]) - np.asarray(start["positions"]))[:, axis] * sign  # [n]
    return bool(np.any(change > 0))


class GridSymmetry(EnvSymmetry):
    """``C4 x S_n`` (or ``D4 x S_n``) acting on grid-world states and actions."""

    def __init__(self, grid_size: int, n_objects: int, reflections: bool, oriented: bool):
        self.grid_size = grid_size
        self.oriented = oriented
        self.planar = Dihedral(4, reflections=reflections)
        self.permutations = Symmetric(n_objects)
        self.group = DirectProduct(self.planar, self.permutations)
        self.action_group = self.group

    def _check(self, g: Any) -> None:
        if not self.group.contains(g):
            raise ValueError(f"{g!r} is not an element of {self.group.name}")

    def act_on_state(self, g: Any, state: Mapping[str, np.ndarray]) -> State:
        """Move every object's cell (and orientation) with the grid, then permute objects."""
        self._check(g)
        planar, perm = g
        out: State = {}
        for key, value in state.items():
            if key.endswith("positions"):
                moved = grid_cell_transform(planar, value, self.grid_size)
            elif key.endswith("orientations"):
                moved = np.asarray(direction_transform(planar, np.asarray(value)), dtype=np.int64)
            else:
                raise KeyError(f"GridSymmetry does not know how to transform state key {key!r}")
            out[key] = self.permutations.permute(perm, moved, axis=0)
        return out

    def act_on_action(self, g: Any, action: Any) -> int:
        """Object ``i`` becomes object ``perm[i]``; directions turn with the grid.

        Relative motions (RushHour) are invariant under rotations; a reflection swaps turning
        left and turning right.
        """
        self._check(g)
        planar, perm = g
        obj, motion = divmod(int(action), 4)
        if obj >= self.permutations.n or int(action) < 0:
            raise ValueError(f"action {action} is out of range for {self.permutations.n} objects")
        if self.oriented:
            if planar.reflection and motion >= 2:
                motion = 5 - motion  # turn_left (2) <-> turn_right (3)
        else:
            motion = int(direction_transform(planar, motion))
        return 4 * perm.perm[obj] + motion


class GridWorldEnv(SymmetricEnv):
    """Base class of the object grid worlds; subclasses draw the state (``_render``)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 5}
    #: RushHour: objects carry an orientation and move relative to it
    oriented: bool = False
    goal_options = {"goal_moves": 3}
    task = "reach a goal configuration (goal_moves=k)"

    def __init__(
        self,
        render_mode: str | None = None,
        grid_size: int = 5,
        n_objects: int = 5,
        symmetry: str = "C4",
        allowed_actions: Sequence[int | str] | None = None,
        goal_moves: int | None = None,
        resolution: int = 50,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if not isinstance(grid_size, (int, np.integer)) or not 2 <= grid_size <= 32:
            raise ValueError(f"grid_size must be an int in 2..32, got {grid_size!r}")
        if not isinstance(n_objects, (int, np.integer)) or not 1 <= n_objects <= min(10, grid_size * grid_size - 1):
            raise ValueError(
                f"n_objects must be an int in 1..{min(10, grid_size * grid_size - 1)} for a {grid_size}x{grid_size} grid, got {n_objects!r}"
            )
        if symmetry not in SYMMETRY_CHOICES:
            raise ValueError(f"symmetry must be one of {SYMMETRY_CHOICES}, got {symmetry!r}")
        if goal_moves is not None and (not isinstance(goal_moves, (int, np.integer)) or not 1 <= goal_moves <= MAX_GOAL_MOVES):
            raise ValueError(f"goal_moves must be an int in 1..{MAX_GOAL_MOVES} or None, got {goal_moves!r}")
        if not isinstance(resolution, (int, np.integer)) or not 16 <= resolution <= 512:
            raise ValueError(f"resolution must be an int in 16..512, got {resolution!r}")
        self.render_mode = render_mode
        self.grid_size = int(grid_size)
        self.n_objects = int(n_objects)
        self.symmetry_name = symmetry
        self.goal_moves = None if goal_moves is None else int(goal_moves)
        self.resolution = int(resolution)

        n_actions = 4 * self.n_objects
        self.allowed = self._parse_allowed_actions(allowed_actions)
        if len(self.allowed) == n_actions:
            self.action_space = spaces.Discrete(n_actions)
        else:
            self.action_space = SubsetDiscrete(n_actions, self.allowed)
        self.observation_space = spaces.Box(0, 255, (self.resolution, self.resolution, 3), np.uint8)

        n, top = self.n_objects, self.grid_size - 1
        keys = {"positions": spaces.Box(0, top, (n, 2), np.int64)}
        if self.oriented:
            keys["orientations"] = spaces.Box(0, 3, (n,), np.int64)
        if self.goal_moves is not None:
            keys.update({f"goal_{k}": v for k, v in list(keys.items())})
        self.state_space = spaces.Dict(keys)
        self.symmetry = GridSymmetry(self.grid_size, n, symmetry == "D4", self.oriented)
        self._state: State = {}
        self._goal_image: np.ndarray | None = None

    # -- options ----------------------------------------------------------------------------

    @property
    def motion_names(self) -> tuple[str, ...]:
        """Names of the four motions, in action order (``a = 4 * object + motion``)."""
        return RELATIVE_MOTIONS if self.oriented else DIRECTIONS

    def action_name(self, action: int) -> str:
        """Human-readable action, e.g. ``'object 2 left'``."""
        obj, m = divmod(int(action), 4)
        return f"object {obj} {self.motion_names[m]}"

    def _parse_allowed_actions(self, allowed: Sequence[int | str] | None) -> list[int]:
        n_actions = 4 * self.n_objects
        if allowed is None:
            return list(range(n_actions))
        if isinstance(allowed, (str, int)):
            allowed = [allowed]
        ids: set[int] = set()
        for item in allowed:
            if isinstance(item, str):
                if item not in self.motion_names:
                    raise ValueError(
                        f"unknown motion {item!r} in allowed_actions; known: {list(self.motion_names)} or action ids 0..{n_actions - 1}"
                    )
                m = self.motion_names.index(item)
                ids.update(4 * i + m for i in range(self.n_objects))
            elif isinstance(item, (int, np.integer)) and not isinstance(item, bool) and 0 <= item < n_actions:
                ids.add(int(item))
            else:
                raise ValueError(f"invalid entry {item!r} in allowed_actions: use motion names {list(self.motion_names)} or ids 0..{n_actions - 1}")
        if not ids:
            raise ValueError("allowed_actions is empty")
        return sorted(ids)

    # -- Gymnasium API ----------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Random distinct cells (and orientations); a goal ``goal_moves`` effective moves away."""
        super().reset(seed=seed)
        self._check_reset_options(options)
        rng = self.np_random
        cells = rng.choice(self.grid_size * self.grid_size, size=self.n_objects, replace=False)
        state: State = {"positions": np.stack(np.divmod(cells, self.grid_size), axis=1).astype(np.int64)}
        if self.oriented:
            state["orientations"] = rng.integers(0, 4, size=self.n_objects).astype(np.int64)
        if self.goal_moves is not None:
            state.update({f"goal_{k}": v for k, v in self._random_goal(state).items()})
        self._set_state(state)
        self._started = True
        return self._observation(), self._info()

    def step(self, action: Any):
        """Apply one object motion; reward 1 and termination on reaching the goal (if any)."""
        self._require_started("step")
        self._state = self._next_state(self._state, self._check_action(action))
        reached = self.goal_moves is not None and self._at_goal()
        return self._observation(), float(reached), bool(reached), False, self._info()

    def render(self) -> np.ndarray | None:
        """The current frame (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            return None
        self._require_started("render")
        return self._observation()

    # -- dynamics ---------------------------------------------------------------------------

    def _check_action(self, action: Any) -> int:
        a = check_discrete_action(action, self.action_space)
        if not self.action_space.contains(a):
            raise ValueError(
                f"action {a} ({self.action_name(a)}) is not in this env's allowed_actions {self.allowed}"
            )
        return a

    def _next_state(self, state: Mapping[str, np.ndarray], action: int) -> State:
        return {**state, **self._apply(state, action)}

    def _apply(self, state: Mapping[str, np.ndarray], action: int) -> State:
        """The object part of the state after ``action`` (pure function of ``state``)."""
        obj, m = divmod(action, 4)
        pos = state["positions"].copy()
        out: State = {"positions": pos}
        if self.oriented:
            orient = state["orientations"].copy()
            out["orientations"] = orient
            if m >= 2:  # turn in place: left is counter-clockwise
                orient[obj] = (orient[obj] + (-1 if m == 2 else 1)) % 4
                return out
            direction = orient[obj] if m == 0 else (orient[obj] + 2) % 4
        else:
            direction = m
        target = pos[obj] + DELTAS[direction]
        inside = bool(np.all((target >= 0) & (target < self.grid_size)))
        if inside and not np.any(np.all(pos == target, axis=1)):
            pos[obj] = target
        return out

    def _random_goal(self, state: State) -> State:
        """A configuration reached by ``goal_moves`` effective moves that never revisit one."""
        current = {k: v for k, v in state.items() if not k.startswith("goal_")}
        seen = {self._key(current)}
        for _ in range(self.goal_moves):
            candidates = []
            for a in self.allowed:
                nxt = self._apply(current, a)
                if self._key(nxt) not in seen:
                    candidates.append(nxt)
            if not candidates:
                break
            current = candidates[int(self.np_random.integers(len(candidates)))]
            seen.add(self._key(current))
        return current

    @staticmethod
    def _key(state: Mapping[str, np.ndarray]) -> bytes:
        return b"".join(np.ascontiguousarray(state[k]).tobytes() for k in sorted(state))

    def _at_goal(self) -> bool:
        return all(np.array_equal(self._state[k], self._state[f"goal_{k}"]) for k in self._object_keys())

    def _object_keys(self) -> list[str]:
        return ["positions", "orientations"] if self.oriented else ["positions"]

    # -- state ------------------------------------------------------------------------------

    def _get_state(self) -> State:
        return self._state

    def _set_state(self, state: State) -> None:
        self._state = {k: np.array(v, dtype=np.int64) for k, v in state.items()}
        self._goal_image = None  # rendered lazily, once per goal

    def _check_state(self, state: State) -> None:
        for key in ("positions", "goal_positions"):
            if key in state and len({tuple(p) for p in state[key].tolist()}) < self.n_objects:
                raise ValueError(f"invalid state: two objects share a cell in {key!r}: {state[key].tolist()}")

    def goal_state(self) -> State | None:
        """The goal configuration (object keys only), or ``None`` without a goal task."""
        if self.goal_moves is None:
            return None
        return {k: self._state[f"goal_{k}"].copy() for k in self._object_keys()}

    def optimal_moves(
        self,
        start: Mapping[str, np.ndarray],
        goal: Mapping[str, np.ndarray],
        allowed: Sequence[int] | None = None,
        max_moves: int = 12,
        max_expansions: int = 200_000,
    ) -> int | None:
        """Length of a shortest action sequence from ``start`` to ``goal`` (A*, admissible Manhattan bound).

        ``None`` when no solution of at most ``max_moves`` moves exists (or the search gave up after
        ``max_expansions`` states). Only the object keys of the states are used.
        """
        if self.oriented:
            raise ValueError(f"optimal_moves supports absolute-motion grid worlds, not {type(self).__name__}")
        actions = list(self.allowed if allowed is None else allowed)
        goal_pos = np.asarray(goal["positions"], dtype=np.int64)
        s0 = np.asarray(start["positions"], dtype=np.int64)
        h0 = int(np.abs(s0 - goal_pos).sum())
        frontier: list[tuple[int, int, int, bytes]] = [(h0, 0, 0, s0.tobytes())]
        best = {s0.tobytes(): 0}
        shape, tick = s0.shape, 1
        while frontier and tick < max_expansions:
            f, g, _, key = heapq.heappop(frontier)
            if g > best.get(key, math.inf) or f > max_moves:
                continue
            pos = np.frombuffer(key, dtype=np.int64).reshape(shape)
            if np.array_equal(pos, goal_pos):
                return g
            for a in actions:
                nxt = self._apply({"positions": pos}, a)["positions"]
                k2 = nxt.tobytes()
                if k2 == key or best.get(k2, math.inf) <= g + 1:
                    continue
                best[k2] = g + 1
                h = int(np.abs(nxt - goal_pos).sum())
                heapq.heappush(frontier, (g + 1 + h, g + 1, tick, k2))
                tick += 1
        return None

    def goal_distance(self, states: Mapping[str, np.ndarray]) -> np.ndarray:
        """Cell (Manhattan) distance of every object to its goal cell, plus quarter turns still needed (RushHour)."""
        if "goal_positions" not in states:
            raise ValueError(f"{type(self).__name__} has no goal: make it with goal_moves=k")
        d = np.abs(np.asarray(states["positions"]) - np.asarray(states["goal_positions"])).sum(axis=(1, 2)).astype(np.float64)
        if "orientations" in states:
            turns = np.abs(np.asarray(states["orientations"]) - np.asarray(states["goal_orientations"])) % 4
            d += np.minimum(turns, 4 - turns).sum(axis=1)
        return d

    def goal_observation(self) -> np.ndarray:
        """The rendered goal configuration (grid worlds made with ``goal_moves=k``)."""
        self._require_started("goal_observation")
        if self.goal_moves is None:
            raise ValueError(f"{type(self).__name__} has no goal image: make it with goal_moves=k")
        return self._info()["goal_image"]

    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"state": self.get_state()}
        if self.goal_moves is not None:
            goal = self.goal_state()
            if self._goal_image is None:
                self._goal_image = self._render(goal["positions"], goal.get("orientations"))
            info["goal_state"] = goal
            info["goal_image"] = self._goal_image.copy()
        return info

    def _observation(self) -> np.ndarray:
        return self._render(self._state["positions"], self._state.get("orientations"))

    @abstractmethod
    def _render(self, positions: np.ndarray, orientations: np.ndarray | None) -> np.ndarray:
        """Draw objects at ``positions`` (n, 2) as a (resolution, resolution, 3) uint8 image."""
