"""Goal tasks for planning: goal images, success tests, and the ground truth about grid-world goals.

Any environment offers a goal through ``SymmetricEnv.goal_observation`` and ``goal_distance``
(:func:`reset_goal_task` and the simulator planner use only those); symwm's own:

* Grid worlds (``goal_moves=k``): the env gives ``info["goal_image"]`` and terminates at the goal.
  :meth:`GridWorldEnv.optimal_moves` finds the true shortest solution length (A* with the Manhattan bound) and
  :func:`needs_motion` says whether a goal is unreachable without a motion (e.g. "left").
* Reacher: the goal image is the observation of the arm at rest with its fingertip on the goal
  (:func:`reacher_goal_state`, inverse kinematics); success is the fingertip within a radius.
* Rotating object: ``info["goal_image"]``; the env terminates within ``goal_tolerance``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from symwm.envs.grid_world import needs_motion  # noqa: F401  (re-exported: the agents' name)
from symwm.envs.reacher import inverse_kinematics, reacher_goal_state  # noqa: F401  (re-exported: the agents' names)


def motion_of(env: gym.Env, action: int) -> str:
    """The motion name of a grid-world action (``'left'`` for object i moving left)."""
    return env.unwrapped.motion_names[int(action) % 4]


def reset_goal_task(env: gym.Env, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(obs, goal_obs, info)`` of a new episode of any goal task (``SymmetricEnv.goal_observation``)."""
    obs, info = env.reset(seed=seed)
    try:
        goal = env.unwrapped.goal_observation()
    except NotImplementedError as exc:
        raise ValueError(str(exc)) from None
    return obs, goal, info
