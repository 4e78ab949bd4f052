"""Latent planning: search and sampling planners on the simulator, an exact latent model and a toy problem."""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import symwm  # noqa: F401  (registers the environments)
from symwm.agents.dynamics import Dynamics, LatentDynamics, SimulatorDynamics, fast_transition
from symwm.agents.evaluate_planning import evaluate, grid_budget, run_episode, summarise
from symwm.agents.goals import inverse_kinematics, needs_motion, reacher_goal_state, reset_goal_task
from symwm.agents.planning import CEM, MPPI, BeamSearch, PlanningAgent, RandomAgent, make_agent, make_planner
from symwm.agents.search import novel_mask
from symwm.envs.grid_world import DELTAS
from symwm.envs.reacher import forward_kinematics

GRID = "symwm/Shapes2D-v0"


def solve(env, agent, seed, budget):
    """Run one goal episode; True when the goal is reached within ``budget`` steps."""
    obs, goal_obs, _ = reset_goal_task(env, seed)
    agent.reset()
    for _ in range(budget):
        obs, _, terminated, _, _ = env.step(agent.act(obs, goal_obs))
        if terminated:
            return True
    return False


# -- the true simulator ------------------------------------------------------------------------


@pytest.mark.parametrize("method,kwargs", [("beam", {"width": 8, "depth": 3}), ("bfs", {"depth": 2}), ("bfs", {"depth": 3, "dedupe": True})])
@pytest.mark.parametrize("env_id", [GRID, "symwm/Cubes3D-v0"])
def test_search_on_simulator_solves_grid_goals(env_id, method, kwargs):
    for k in (1, 2, 3):
        env = gym.make(env_id, goal_moves=k)
        agent = make_agent(env, method, **kwargs)
        for seed in range(6):
            obs, goal_obs, info = reset_goal_task(env, seed)
            best = env.unwrapped.optimal_moves(info["state"], info["goal_state"])
            agent.reset()
            steps = 0
            for steps in range(1, k + 1):
                obs, _, terminated, _, info = env.step(agent.act(obs, goal_obs))
                if terminated:
                    break
            assert terminated, (env_id, method, k, seed)
            assert steps == best


def test_bfs_is_exhaustive_and_batched():
    env = gym.make(GRID, goal_moves=3)
    obs, goal_obs, _ = reset_goal_task(env, 0)
    dyn = SimulatorDynamics(env)
    root, goal = dyn.start(obs, goal_obs)
    plan = make_planner("bfs", depth=2, dedupe=False).plan(dyn, root, goal)
    assert plan.evaluated == 20 + 20 * 20  # every sequence of length <= 2
    assert plan.actions.dtype == np.int64 and 1 <= len(plan.actions) <= 2


def test_fast_transitions_match_env_step():
    rng = np.random.default_rng(0)
    for env_id, kwargs in [(GRID, {"goal_moves": 3}), ("symwm/Reacher-v0", {}), ("symwm/RotatingObject-v0", {}),
                           ("symwm/RotatingObject-v0", {"actions": "continuous"})]:
        env = gym.make(env_id, **kwargs)
        env.reset(seed=1)
        step = fast_transition(env)
        base = env.unwrapped
        for _ in range(5):
            state = base.get_state()
            action = env.action_space.sample()
            predicted = step(state, action)
            base.set_state(state)
            env.step(action)
            assert base.symmetry.state_distance(predicted, base.get_state()) <= 1e-12, env_id  # set_state re-orthonormalises
            if rng.random() < 0.5:
                env.step(env.action_space.sample())


# -- a latent planner on an exact hand-made model ----------------------------------------------


