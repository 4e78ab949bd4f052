"""The generic planar family (C_n / D_n with derived action representations) on two user environments
written outside symwm: a C6 hexagonal board with discrete moves and a D4 arena with 2-d forces."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from escnn import group as egroup

from symwm.envs.checker import check_symmetric_env
from symwm.envs.groups import Dihedral
from symwm.world_models.build import build_model, make_env
from symwm.world_models.equivariance import check_model_equivariance
from symwm.world_models.escnn_bridge import to_escnn
from symwm.world_models.model import ModelSpec
from symwm.world_models.representations import linear_action_representation

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HEX, PUCK = "hex_env:HexToken-v0", "puck_env:Puck-v0"


@pytest.fixture(autouse=True)
def examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))


@pytest.mark.parametrize("env_id", [HEX, PUCK])
def test_the_examples_keep_the_contract_and_get_the_planar_family(env_id):
    assert all(r.ok for r in check_symmetric_env(gym.make(env_id), n=20))
    model = build_model(ModelSpec(env_id))
    assert model.family == "planar"


@pytest.mark.parametrize("mode", ["train", "eval", "export"])
@pytest.mark.parametrize("env_id", [HEX, PUCK])
def test_ours_is_equivariant_and_none_is_not(env_id, mode):
    env = make_env(ModelSpec(env_id))
    torch.manual_seed(0)
    model = build_model(ModelSpec(env_id, "ours"))
    model = model.export() if mode == "export" else model.train(mode == "train")
    errs = check_model_equivariance(model, env, batch=6)
    assert errs["encoder"] < 1e-4 and errs["transition"] < 1e-4, errs
    none = build_model(ModelSpec(env_id, "none")).eval()
    v = none.embed(torch.randint(0, 256, (4, *env.observation_space.shape), dtype=torch.uint8))
    g = env.symmetry.action_group.elements()[1]
    rel = (none.encoder(none.symmetry.act_on_embedding(g, v)) - none.encoder(v)).norm() / none.encoder(v).norm()
    assert rel > 0.05  # not invariant, and its latent has no group action at all
    with pytest.raises(ValueError, match="no group action"):
        none.symmetry.act_on_latent(g, torch.zeros(1, *none.latent_shape))


def test_action_representations_are_derived_from_the_env():
    hex_model = build_model(ModelSpec(HEX)).eval()
    t = hex_model.transition
    assert t.n_actions == 6 and sorted(t.slots.tolist()) == list(range(6))  # one regular C6 orbit
    G = egroup.dihedral_group(4)
    d4 = Dihedral(4, reflections=True)
    elements = {to_escnn(g, G): g for g in d4.elements()}
    rep = linear_action_representation(lambda g, a: d4.matrix(g) @ np.asarray(a), elements, 2, G)
    for h, g in elements.items():
        assert np.allclose(rep(h), d4.matrix(g))
    with pytest.raises(ValueError, match="not linear"):
        linear_action_representation(lambda g, a: np.abs(d4.matrix(g) @ np.asarray(a)), elements, 2, G)
    with pytest.raises(ValueError, match="not orthogonal"):
        linear_action_representation(lambda g, a: np.diag([2.0, 1.0]) @ d4.matrix(g) @ np.diag([0.5, 1.0]) @ np.asarray(a), elements, 2, G)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", [HEX, PUCK])
def test_examples_end_to_end(env_id, tmp_path):
    """collect, train a few steps, evaluate with twins, plan to a goal, a few hundred PPO steps on the latents of obs and goal."""
    from stable_baselines3 import PPO

    from symwm.agents.planning import make_agent
    from symwm.agents.goals import reset_goal_task
    from symwm.agents.sb3 import GoalImageObservation, SENFeaturesExtractor
    from symwm.world_models.checkpoint import load_model
    from symwm.world_models.collect import collect
    from symwm.world_models.evaluate import evaluate
    from symwm.world_models.train import TrainConfig, train

    data = collect(tmp_path / "train.h5", env_id, n_episodes=60, episode_length=5, seed=1, progress=False)
    ev = collect(tmp_path / "eval.h5", env_id, n_episodes=20, episode_length=3, seed=2, twins="quarter-turn", progress=False)
    result = train(ModelSpec(env_id), TrainConfig(dataset=str(data), out_dir=str(tmp_path / "run"), epochs=2, batch_size=32,
                                                 lr=1e-3, progress=False, tensorboard=False))
    model = load_model(result.best)
    metrics = evaluate(model, ev, 2, distinct_targets=True)
    assert 0 < metrics["hits@1"] <= metrics["distinct_hits@1"] <= 100 and 1 <= metrics["distinct_final_obs"] <= 20
    assert np.isfinite(metrics["ee"]) and np.isfinite(metrics["ee_latent"])  # ours: its latent carries the group's action
    assert "slot_usage" not in metrics  # one latent, no object slots
    env = gym.make(env_id)
    method, kwargs = ("beam", dict(width=8, depth=3)) if env_id == HEX else ("cem", dict(horizon=4, population=32, elites=4, iterations=2))
    for agent_model in (None, model):  # the simulator reaches the goal; the model's agent runs through the same interface
        agent = make_agent(env, method, model=agent_model, **kwargs)
        obs, goal_obs, _ = reset_goal_task(env, 0)
        agent.reset()
        for _ in range(3):
            obs, _, done, _, _ = env.step(agent.act(obs, goal_obs))
            if done:
                break
    obs, goal_obs, info = reset_goal_task(env, 1)  # the goal is not drawn into the observation: it comes as an image of its own
    assert (goal_obs == info["goal_image"]).all() and not (goal_obs == obs).all()
    ppo = PPO("CnnPolicy", GoalImageObservation(env), n_steps=64, batch_size=32, n_epochs=1, seed=0,
              policy_kwargs=dict(features_extractor_class=SENFeaturesExtractor,
                                 features_extractor_kwargs=dict(checkpoint=str(result.best))))
    ppo.learn(256)
    assert ppo.num_timesteps >= 256


def test_symwm_plan_reaches_goals_of_a_users_env_on_the_simulator(capsys):
    from symwm.cli import main

    assert main(["plan", "--env", HEX, "--method", "bfs", "--set", "depth=6", "--episodes", "3"]) == 0
    assert "success 3/3" in capsys.readouterr().out


def test_check_warns_about_per_episode_constants_in_observations():
    """A goal marker drawn into every frame identifies episodes without any dynamics; the examples keep it out."""
    from symwm.envs.checker import check_episode_constants

    class GoalMarker(gym.ObservationWrapper):
        def observation(self, obs):
            obs = obs.copy()
            goal = self.env.unwrapped.get_state()["goal"]
            obs[0, int(goal[0]) + 3, 1] = 255  # a pixel that depends on the episode's goal only
            return obs

    for env_id in (HEX, PUCK):
        assert check_episode_constants(gym.make(env_id)).ok
    marked = check_episode_constants(GoalMarker(gym.make(HEX)))
    assert not marked.ok and 0 < marked.error < 0.01 and "goal_image" in marked.detail


def test_the_planar_family_also_models_reacher_from_its_contract():
    """Reacher's torques flip sign under reflections: a linear representation the planar family derives itself."""
    env = make_env(ModelSpec("symwm/Reacher-v0"))
    model = build_model(ModelSpec("symwm/Reacher-v0", "ours", family="planar")).eval()
    assert model.family == "planar" and sum(p.numel() for p in model.parameters()) == 77_268  # the README's figure
    errs = check_model_equivariance(model, env, batch=4)
    assert errs["encoder"] < 1e-4 and errs["transition"] < 1e-4, errs
