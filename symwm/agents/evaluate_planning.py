"""Evaluate goal-reaching agents on symwm goal tasks: success, steps to success, latency per decision.

Every agent of a comparison sees the same episodes (the same reset seeds), so differences are
paired. One row per episode (:class:`EpisodeResult`); :func:`summarise` groups them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Sequence

import gymnasium as gym
import numpy as np

from symwm.agents.goals import motion_of, needs_motion, reset_goal_task

AgentFactory = Callable[[gym.Env], Any]

#: Reacher success radius (world units; the arm's reach is 2 and the goal disk's radius 0.16)


@dataclass
class EpisodeResult:
    """One episode of one agent on one goal."""

    task: str
    agent: str
    goal_moves: int | None
    seed: int
    success: bool
    steps: int
    budget: int
    final_distance: float
    ms_per_decision: float
    optimal_moves: int | None = None
    needs_left: bool | None = None
    left_actions: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A flat dict (a CSV row)."""
        return asdict(self)


def grid_budget(goal_moves: int) -> int:
    """Step budget for a grid goal ``k`` moves away: ``2k + 4``."""
    return 2 * goal_moves + 4


def _distance(info: dict[str, Any], env: gym.Env) -> float:
    """The goal distance of the state in ``info`` (``SymmetricEnv.goal_distance``), else ``info["distance"]``."""
    try:
        return float(env.unwrapped.goal_distance({k: np.asarray(v)[None] for k, v in info["state"].items()})[0])
    except (NotImplementedError, AttributeError, KeyError):
        return float(info.get("distance", math.nan))


def run_episode(
    env: gym.Env,
    agent: Any,
    seed: int,
    budget: int,
    agent_name: str = "agent",
    task: str = "",
    radius: float | None = None,
    ground_truth: bool = True,
) -> EpisodeResult:
    """Run one goal episode: success is termination at the goal or, for tasks that never terminate,
    the goal distance below ``radius`` (default: the env's ``goal_radius``); stops at success or after ``budget`` steps."""
    obs, goal_obs, info = reset_goal_task(env, seed)
    base = env.unwrapped
    agent.reset()
    n_lat = len(agent.latencies_ms)
    opt = left = None
    # ground truth of absolute-motion grid goals: the shortest solution, and whether it needs "left"
    solvable = callable(getattr(base, "optimal_moves", None)) and not getattr(base, "oriented", True)
    if solvable and ground_truth:
        opt = base.optimal_moves(info["state"], info["goal_state"])
        left = needs_motion(info["state"], info["goal_state"], "left")
    within = radius if radius is not None else getattr(base, "goal_radius", None)
    success, steps, lefts = False, 0, 0
    for steps in range(1, budget + 1):
        action = agent.act(obs, goal_obs)
        if solvable:
            lefts += motion_of(env, action) == "left"
        obs, _, terminated, truncated, info = env.step(action)
        if within is not None:
            success = _distance(info, env) < within
        else:
            success = bool(terminated)
        if success or truncated:
            break
    lat = agent.latencies_ms[n_lat:]
    return EpisodeResult(
        task=task or getattr(env.spec, "id", None) or type(base).__name__,
        agent=agent_name,
        goal_moves=getattr(base, "goal_moves", None),
        seed=seed,
        success=bool(success),
        steps=steps,
        budget=budget,
        final_distance=_distance(info, env),
        ms_per_decision=float(np.mean(lat)) if lat else math.nan,
        optimal_moves=opt,
        needs_left=left,
        left_actions=int(lefts),
    )