class ExactGridModel(nn.Module):
    """WorldModel-like: the latent of an observation is its true object positions ``[B, K, 2]``."""

    def __init__(self, env_id: str, n_objects: int = 5, grid_size: int = 5):
        super().__init__()
        self.spec = SimpleNamespace(env_id=env_id, env_kwargs={})
        self.latent_shape = (n_objects, 2)
        self.grid_size = grid_size
        self.memory: dict[bytes, np.ndarray] = {}

    def remember(self, obs: np.ndarray, positions: np.ndarray) -> None:
        """Teach the 'encoder' which state an observation shows."""
        self.memory[np.asarray(obs).tobytes()] = np.asarray(positions, dtype=np.float32)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.from_numpy(self.memory[o.numpy().tobytes()]) for o in obs])  # [B, K, 2]

    def predict(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        rows = torch.arange(b)
        obj, motion = actions // 4, actions % 4
        target = z[rows, obj] + torch.as_tensor(DELTAS, dtype=z.dtype)[motion]  # [B, 2]
        inside = ((target >= 0) & (target < self.grid_size)).all(1)
        free = ~(z == target[:, None]).all(2).any(1)
        out = z.clone()
        ok = inside & free
        out[rows[ok], obj[ok]] = target[ok]
        return out


@pytest.mark.parametrize("method,kwargs", [("beam", {"width": 8, "depth": 3}), ("bfs", {"depth": 3})])
def test_latent_planner_with_exact_model_solves_grid_goals(method, kwargs):
    model = ExactGridModel(GRID)
    for k in (1, 2, 3):
        env = gym.make(GRID, goal_moves=k)
        agent = make_agent(env, method, model=model, **kwargs)
        assert isinstance(agent.dynamics, LatentDynamics)
        for seed in range(5):
            obs, goal_obs, info = reset_goal_task(env, seed)
            agent.reset()
            model.remember(goal_obs, info["goal_state"]["positions"])
            for _ in range(k):
                model.remember(obs, info["state"]["positions"])
                obs, _, terminated, _, info = env.step(agent.act(obs, goal_obs))
                if terminated:
                    break
            assert terminated, (method, k, seed)


def test_agent_skips_actions_seen_to_do_nothing():
    """A model that believes a blocked move works must not repeat it forever."""
    env = gym.make(GRID, goal_moves=1)
    obs, goal_obs, info = reset_goal_task(env, 0)
    model = ExactGridModel(GRID)
    model.remember(obs, info["state"]["positions"])
    model.remember(goal_obs, info["goal_state"]["positions"])
    agent = make_agent(env, "beam", model=model, width=4, depth=1)
    first = agent.act(obs, goal_obs)
    assert agent.act(obs, goal_obs) != first  # same observation again: the first action did nothing
    agent.reset()
    assert agent.act(obs, goal_obs) == first


# -- continuous planners ---------------------------------------------------------------------


class PointDynamics(Dynamics):
    """A toy: a point in the plane moved by ``0.2 * a``, ``a`` in [-1, 1]^2; distance to a goal."""

    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, start=(0.0, 0.0), goal=(1.0, -0.6)):
        self.x0, self.g = torch.tensor([start], dtype=torch.float64), torch.tensor([goal], dtype=torch.float64)

    def start(self, obs, goal_obs):
        return self.x0.clone(), self.g

    def step(self, states, actions):
        return states + 0.2 * actions.double()

    def distance(self, states, goal):
        return (states - goal).norm(dim=1)

    def take(self, states, index):
        return states[index]

    def features(self, states):
        return states


@pytest.mark.parametrize("planner", [CEM(horizon=8, population=64, elites=8, iterations=4), MPPI(horizon=8, samples=64, iterations=3)])
def test_sampling_planners_reduce_cost(planner):
    from symwm.agents.sampling import rollout_costs

    dyn = PointDynamics()
    root, goal = dyn.start(None, None)
    zero = rollout_costs(dyn, root, goal, torch.zeros(1, 8, 2), "sum")
    plan = planner.plan(dyn, root, goal)
    assert plan.actions.shape == (8, 2) and plan.actions.dtype == np.float32
    assert np.all(np.abs(plan.actions) <= 1.0)
    cost = rollout_costs(dyn, root, goal, torch.from_numpy(plan.actions)[None], "sum")
    assert float(cost) < 0.6 * float(zero)
    agent = PlanningAgent(dyn, planner)
    x = dyn.x0.clone()
    for _ in range(10):  # receding horizon reaches the goal
        dyn.x0 = x
        x = dyn.step(x, torch.from_numpy(agent.act(None, None))[None])
    assert float(dyn.distance(x, dyn.g)) < 0.15


def test_act_returns_valid_actions():
    for env_id, kwargs, method in [(GRID, {"goal_moves": 2}, "beam"), ("symwm/RotatingObject-v0", {}, "beam"),
                                   ("symwm/RotatingObject-v0", {"actions": "continuous"}, "cem"),
                                   ("symwm/Reacher-v0", {"goal": "random"}, "mppi")]:
        env = gym.make(env_id, **kwargs)
        small = {"horizon": 3, "iterations": 1} if method in ("cem", "mppi") else {"width": 4, "depth": 2}
        if method == "cem":
            small.update(population=16, elites=4)
        if method == "mppi":
            small.update(samples=16)
        agent = make_agent(env, method, **small)
        obs, goal_obs, _ = reset_goal_task(env, 0)
        for _ in range(2):
            action = agent.act(obs, goal_obs)
            assert env.action_space.contains(action), (env_id, action)
            obs, *_ = env.step(action)
        assert len(agent.latencies_ms) == 2 and all(ms > 0 for ms in agent.latencies_ms)
        random_agent = RandomAgent(env, seed=0)
        assert env.action_space.contains(random_agent.act(obs, goal_obs))


