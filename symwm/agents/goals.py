"""Goal tasks for planning: goal images, success tests, and the ground truth about grid-world goals.

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
from symwm.envs.reacher import ReacherEnv, forward_kinematics, wrap_angle
from symwm.envs.symmetry import State


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


def reacher_goal_state(env: gym.Env, state: Mapping[str, np.ndarray] | None = None) -> State:
    """The arm at rest with its fingertip on the goal, in the elbow solution nearer the current pose."""
    base: ReacherEnv = env.unwrapped
    state = base.get_state() if state is None else state
    goal = np.asarray(state["goal"], dtype=np.float64)
    now = np.asarray(state["qpos"], dtype=np.float64)
    options = inverse_kinematics(goal, base.link_lengths)
    gap = [float(np.abs(wrap_angle(q - now)).sum()) for q in options]
    qpos = options[int(np.argmin(gap))]
    return {"qpos": qpos, "qvel": np.zeros(2), "prev_qpos": qpos.copy(), "goal": goal.copy()}


def reacher_goal_observation(env: gym.Env) -> np.ndarray:
    """The goal image of the Reacher's current episode (see :func:`reacher_goal_state`)."""
    base: ReacherEnv = env.unwrapped
    goal_state = reacher_goal_state(env)
    tip = forward_kinematics(goal_state["qpos"], base.link_lengths)[1]
    assert np.allclose(tip, goal_state["goal"], atol=1e-6), "inverse kinematics missed the goal"
    return base.observation_of(goal_state)


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
    """``(obs, goal_obs, info)`` of a new episode of any symwm goal task."""
    obs, info = env.reset(seed=seed)
    base = env.unwrapped
    if isinstance(base, ReacherEnv):
        return obs, reacher_goal_observation(env), info
    if "goal_image" not in info:
        raise ValueError(f"{type(base).__name__} has no goal image: for grid worlds pass goal_moves=k")
    return obs, info["goal_image"], info
