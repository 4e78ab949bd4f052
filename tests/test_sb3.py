"""stable-baselines3 integration: extractor and wrappers (shapes, dtypes, check_env), PPO on latents, save/load."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

import symwm  # noqa: F401  (registers the environments)
from symwm.agents.sb3 import (
    GoalImageObservation,
    LatentEncoder,
    LatentObservation,
    SENFeaturesExtractor,
    VecLatentObservation,
)
from symwm.world_models.build import build_model
from symwm.world_models.checkpoint import load_model, save_checkpoint
from symwm.world_models.collect import collect
from symwm.world_models.model import ModelSpec
from symwm.world_models.train import TrainConfig, train

ENV = "symwm/Shapes2D-v0"
#: the tiny goal task: one square on a 3x3 grid, the goal one move away, 24x24 images
TINY = dict(grid_size=3, n_objects=1, resolution=24, shapes=["square"])
HORIZON = 4


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks: one torch thread is several times faster than two on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, one_thread) -> Path:
    """A small ``ours`` model of the tiny grid world, trained for a few seconds; its 9 latents differ."""
    root = tmp_path_factory.mktemp("sb3")
    data = collect(root / "train.h5", ENV, n_episodes=100, episode_length=10, seed=0, env_kwargs=TINY, progress=False)
    spec = ModelSpec(env_id=ENV, variant="ours", size="cpu", env_kwargs=TINY, overrides=dict(encoder_hidden=16, transition_hidden=16))
    cfg = TrainConfig(dataset=str(data), out_dir=str(root / "run"), epochs=6, batch_size=100, lr=3e-3, progress=False, tensorboard=False)
    path = train(spec, cfg).best
    env = gym.make(ENV, **TINY).unwrapped
    env.reset(seed=0)
    images = np.stack([env.observation_of({"positions": np.array([[r, c]])}) for r in range(3) for c in range(3)])
    with torch.no_grad():
        z = load_model(path).encode(torch.as_tensor(images)).reshape(9, -1)  # [9 cells, K*D]
    gaps = torch.cdist(z, z) + torch.eye(9) * 1e9
    assert float(gaps.min()) > 0.1, "the fixture's world model does not tell the cells apart"
    return path


def goal_env(**kw) -> gym.Env:
    """The tiny goal task with the goal image as extra channels: ``[24, 24, 6]`` uint8."""
    return GoalImageObservation(gym.make(ENV, goal_moves=1, max_episode_steps=HORIZON, **TINY, **kw))


def ppo_kwargs() -> dict:
    return dict(n_steps=64, batch_size=64, n_epochs=4, learning_rate=1e-3, gamma=0.9, ent_coef=0.0, seed=0, device="cpu")


def evaluate(model, env: gym.Env, seeds: range) -> float:
    """Mean undiscounted return of the deterministic policy over one episode per seed."""
    total = 0.0
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total += float(reward)
            done = terminated or truncated
    return total / len(seeds)


# ----------------------------------------------------------------------------------------------
# shapes, dtypes, checkers
# ----------------------------------------------------------------------------------------------


def test_latent_wrapper_shapes_dtypes_and_check_env(checkpoint):
    k, d = load_model(checkpoint).latent_shape
    plain = LatentObservation(gym.make(ENV, **TINY), checkpoint)
    assert plain.observation_space == spaces.Box(-np.inf, np.inf, (k * d,), np.float32)
    obs, _ = plain.reset(seed=0)
    assert obs.shape == (k * d,) and obs.dtype == np.float32
    check_env(plain, warn=True)

    goal = LatentObservation(goal_env(), checkpoint)
    assert goal.observation_space.shape == (2 * k * d,)
    obs, info = goal.reset(seed=1)
    model = load_model(checkpoint)
    with torch.no_grad():
        z_goal = model.encode(torch.as_tensor(info["goal_image"][None])).reshape(-1).numpy()
    np.testing.assert_allclose(obs[k * d :], z_goal, atol=1e-5)
    check_env(goal, warn=True)


@pytest.mark.filterwarnings("ignore:The minimal resolution for an image:UserWarning")
def test_goal_image_wrapper(checkpoint):
    env = goal_env()
    obs, info = env.reset(seed=2)
    assert env.observation_space == spaces.Box(0, 255, (24, 24, 6), np.uint8)
    assert obs.dtype == np.uint8 and np.array_equal(obs[..., 3:], info["goal_image"])
    check_env(env, warn=True)
    with pytest.raises(KeyError, match="goal_moves"):
        GoalImageObservation(gym.make(ENV, **TINY)).reset(seed=0)


def test_vec_wrapper_batches_and_encodes_terminal_observations(checkpoint):
    encoder = LatentEncoder(checkpoint)
    venv = VecLatentObservation(DummyVecEnv([goal_env, goal_env, goal_env]), encoder)
    venv.seed(0)
    obs = venv.reset()
    assert obs.shape == (3, 16) and obs.dtype == np.float32
    seen_terminal = False
    for _ in range(2 * HORIZON):
        obs, _, dones, infos = venv.step(np.array([0, 1, 2]))
        assert obs.shape == (3, 16) and obs.dtype == np.float32
        for done, info in zip(dones, infos):
            if done:
                assert info["terminal_observation"].shape == (16,)
                seen_terminal = True
    assert seen_terminal
    # the same latents as the per-env wrapper
    single = LatentObservation(goal_env(), checkpoint)
    one, _ = single.reset(seed=5)
    pixels, _ = goal_env().reset(seed=5)
    np.testing.assert_allclose(encoder(pixels[None])[0], one, atol=1e-6)


def test_extractor_matches_wrapper_and_keeps_the_trained_weights(checkpoint):
    """Features of the extractor inside PPO = the wrapper's latents (SB3's orthogonal init must not touch them)."""
    env = goal_env()
    kwargs = dict(features_extractor_class=SENFeaturesExtractor, features_extractor_kwargs=dict(checkpoint=str(checkpoint)))
    model = PPO("CnnPolicy", env, policy_kwargs=kwargs, **ppo_kwargs())
    extractor = model.policy.features_extractor
    assert extractor.features_dim == 16 and extractor.n_images == 2
    pixels, _ = env.reset(seed=3)
    obs_tensor, _ = model.policy.obs_to_tensor(pixels)  # [1, 6, 24, 24] (SB3 transposes HWC -> CHW)
    assert obs_tensor.shape == (1, 6, 24, 24)
    features = model.policy.extract_features(obs_tensor, extractor)  # SB3's /255 then the extractor
    assert features.shape == (1, 16) and features.dtype == torch.float32
    latent = LatentObservation(goal_env(), checkpoint).reset(seed=3)[0]
    np.testing.assert_allclose(features[0].detach().numpy(), latent, atol=1e-5)
    # channels-last input and normalize_images=False give the same features
    hwc = SENFeaturesExtractor(spaces.Box(0, 255, (24, 24, 6), np.uint8), str(checkpoint), normalize_images=False)
    np.testing.assert_allclose(hwc(torch.as_tensor(pixels[None]).float()).numpy()[0], latent, atol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        SENFeaturesExtractor(spaces.Box(0, 255, (4, 24, 24), np.uint8), str(checkpoint))


# ----------------------------------------------------------------------------------------------
# learning and save/load
# ----------------------------------------------------------------------------------------------


def test_ppo_on_latents_improves_over_its_initial_policy(checkpoint):
    torch.manual_seed(0)
    venv = make_vec_env(lambda: LatentObservation(goal_env(), checkpoint), n_envs=4, seed=0)
    model = PPO("MlpPolicy", venv, **ppo_kwargs())
    eval_env = LatentObservation(goal_env(), checkpoint)
    seeds = range(1000, 1060)
    before = evaluate(model, eval_env, seeds)
    model.learn(4096)
    after = evaluate(model, eval_env, seeds)
    print(f"mean return before {before:.3f}, after {after:.3f}")
    assert after >= 0.9 and after >= before + 0.3, (before, after)


@pytest.mark.parametrize("freeze", [True, False])
def test_save_load_round_trip(checkpoint, tmp_path, freeze):
    env = goal_env()
    kwargs = dict(features_extractor_class=SENFeaturesExtractor, features_extractor_kwargs=dict(checkpoint=str(checkpoint), freeze=freeze))
    model = PPO("CnnPolicy", env, policy_kwargs=kwargs, **ppo_kwargs())
    before = {k: v.clone() for k, v in model.policy.features_extractor.state_dict().items()}
    model.learn(128)
    after = model.policy.features_extractor.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert (not changed) if freeze else changed  # frozen stays put (batch norm included); fine-tuning moves
    obs = np.stack([env.reset(seed=s)[0] for s in range(8)])
    actions, _ = model.predict(obs, deterministic=True)
    values = model.policy.predict_values(model.policy.obs_to_tensor(obs)[0]).detach()
    for mode in (True, False):  # saved from train and from eval mode (escnn caches differ between them)
        model.policy.set_training_mode(mode)
        model.save(tmp_path / "ppo.zip")
        loaded = PPO.load(tmp_path / "ppo.zip", device="cpu")
        np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], actions)
        assert torch.equal(loaded.policy.predict_values(loaded.policy.obs_to_tensor(obs)[0]).detach(), values)
        assert set(loaded.policy.state_dict()) == set(model.policy.state_dict())


def test_dqn_with_the_extractor_runs_and_round_trips(checkpoint, tmp_path):
    env = goal_env()
    kwargs = dict(features_extractor_class=SENFeaturesExtractor, features_extractor_kwargs=dict(checkpoint=str(checkpoint), freeze=False))
    model = DQN("CnnPolicy", env, policy_kwargs=kwargs, buffer_size=500, learning_starts=32, batch_size=16, train_freq=4, target_update_interval=50, seed=0, device="cpu")
    model.learn(200)
    obs = np.stack([env.reset(seed=s)[0] for s in range(8)])
    q = model.q_net(model.policy.obs_to_tensor(obs)[0]).detach()
    model.save(tmp_path / "dqn.zip")
    loaded = DQN.load(tmp_path / "dqn.zip", device="cpu")
    assert torch.equal(loaded.q_net(loaded.policy.obs_to_tensor(obs)[0]).detach(), q)


def test_checkpoint_moved_after_saving(checkpoint, tmp_path):
    """The extractor is rebuilt from its checkpoint path at load time; custom_objects points at a moved one."""
    moved = tmp_path / "moved.pt"
    moved.write_bytes(Path(checkpoint).read_bytes())
    env = goal_env()
    kwargs = dict(features_extractor_class=SENFeaturesExtractor, features_extractor_kwargs=dict(checkpoint=str(moved)))
    model = PPO("CnnPolicy", env, policy_kwargs=kwargs, **ppo_kwargs())
    model.save(tmp_path / "ppo.zip")
    moved.unlink()
    with pytest.raises(Exception, match="moved.pt"):
        PPO.load(tmp_path / "ppo.zip", device="cpu")
    fixed = dict(kwargs, features_extractor_kwargs=dict(checkpoint=str(checkpoint)))
    loaded = PPO.load(tmp_path / "ppo.zip", device="cpu", custom_objects={"policy_kwargs": fixed})
    obs = np.stack([env.reset(seed=s)[0] for s in range(4)])
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


def test_fine_tuning_an_escnn_cnn_encoder_round_trips(tmp_path):
    """Reacher's D4 encoder (escnn R2Conv + InnerBatchNorm): fine-tuned, saved in either mode, loaded identically."""
    spec = ModelSpec(env_id="symwm/Reacher-v0", variant="ours", size="cpu")
    world = build_model(spec, initialize=False)  # escnn's init is slow; random weights suffice here
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in world.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    path = save_checkpoint(tmp_path / "reacher.pt", world)
    env = gym.make("symwm/Reacher-v0", max_episode_steps=20)
    kwargs = dict(features_extractor_class=SENFeaturesExtractor, features_extractor_kwargs=dict(checkpoint=str(path), freeze=False))
    model = PPO("CnnPolicy", env, policy_kwargs=kwargs, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
    extractor = model.policy.features_extractor
    assert extractor.features_dim == 32 and extractor._cache_keys  # escnn filter caches exist in eval mode
    model.learn(32)
    obs = np.stack([env.reset(seed=s)[0] for s in range(4)])
    actions = model.predict(obs, deterministic=True)[0]
    for mode in (True, False):
        model.policy.set_training_mode(mode)
        assert not set(extractor.state_dict()) & extractor._cache_keys
        assert not set(model.policy.state_dict()) & {"features_extractor." + k for k in extractor._cache_keys}
        model.save(tmp_path / "reacher_ppo.zip")
        loaded = PPO.load(tmp_path / "reacher_ppo.zip", device="cpu")
        np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], actions)
