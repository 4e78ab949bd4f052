"""Continuous-action planners: the cross-entropy method (CEM) and MPPI over a :class:`Dynamics`.

Both sample ``N`` action sequences ``[N, H, A]`` around a mean, roll all of them out in one batched
``dynamics.step`` per time step, and score each by its distances to the goal along the way
(``cost="sum"``: the sum over the horizon; ``"min"``: the best step, as the discrete planners;
``"final"``: the last step). Samples are drawn with a ``torch.Generator`` seeded by ``seed`` on
the CPU and moved to the dynamics' device by ``step``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from symwm.agents.dynamics import Dynamics
from symwm.agents.search import Plan

COSTS = ("sum", "min", "final")


def rollout_costs(dynamics: Dynamics, root: Any, goal: Any, seqs: torch.Tensor, cost: str) -> torch.Tensor:
    """Cost of each action sequence ``seqs`` ``[N, H, A]`` from ``root``: float64 ``[N]``."""
    n, horizon = seqs.shape[0], seqs.shape[1]
    states = dynamics.take(root, torch.zeros(n, dtype=torch.int64))
    dists = []
    for t in range(horizon):
        states = dynamics.step(states, seqs[:, t])
        dists.append(dynamics.distance(states, goal))
    d = torch.stack(dists, dim=1)  # [N, H]
    if cost == "sum":
        return d.sum(1)
    if cost == "min":
        return d.min(1).values
    return d[:, -1]


def _check_common(planner: Any, dynamics: Dynamics) -> tuple[torch.Tensor, torch.Tensor]:
    if dynamics.discrete:
        raise ValueError(f"{type(planner).__name__} needs a continuous (Box) action space, got {dynamics.action_space}")
    return dynamics.action_bounds()


def _initial_mean(init: Any, horizon: int, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The starting mean ``[H, A]``: a warm start (shifted previous plan) or the box centre."""
    centre = ((low + high) / 2).expand(horizon, -1).clone()
    if init is None:
        return centre
    init = torch.as_tensor(np.asarray(init), dtype=torch.float32)
    if init.dim() != 2 or init.shape[1] != low.shape[0]:
        raise ValueError(f"init must have shape [h, {low.shape[0]}], got {tuple(init.shape)}")
    h = min(horizon, init.shape[0])
    centre[:h] = torch.maximum(torch.minimum(init[:h], high), low)
    return centre


@dataclass
class CEM:
    """Cross-entropy method: refit a diagonal Gaussian to the ``elites`` best of ``population`` samples."""

    horizon: int = 10
    """steps per sequence"""
    population: int = 200
    """sequences sampled per iteration"""
    elites: int = 20
    """best sequences the Gaussian is refitted to"""
    iterations: int = 4
    """refits per decision"""
    init_std: float = 0.5
    """initial standard deviation, as a fraction of the action box's half-width"""
    momentum: float = 0.1
    """weight of the old mean/std in each refit"""
    cost: str = "sum"
    """how distances along a sequence are combined: sum | min | final"""
    seed: int = 0
    """seed of the sampler"""

    def __post_init__(self) -> None:
        if self.cost not in COSTS:
            raise ValueError(f"cost must be one of {COSTS}, got {self.cost!r}")
        if not 1 <= self.elites <= self.population:
            raise ValueError(f"need 1 <= elites <= population, got {self.elites} and {self.population}")
        if self.horizon < 1 or self.iterations < 1:
            raise ValueError("horizon and iterations must be >= 1")
        self._gen = torch.Generator().manual_seed(self.seed)

    def plan(self, dynamics: Dynamics, root: Any, goal: Any, init: Any = None) -> Plan:
        """The best sampled sequence ``[H, A]`` after ``iterations`` refits."""
        low, high = _check_common(self, dynamics)
        mean = _initial_mean(init, self.horizon, low, high)  # [H, A]
        std = ((high - low) / 2 * self.init_std).expand_as(mean).clone()  # [H, A]
        best_cost, best_seq = float("inf"), mean.clone()
        for _ in range(self.iterations):
            noise = torch.randn(self.population, *mean.shape, generator=self._gen)  # [N, H, A]
            seqs = torch.maximum(torch.minimum(mean + std * noise, high), low)
            seqs[0] = mean  # always evaluate the current mean
            costs = rollout_costs(dynamics, root, goal, seqs, self.cost)  # [N]
            top = torch.topk(-costs, self.elites).indices
            elite = seqs[top]  # [E, H, A]
            if float(costs[top[0]]) < best_cost:
                best_cost, best_seq = float(costs[top[0]]), seqs[top[0]].clone()
            mean = self.momentum * mean + (1 - self.momentum) * elite.mean(0)
            std = self.momentum * std + (1 - self.momentum) * elite.std(0, unbiased=False)
        evaluated = self.iterations * self.population * self.horizon
        return Plan(best_seq.numpy().astype(np.float32), best_cost, evaluated)


@dataclass
class MPPI:
    """Model predictive path integral control: an exponentially cost-weighted mean of noisy sequences."""

    horizon: int = 10
    """steps per sequence"""
    samples: int = 200
    """sequences sampled per iteration"""
    iterations: int = 2
    """re-weightings per decision"""
    noise_std: float = 0.5
    """standard deviation of the perturbations, as a fraction of the box's half-width"""
    temperature: float = 0.1
    """lambda: weights are softmax(-(cost - min cost) / (temperature * cost spread))"""
    cost: str = "sum"
    """how distances along a sequence are combined: sum | min | final"""
    seed: int = 0
    """seed of the sampler"""

    def __post_init__(self) -> None:
        if self.cost not in COSTS:
            raise ValueError(f"cost must be one of {COSTS}, got {self.cost!r}")
        if self.horizon < 1 or self.iterations < 1 or self.samples < 2:
            raise ValueError("horizon and iterations must be >= 1 and samples >= 2")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        self._gen = torch.Generator().manual_seed(self.seed)

    def plan(self, dynamics: Dynamics, root: Any, goal: Any, init: Any = None) -> Plan:
        """The weighted mean sequence ``[H, A]``; its cost is that of the best sample of the last iteration."""
        low, high = _check_common(self, dynamics)
        mean = _initial_mean(init, self.horizon, low, high)  # [H, A]
        std = (high - low) / 2 * self.noise_std  # [A]
        last_min = float("inf")
        for _ in range(self.iterations):
            noise = torch.randn(self.samples, *mean.shape, generator=self._gen) * std  # [N, H, A]
            seqs = torch.maximum(torch.minimum(mean + noise, high), low)
            seqs[0] = mean
            costs = rollout_costs(dynamics, root, goal, seqs, self.cost)  # [N]
            spread = float(costs.max() - costs.min()) or 1.0  # scale-free temperature
            weights = torch.softmax(-(costs - costs.min()) / (self.temperature * spread), dim=0).float()  # [N]
            mean = (weights[:, None, None] * seqs).sum(0)
            last_min = float(costs.min())
        evaluated = self.iterations * self.samples * self.horizon
        return Plan(mean.numpy().astype(np.float32), last_min, evaluated)
