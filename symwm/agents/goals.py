"""Goal tasks for planning: goal images, success tests, and the ground truth about grid-world goals.

Any environment offers a goal through ``SymmetricEnv.goal_observation`` and ``goal_distance``
(:func:`reset_goal_task` and the simulator planner use only those); symwm's own:

* Grid worlds (``goal_moves=k``): the env gives ``info["goal_image"]`` and terminates at the goal.
  :func:`optimal_moves` finds the true shortest solution length (A* with the Manhattan bound) and
  :func:`needs_motion` says whether a goal is unreachable without a motion (e.g. "left").
* Reacher: the goal image is the observation of the arm at rest with its fingertip on the goal
  (:func:`reacher_goal_state`, inverse kinematics); success is the fingertip within a radius.
* Rotating object: ``info["goal_image"]``; the env terminates within ``goal_tolerance``.
"""

from __future__ import annotations

import heapq
import math
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np

from symwm.envs.grid_world import DELTAS, DIRECTIONS, GridWorldEnv
from symwm.envs.reacher import inverse_kinematics, reacher_goal_state  # noqa: F401  (re-exported: the agents' names)


def motion_of(env: gym.Env, action: int) -> str:
    """The motion name of a grid-world action (``'left'`` for object i moving left)."""
    base: GridWorldEnv = env.unwrapped
    return base.motion_names[int(action) % 4]


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


def optimal_moves(
    env: gym.Env,
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
    base: GridWorldEnv = env.unwrapped
    if base.oriented:
        raise ValueError("optimal_moves supports absolute-motion grid worlds (Shapes2D, Cubes3D)")
    actions = list(base.allowed if allowed is None else allowed)
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
            nxt = base._apply({"positions": pos}, a)["positions"]
            k2 = nxt.tobytes()
            if k2 == key or best.get(k2, math.inf) <= g + 1:
                continue
            best[k2] = g + 1
            h = int(np.abs(nxt - goal_pos).sum())
            heapq.heappush(frontier, (g + 1 + h, g + 1, tick, k2))
            tick += 1
    return None


def reset_goal_task(env: gym.Env, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(obs, goal_obs, info)`` of a new episode of any goal task (``SymmetricEnv.goal_observation``)."""
    obs, info = env.reset(seed=seed)
    try:
        goal = env.unwrapped.goal_observation()
    except NotImplementedError as exc:
        raise ValueError(str(exc)) from None
    return obs, goal, info
