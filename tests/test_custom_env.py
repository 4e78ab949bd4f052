"""A user's own symmetric environment (examples/custom_env.py, registered outside symwm) end to end,
and the model-family registry that picks its networks from what it declares."""

import types
from pathlib import Path

import gymnasium as gym
import pytest

from symwm.cli import main
from symwm.world_models import families
from symwm.world_models.build import build_model, family, make_env
from symwm.world_models.checkpoint import load_model, read_checkpoint
from symwm.world_models.families import FamilyError, family_for_env, register_family
from symwm.world_models.model import ModelSpec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ENV = "custom_env:TorusTokens-v0"


@pytest.fixture(autouse=True)
def examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))


def test_a_users_env_goes_from_check_to_eval_through_the_cli(tmp_path, capsys):
    assert main(["check", "--env", ENV, "-n", "20"]) == 0
    train_h5, eval_h5, run = tmp_path / "train.h5", tmp_path / "eval.h5", tmp_path / "ours"
    assert main(["collect", "--env", ENV, "--out", str(train_h5), "--episodes", "40", "--steps", "4", "--quiet"]) == 0
    assert main(["collect", "--env", ENV, "--out", str(eval_h5), "--episodes", "12", "--steps", "3", "--seed", "1",
                 "--twins", "quarter-turn", "--quiet"]) == 0
    assert main(["train", "--env", ENV, "--dataset", str(train_h5), "--out-dir", str(run), "--epochs", "1",
                 "--batch-size", "32", "--no-progress", "--no-tensorboard"]) == 0
    assert main(["eval", str(run / "best.pt"), "--dataset", str(eval_h5), "--horizon", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "| ours" in out and "EE" in out
    assert read_checkpoint(run / "best.pt")["family"] == "grid"
    model = load_model(run / "best.pt")
    assert model.family == "grid" and model.latent_shape == (2, 8)

    # the latents as features for stable-baselines3, from the same checkpoint
    import numpy as np
    import torch

    from symwm.agents.sb3 import LatentObservation, SENFeaturesExtractor

    wrapped = LatentObservation(gym.make(ENV), str(run / "best.pt"))
    z, _ = wrapped.reset(seed=0)
    assert z.shape == (16,) and z.dtype == np.float32
    extractor = SENFeaturesExtractor(gym.spaces.Box(0, 255, (3, 24, 24), np.uint8), str(run / "best.pt"))
    frame = torch.as_tensor(gym.make(ENV).reset(seed=0)[0]).permute(2, 0, 1)[None].float() / 255  # as SB3 hands it
    torch.testing.assert_close(extractor(frame)[0], torch.as_tensor(z), rtol=1e-4, atol=1e-5)


def test_the_family_comes_from_the_contract_not_the_id():
    assert family(ENV).NAME == "grid"
    assert family("symwm/Reacher-v0").NAME == "reacher" and family("symwm/RotatingObject-v0").NAME == "rotation"
    with pytest.raises(FamilyError, match=r"no model family supports CartPole-v1 \(rotation: needs the group SO\(3\)"):
        build_model(ModelSpec("CartPole-v1"))
    with pytest.raises(FamilyError, match="cannot model .*needs D4"):
        build_model(ModelSpec(ENV, family="reacher"))
    with pytest.raises(FamilyError, match="unknown model family 'nope'"):
        build_model(ModelSpec(ENV, family="nope"))


def test_unknown_ids_are_usage_errors_that_say_what_to_do(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["collect", "--env", "NoSuch-v0", "--out", str(tmp_path / "x.h5")])
    assert exc.value.code == 2
    assert "pass 'that_module:NoSuch-v0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--env", "no_such_module:X-v0", "--dataset", "x.h5", "--out-dir", str(tmp_path / "r")])
    assert "cannot import module 'no_such_module'" in capsys.readouterr().err


