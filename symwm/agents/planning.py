"""Goal-conditioned receding-horizon planning: ``agent.act(obs, goal_obs) -> action``.

::

    from symwm.agents.planning import make_agent
    from symwm.world_models.checkpoint import load_model

    env = gym.make("symwm/Cubes3D-v0", goal_moves=4)
    obs, info = env.reset(seed=0)
    agent = make_agent(env, "beam", model=load_model("runs/demo/ours/best.pt"))  # or model=None: simulator
    action = agent.act(obs, info["goal_image"])      # plan, take the first action, re-plan next call
    plan = agent.plan(obs, info["goal_image"])       # the whole action sequence
    agent.latencies_ms                               # milliseconds per decision

Planners (:func:`make_planner`): ``"beam"`` (:class:`~symwm.agents.search.BeamSearch`) and
``"bfs"`` (:class:`~symwm.agents.search.BreadthFirstSearch`) for discrete actions, ``"cem"``
(:class:`~symwm.agents.sampling.CEM`) and ``"mppi"`` (:class:`~symwm.agents.sampling.MPPI`) for
continuous ones. Dynamics (:mod:`symwm.agents.dynamics`): :class:`LatentDynamics` (a trained world
model) or :class:`SimulatorDynamics` (the true environment, the upper bound).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np

from symwm.agents.dynamics import Dynamics, LatentDynamics, SimulatorDynamics, check_observations
from symwm.agents.sampling import CEM, MPPI
from symwm.world_models.compatibility import check_env_matches
from symwm.agents.search import BeamSearch, BreadthFirstSearch, Plan

PLANNERS = {"beam": BeamSearch, "bfs": BreadthFirstSearch, "cem": CEM, "mppi": MPPI}
DISCRETE_METHODS = ("beam", "bfs")
CONTINUOUS_METHODS = ("cem", "mppi")


def make_planner(method: str, **kwargs: Any) -> BeamSearch | CEM | MPPI:
    """A planner by name (``beam | bfs | cem | mppi``) with its dataclass fields as keyword arguments."""
    if method not in PLANNERS:
        raise ValueError(f"unknown planning method {method!r}; known: {sorted(PLANNERS)}")
    return PLANNERS[method](**kwargs)


class PlanningAgent:
    """Receding-horizon agent: plan from the current and goal observations, act, re-plan next call."""

    def __init__(self, dynamics: Dynamics, planner: Any, warm_start: bool = True, avoid_no_ops: bool = True):
        discrete_planner = isinstance(planner, BeamSearch)
        if discrete_planner != dynamics.discrete:
            kind = "discrete" if dynamics.discrete else "continuous"
            raise ValueError(f"{type(planner).__name__} does not fit the {kind} action space {dynamics.action_space}")
        self.dynamics = dynamics
        self.planner = planner
        self.warm_start = warm_start
        self.avoid_no_ops = avoid_no_ops
        self.latencies_ms: list[float] = []
        self.last_plan: Plan | None = None
        self._previous: np.ndarray | None = None
        self._last_key: bytes | None = None
        self._last_action: int | None = None
        self._no_ops: set[int] = set()

    def reset(self) -> None:
        """Forget the warm start and the observed no-ops (call at the start of every episode)."""
        self._previous = None
        self.last_plan = None
        self._last_key, self._last_action, self._no_ops = None, None, set()

    def _observed_no_ops(self, obs: Any, goal_obs: Any) -> None:
        """Record actions seen to leave this very observation unchanged (a model may think they move).

        A learned model can predict that a blocked move succeeds; re-planning from the unchanged
        observation would then pick it forever. The agent excludes such actions as first actions
        until the observation changes. Only observations are used, never the true state.
        """
        if not (self.avoid_no_ops and self.dynamics.discrete):
            return
        key = np.asarray(obs).tobytes() + np.asarray(goal_obs).tobytes()
        if key == self._last_key and self._last_action is not None:
            self._no_ops.add(self._last_action)
        elif key != self._last_key:
            self._no_ops = set()
        self._last_key = key

    def plan(self, obs: Any, goal_obs: Any) -> np.ndarray:
        """The planned action sequence: int64 ``[h]`` or float32 ``[h, A]``; timed in ``latencies_ms``."""
        t0 = time.perf_counter()
        root, goal = self.dynamics.start(obs, goal_obs)
        if self.dynamics.discrete:
            result = self.planner.plan(self.dynamics, root, goal, exclude_first=sorted(self._no_ops))
        else:
            init = None
            if self.warm_start and self._previous is not None and len(self._previous) > 1:
                init = self._previous[1:]  # shift the previous plan by the step just taken
            result = self.planner.plan(self.dynamics, root, goal, init=init)
        self.latencies_ms.append((time.perf_counter() - t0) * 1e3)
        self.last_plan, self._previous = result, result.actions
        return result.actions

    def act(self, obs: Any, goal_obs: Any) -> Any:
        """The first action of a fresh plan: an ``int`` or a float32 ``[A]`` array."""
        self._observed_no_ops(obs, goal_obs)
        actions = self.plan(obs, goal_obs)
        if self.dynamics.discrete:
            self._last_action = int(actions[0])
            return int(actions[0])
        return np.asarray(actions[0], dtype=np.float32)


class RandomAgent:
    """Uniformly random actions (the baseline); same ``act`` API as :class:`PlanningAgent`."""

    def __init__(self, env: gym.Env, seed: int = 0):
        self.observation_space = env.unwrapped.observation_space
        self.action_space = env.unwrapped.action_space
        self.action_space.seed(seed)
        self.latencies_ms: list[float] = []

    def reset(self) -> None:
        """Nothing to forget."""

    def act(self, obs: Any, goal_obs: Any) -> Any:
        """A random valid action (the observations are only checked)."""
        check_observations(self.observation_space, obs, goal_obs)
        t0 = time.perf_counter()
        a = self.action_space.sample()
        self.latencies_ms.append((time.perf_counter() - t0) * 1e3)
        return int(a) if isinstance(self.action_space, gym.spaces.Discrete) else np.asarray(a, dtype=np.float32)


def make_agent(env: gym.Env, method: str, model: Any = None, **planner_kwargs: Any) -> PlanningAgent:
    """A planning agent for ``env``: on ``model`` (a WorldModel) or, with ``model=None``, the true simulator.

    The latent agent searches the acting env's action space (so it may use actions its model
    never saw in training, e.g. "left" for the demo's models).
    """
    planner = make_planner(method, **planner_kwargs)
    if model is None:
        dynamics: Dynamics = SimulatorDynamics(env)
    else:
        check_env_matches(model, env)
        dynamics = LatentDynamics(model, action_space=env.unwrapped.action_space)
    return PlanningAgent(dynamics, planner)


__all__ = [
    "PLANNERS",
    "BeamSearch",
    "BreadthFirstSearch",
    "CEM",
    "MPPI",
    "Dynamics",
    "LatentDynamics",
    "SimulatorDynamics",
    "Plan",
    "PlanningAgent",
    "RandomAgent",
    "make_agent",
    "make_planner",
]
