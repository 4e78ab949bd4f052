"""Env-like dynamics interfaces that planners search with: the learned model or the true simulator.

Planners (:mod:`symwm.agents.search`, :mod:`symwm.agents.sampling`) never touch a model or an
environment directly; they call a :class:`Dynamics` (mbrl-lib / torchrl style), so the same planner
runs on

* :class:`LatentDynamics`: a trained :class:`~symwm.world_models.model.WorldModel`. States are
  latents ``[B, K, D]``, ``step`` is the learned transition and the distance to the goal is the
  energy the model was trained with (:func:`symwm.world_models.model.energy`) against the encoded
  goal observation;
* :class:`SimulatorDynamics`: the environment itself (the upper bound). States are batches of
  ground-truth states, ``step`` loops over the batch on a private copy of the environment and the
  distance is a task distance that is 0 exactly at the goal (grid worlds: total Manhattan distance
  of the objects to their goal cells; Reacher: fingertip to goal; rotating object: geodesic
  distance to the target).

A batch of states is opaque to planners: they only pass it back to ``step``, ``distance``,
``take`` (index a sub-batch) and ``features`` (vectors for removing duplicate states).
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from symwm.envs.symmetry import State, SymmetricEnv
from symwm.world_models.model import SIGMA, energy


def check_observations(space: spaces.Space, obs: Any, goal_obs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both observations as uint8 arrays of the space's shape, or a ``ValueError`` naming the problem."""
    shape = tuple(space.shape)
    out = []
    for name, x in (("observation", obs), ("goal observation", goal_obs)):
        arr = np.asarray(x)
        if arr.shape != shape:
            raise ValueError(f"{name} has shape {arr.shape}, expected {shape} (one uint8 image, no batch axis)")
        if arr.dtype != np.uint8:
            raise ValueError(f"{name} has dtype {arr.dtype}, expected uint8")
        out.append(arr)
    return out[0], out[1]