def evaluate(
    make_env: Callable[[], gym.Env],
    agents: dict[str, AgentFactory],
    seeds: Sequence[int],
    budget: int,
    task: str,
    progress: Callable[[str], None] | None = None,
    **episode_kwargs: Any,
) -> list[EpisodeResult]:
    """Every agent on the same episodes (reset seeds) of one task."""
    out: list[EpisodeResult] = []
    for name, factory in agents.items():
        env = make_env()
        agent = factory(env)
        for seed in seeds:
            out.append(run_episode(env, agent, int(seed), budget, agent_name=name, task=task, **episode_kwargs))
        env.close()
        if progress is not None:
            rows = [r for r in out if r.agent == name]
            progress(f"{task} {name}: success {sum(r.success for r in rows)}/{len(rows)}, "
                     f"{np.nanmean([r.ms_per_decision for r in rows]):.1f} ms/decision")
    return out


def summarise(results: Iterable[EpisodeResult], by: Sequence[str] = ("task", "agent", "goal_moves")) -> list[dict[str, Any]]:
    """Per group: episodes, success rate (%), its binomial standard error, mean steps to success, ms/decision."""
    groups: dict[tuple, list[EpisodeResult]] = {}
    for r in results:
        groups.setdefault(tuple(getattr(r, k) for k in by), []).append(r)
    rows = []
    for key, rs in groups.items():
        n = len(rs)
        p = sum(r.success for r in rs) / n
        wins = [r.steps for r in rs if r.success]
        rows.append({
            **dict(zip(by, key)),
            "episodes": n,
            "success_%": 100.0 * p,
            "se_%": 100.0 * math.sqrt(p * (1 - p) / n),
            "steps_to_success": float(np.mean(wins)) if wins else math.nan,
            "ms_per_decision": float(np.nanmean([r.ms_per_decision for r in rs])),
        })
    return rows


def default_budget(env: gym.Env) -> int:
    """Grid worlds: ``2k + 4``; otherwise the registered time limit (Reacher 50, rotating object 100)."""
    k = getattr(env.unwrapped, "goal_moves", None)
    if k is not None:
        return grid_budget(k)
    return int(getattr(env.spec, "max_episode_steps", None) or 100)


def run_cli(
    env_id: str | None,
    env_kwargs: dict[str, Any],
    checkpoint: str | None,
    method: str,
    planner_kwargs: dict[str, Any],
    goal_moves: int | None,
    episodes: int,
    seed: int,
    budget: int | None,
    device: str = "cpu",
) -> list[EpisodeResult]:
    """What ``symwm plan`` runs: one agent on ``episodes`` goals; prints one line per episode and a summary."""
    model = None
    if checkpoint is not None:
        from symwm.world_models.checkpoint import load_model

        model = load_model(checkpoint, device=device)
        env_id = env_id or model.spec.env_id
        env_kwargs = {**model.spec.env_kwargs, **env_kwargs}
    if env_id is None:
        raise ValueError("give --env or a checkpoint")
    kwargs = dict(env_kwargs)
    base_env = gym.make(env_id)
    for key, value in getattr(base_env.unwrapped, "goal_options", {}).items():  # the env's goal task, switched on
        kwargs.setdefault(key, goal_moves if key == "goal_moves" and goal_moves else value)
    base_env.close()
    env = gym.make(env_id, **kwargs)
    from symwm.agents.planning import make_agent

    agent = make_agent(env, method, model=model, **planner_kwargs)
    steps = budget or default_budget(env)
    name = f"{method} on {'model ' + checkpoint if checkpoint else 'the simulator'}"
    results = []
    for i in range(episodes):
        r = run_episode(env, agent, seed + i, steps, agent_name=name, task=env_id)
        results.append(r)
        print(f"episode {i}: {'success' if r.success else 'failure'} after {r.steps} steps "
              f"(final distance {r.final_distance:.3g}), {r.ms_per_decision:.1f} ms/decision")
    wins = [r.steps for r in results if r.success]
    ms = np.nanmean([r.ms_per_decision for r in results])
    print(f"{env_id} {kwargs}, {name}: success {len(wins)}/{episodes} ({100 * len(wins) / episodes:.1f} %), "
          f"mean steps to success {np.mean(wins) if wins else float('nan'):.2f}, {ms:.1f} ms/decision")
    return results