def test_a_registered_family_is_used_when_named_and_must_fit(monkeypatch):
    import symwm.world_models.models.grid as grid

    monkeypatch.setattr(families, "_registry", dict(families.families()))
    calls = []

    def build(spec, env, params, initialize=True):
        calls.append(params)
        return grid.build(spec, env, {**grid.PRESETS["cpu"]["ours"], "encoder_hidden": params["width"]}, initialize)

    mine = types.SimpleNamespace(
        NAME="tokens", VARIANTS=("ours",), PRESETS={"cpu": {"ours": {"width": 8}}, "paper": {"ours": {"width": 64}}},
        supports=lambda env: None if getattr(env, "n_objects", None) == 2 else "needs two tokens", build=build,
    )
    register_family(mine)
    with pytest.raises(ValueError, match="already registered"):
        register_family(types.SimpleNamespace(**{**vars(mine)}))
    with pytest.raises(TypeError, match="lacks"):
        register_family(types.SimpleNamespace(NAME="x"))
    env = make_env(ModelSpec(ENV))
    assert family_for_env(env).NAME == "grid"  # built-in families come first
    model = build_model(ModelSpec(ENV, family="tokens", overrides={"width": 4}))
    assert model.family == "tokens" and calls == [{"width": 4}]
    assert ModelSpec(ENV).to_dict() == {"env_id": ENV, "variant": "ours", "size": "cpu", "env_kwargs": {}, "overrides": {}}
    with pytest.raises(FamilyError, match="needs two tokens"):
        family_for_env(gym.make("symwm/Cubes3D-v0").unwrapped, "tokens")


def test_the_checker_names_what_breaks_the_contract():
    import custom_env

    from symwm.envs.checker import check_symmetric_env

    env = gym.make(ENV)
    assert all(r.ok for r in check_symmetric_env(env, n=10))

    class Unturned(custom_env.TorusSymmetry):  # forgets to turn the motion with the board
        def act_on_action(self, g, action):
            planar, perm = g
            token, motion = divmod(int(action), 4)
            return 4 * perm.perm[token] + motion

    env.unwrapped.symmetry = Unturned()
    bad = {r.name for r in check_symmetric_env(env, n=20) if not r.ok}
    assert bad == {"equivariant dynamics"}
    [result] = check_symmetric_env(gym.make("CartPole-v1"))
    assert not result.ok and "not a symwm SymmetricEnv" in result.detail


def test_train_takes_a_model_instance_and_its_checkpoint_loads(tmp_path):
    from symwm.world_models.collect import collect
    from symwm.world_models.train import TrainConfig, train

    data = collect(tmp_path / "train.h5", ENV, n_episodes=16, episode_length=3, seed=2, progress=False)
    model = build_model(ModelSpec(ENV, "none", overrides={"latent_dim": 3}))
    cfg = TrainConfig(dataset=str(data), out_dir=str(tmp_path / "run"), epochs=1, batch_size=16, lr=1e-3,
                      progress=False, tensorboard=False, val_fraction=0.0)
    before = [p.detach().clone() for p in model.parameters()]
    result = train(model, cfg)
    assert any(not a.equal(b) for a, b in zip(before, model.parameters()))  # trained in place
    loaded = load_model(result.last)
    assert loaded.latent_shape == (2, 3) and loaded.family == "grid"
    state = model.eval().state_dict()
    assert all(v.equal(loaded.state_dict()[k]) for k, v in state.items())


def test_the_library_equivariance_check_on_a_users_env():
    from symwm.world_models.equivariance import check_model_equivariance

    env = make_env(ModelSpec(ENV))
    for variant in ("ours", "full"):
        errs = check_model_equivariance(build_model(ModelSpec(ENV, variant)).eval(), env)
        assert errs["encoder"] < 1e-4 and errs["transition"] < 1e-4, (variant, errs)
    assert check_model_equivariance(build_model(ModelSpec(ENV, "none")).eval(), env) == {"encoder": None, "transition": None}


def test_goal_tasks_come_from_the_env_interface():
    from symwm.agents.dynamics import SimulatorDynamics, StateBatch
    from symwm.agents.goals import reset_goal_task

    with pytest.raises(ValueError, match="TorusTokensEnv has no goal task"):
        reset_goal_task(gym.make(ENV), 0)
    env = gym.make("symwm/Shapes2D-v0", goal_moves=2)
    obs, goal_obs, info = reset_goal_task(env, 0)
    assert goal_obs.shape == obs.shape and (goal_obs == info["goal_image"]).all()
    sim = SimulatorDynamics(env)
    states, _ = sim.start(obs, goal_obs)
    assert 0 < float(sim.distance(states, None)[0]) <= 2 * 2
    goal = {**info["state"], "positions": info["state"]["goal_positions"]}
    assert float(sim.distance(StateBatch.of([goal]), None)[0]) == 0.0