class Dynamics(ABC):
    """What a planner needs: a start, batched steps, a distance to the goal, indexing, features."""

    #: the action space searched over (discrete: its allowed ids; continuous: its box)
    action_space: spaces.Space
    #: squared feature distance under which two states count as one (0: exact duplicates only)
    dedupe_tolerance: float = 0.0

    @property
    def discrete(self) -> bool:
        """Whether actions are integers (``Discrete``) rather than vectors (``Box``)."""
        return isinstance(self.action_space, spaces.Discrete)

    def action_ids(self) -> torch.Tensor:
        """The valid discrete actions, int64 ``[A]`` (respects a ``SubsetDiscrete`` mask)."""
        if not self.discrete:
            raise ValueError(f"action_ids() needs a Discrete action space, got {self.action_space}")
        space = self.action_space
        mask = getattr(space, "mask", None)
        ids = np.arange(space.start, space.start + space.n) if mask is None else space.start + np.flatnonzero(mask)
        return torch.as_tensor(ids, dtype=torch.int64)

    def action_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper bounds ``[A]`` of a continuous action space (float32)."""
        if self.discrete or not isinstance(self.action_space, spaces.Box):
            raise ValueError(f"action_bounds() needs a Box action space, got {self.action_space}")
        low = torch.as_tensor(self.action_space.low, dtype=torch.float32)
        high = torch.as_tensor(self.action_space.high, dtype=torch.float32)
        return low, high

    @abstractmethod
    def start(self, obs: Any, goal_obs: Any) -> tuple[Any, Any]:
        """``(root, goal)``: a batch of one state for ``obs`` and the goal to measure against."""

    @abstractmethod
    def step(self, states: Any, actions: torch.Tensor) -> Any:
        """Next states for a batch; ``actions`` int64 ``[B]`` or float32 ``[B, A]``."""

    @abstractmethod
    def distance(self, states: Any, goal: Any) -> torch.Tensor:
        """Distance of every state to the goal, float64 ``[B]`` on the CPU."""

    @abstractmethod
    def take(self, states: Any, index: torch.Tensor) -> Any:
        """The sub-batch ``states[index]`` (``index`` int64 ``[N]``, repeats allowed)."""

    @abstractmethod
    def features(self, states: Any) -> torch.Tensor:
        """One float vector per state ``[B, F]`` (CPU) whose squared distances detect duplicates."""


# -------------------------------------------------------------------------------------------------
# The learned model
# -------------------------------------------------------------------------------------------------


class LatentDynamics(Dynamics):
    """Plan in a world model's latent space: ``encode``, ``predict`` and the training energy."""

    def __init__(
        self,
        model: Any,
        action_space: spaces.Space | None = None,
        device: str | torch.device | None = None,
        max_batch: int = 4096,
        dedupe_tolerance: float = 1e-3,
    ):
        self.model = model.eval()
        first = next(iter(model.parameters()), None)
        self.device = torch.device(device) if device is not None else (first.device if first is not None else torch.device("cpu"))
        self.model.to(self.device)
        self.max_batch = int(max_batch)
        self.dedupe_tolerance = float(dedupe_tolerance)
        env = gym.make(model.spec.env_id, **model.spec.env_kwargs)  # the model's spaces
        self.observation_space = env.observation_space
        self.action_space = action_space if action_space is not None else env.action_space
        env.close()
        k = int(model.latent_shape[0])
        # features whose squared Euclidean distance equals the energy (mean over K of |dz|^2 / 2 sigma^2)
        self._feature_scale = 1.0 / math.sqrt(2.0 * SIGMA * SIGMA * k)

    @torch.no_grad()
    def start(self, obs: Any, goal_obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode ``obs`` and ``goal_obs`` together: two latents ``[1, K, D]``."""
        obs, goal_obs = check_observations(self.observation_space, obs, goal_obs)
        both = torch.from_numpy(np.stack([obs, goal_obs])).to(self.device)  # [2, H, W, C] uint8
        z = self.model.encode(both)  # [2, K, D]
        return z[:1], z[1:]

    @torch.no_grad()
    def step(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """One learned step for every latent, in chunks of ``max_batch``."""
        actions = actions.to(self.device)
        actions = actions.long() if self.discrete else actions.float()
        if states.shape[0] <= self.max_batch:
            return self.model.predict(states, actions)
        parts = [
            self.model.predict(states[i : i + self.max_batch], actions[i : i + self.max_batch])
            for i in range(0, states.shape[0], self.max_batch)
        ]
        return torch.cat(parts)

    @torch.no_grad()
    def distance(self, states: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """The model's energy to the goal latent, ``[B]`` float64."""
        return energy(states, goal.expand_as(states)).double().cpu()

    def take(self, states: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return states.index_select(0, index.to(states.device))

    def features(self, states: torch.Tensor) -> torch.Tensor:
        return (states.flatten(1) * self._feature_scale).double().cpu()


# -------------------------------------------------------------------------------------------------
# The true simulator
# -------------------------------------------------------------------------------------------------


@dataclass
class StateBatch:
    """Ground-truth states stacked per key: ``{key: [B, ...]}``."""

    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(next(iter(self.arrays.values())).shape[0])

    def state(self, i: int) -> State:
        """The ``i``-th state as an environment state dict."""
        return {k: v[i] for k, v in self.arrays.items()}

    @classmethod
    def of(cls, states: list[Mapping[str, np.ndarray]]) -> "StateBatch":
        """Stack a list of state dicts."""
        return cls({k: np.stack([np.asarray(s[k]) for s in states]) for k in states[0]})


Transition = Callable[[State, Any], State]


def fast_transition(env: gym.Env) -> Transition | None:
    """A render-free ``(state, action) -> next state`` equal to ``set_state`` + ``step`` (None: not a symwm env).

    symwm environments provide it as ``SymmetricEnv.next_state``; it runs on a private copy so the
    live environment's scratch simulator (Reacher's pymunk bodies) is never touched.
    """
    base = env.unwrapped
    if not isinstance(base, SymmetricEnv):
        return None
    return copy.deepcopy(base).next_state


def task_distance(env: gym.Env, batch: StateBatch) -> np.ndarray:
    """Distance to the goal carried in each state, 0 exactly at the goal: float64 ``[B]`` (``SymmetricEnv.goal_distance``)."""
    base = env.unwrapped
    if not isinstance(base, SymmetricEnv):
        raise ValueError(f"no task distance for {type(base).__name__}; pass distance_fn to SimulatorDynamics")
    try:
        return np.asarray(base.goal_distance(batch.arrays), dtype=np.float64)
    except NotImplementedError as exc:
        raise ValueError(f"{exc}; pass distance_fn to SimulatorDynamics") from None


class SimulatorDynamics(Dynamics):
    """Plan with the true environment: the upper bound of any learned model.

    ``env`` is the environment the agent acts in; :meth:`start` reads its current ground-truth
    state (the observations are only checked). Steps run on a private copy, so the live episode is
    never disturbed. ``distance_fn(env, StateBatch) -> [B]`` replaces :func:`task_distance`.
    """

    def __init__(self, env: gym.Env, distance_fn: Callable[[gym.Env, StateBatch], np.ndarray] | None = None):
        self.env = env
        self.base = env.unwrapped
        self.action_space = self.base.action_space
        self.observation_space = self.base.observation_space
        self.distance_fn = distance_fn or task_distance
        self._transition = fast_transition(env)
        self._sim = copy.deepcopy(self.base) if self._transition is None else None

    def start(self, obs: Any, goal_obs: Any) -> tuple[StateBatch, None]:
        """The live environment's current state (the goal is part of it)."""
        check_observations(self.observation_space, obs, goal_obs)
        return StateBatch.of([self.base.get_state()]), None

    def _next(self, state: State, action: Any) -> State:
        if self._transition is not None:
            return self._transition(state, action)
        self._sim.set_state(state)  # generic fallback: renders, slower
        self._sim.step(action)
        return self._sim.get_state()

    def step(self, states: StateBatch, actions: torch.Tensor) -> StateBatch:
        acts = actions.cpu().numpy()
        return StateBatch.of([self._next(states.state(i), acts[i]) for i in range(len(states))])

    def distance(self, states: StateBatch, goal: None) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.distance_fn(self.env, states), dtype=np.float64))

    def take(self, states: StateBatch, index: torch.Tensor) -> StateBatch:
        idx = index.cpu().numpy()
        return StateBatch({k: v[idx] for k, v in states.arrays.items()})

    def features(self, states: StateBatch) -> torch.Tensor:
        parts = [v.reshape(len(states), -1).astype(np.float64) for k, v in sorted(states.arrays.items())]
        return torch.from_numpy(np.concatenate(parts, axis=1))