def test_bad_inputs_raise():
    env = gym.make(GRID, goal_moves=2)
    obs, goal_obs, _ = reset_goal_task(env, 0)
    agent = make_agent(env, "beam")
    with pytest.raises(ValueError, match="goal observation has shape"):
        agent.act(obs, goal_obs[:10])
    with pytest.raises(ValueError, match="observation has shape"):
        agent.act(obs[None], goal_obs)
    with pytest.raises(ValueError, match="dtype"):
        agent.act(obs.astype(np.float32), goal_obs)
    with pytest.raises(ValueError, match="unknown planning method"):
        make_agent(env, "dijkstra")
    with pytest.raises(ValueError, match="does not fit"):
        make_agent(env, "cem")
    with pytest.raises(ValueError, match="does not fit"):
        make_agent(gym.make("symwm/Reacher-v0"), "beam")
    with pytest.raises(ValueError, match="width"):
        BeamSearch(width=0)
    with pytest.raises(ValueError, match="cost"):
        CEM(cost="max")
    with pytest.raises(ValueError, match="max_nodes"):
        agent = make_agent(env, "bfs", depth=4, max_nodes=10)
        agent.act(obs, goal_obs)


def test_novel_mask_exact_and_tolerant():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.01]], dtype=torch.float64)
    assert novel_mask(x, None, 0.0).tolist() == [True, True, False, True]
    assert novel_mask(x, None, 1e-3).tolist() == [True, True, False, False]
    assert novel_mask(x, x[:1], 1e-3).tolist() == [False, True, False, False]


# -- goals and evaluation --------------------------------------------------------------------


def test_needs_left_matches_search_without_left():
    env = gym.make(GRID, goal_moves=3)
    base = env.unwrapped
    no_left = [a for a in range(20) if a % 4 != 3]
    seen = {True: 0, False: 0}
    for seed in range(30):
        _, _, info = reset_goal_task(env, seed)
        start, goal = info["state"], info["goal_state"]
        best = env.unwrapped.optimal_moves(start, goal)
        assert best is not None and best <= 3
        left = needs_motion(start, goal, "left")
        seen[left] += 1
        if left:  # columns never decrease without "left": unreachable, however long the search
            assert env.unwrapped.optimal_moves(start, goal, allowed=no_left, max_moves=8) is None
    assert seen[True] and seen[False]
    assert base.goal_moves == 3


def test_reacher_goal_image_puts_the_fingertip_on_the_goal():
    env = gym.make("symwm/Reacher-v0", goal="random")
    obs, goal_obs, info = reset_goal_task(env, 3)
    state = reacher_goal_state(env)
    tip = forward_kinematics(state["qpos"], env.unwrapped.link_lengths)[1]
    assert np.allclose(tip, info["state"]["goal"], atol=1e-9)
    for q in inverse_kinematics(np.array([0.3, 1.2]), (1.0, 1.0)):
        assert np.allclose(forward_kinematics(q, (1.0, 1.0))[1], [0.3, 1.2])
    assert goal_obs.shape == obs.shape and goal_obs.dtype == np.uint8


def test_evaluate_and_summarise():
    agents = {"random": lambda env: RandomAgent(env, seed=0), "sim": lambda env: make_agent(env, "beam", width=8, depth=3)}
    rows = evaluate(lambda: gym.make(GRID, goal_moves=2), agents, seeds=range(4), budget=grid_budget(2), task="shapes")
    assert len(rows) == 8
    summary = {r["agent"]: r for r in summarise(rows)}
    assert summary["sim"]["success_%"] == 100.0 and summary["sim"]["episodes"] == 4
    assert summary["sim"]["steps_to_success"] <= 2
    reacher = run_episode(gym.make("symwm/Reacher-v0", goal="random"), RandomAgent(gym.make("symwm/Reacher-v0"), 0), 0, 3)
    assert reacher.steps == 3 and reacher.final_distance > 0


def test_plan_cli_on_the_simulator(capsys):
    from symwm.cli import main

    assert main(["plan", "--env", GRID, "--goal-moves", "2", "--method", "beam", "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "success 3/3" in out and "ms/decision" in out
