"""Every registered environment: Gymnasium and SB3 checkers, seeding, pickling, the state API and
the group laws of its symmetry (Minigrid's pattern: one parametrised test over every id)."""

import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import symwm
from symwm.envs import ENV_IDS, SymmetricEnv

#: tolerance of state comparisons per env: exact for the grid worlds
STATE_TOL = {"symwm/Reacher-v0": 1e-9, "symwm/RotatingObject-v0": 1e-9}


def make(env_id, **kwargs):
    return gym.make(env_id, **kwargs)


def group_elements(sym, rng, n_random=6, action=False):
    group = sym.action_group if action else sym.group
    if group.is_finite and group.order <= 1000:
        return group.elements()
    return [group.sample(rng) for _ in range(n_random)]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_checkers_pass(env_id):
    env = make(env_id)
    gym_check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env.unwrapped, warn=True)
    assert isinstance(env.unwrapped, SymmetricEnv)
    assert env.observation_space.dtype == np.uint8


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_make_without_importing_symwm_first(env_id):
    code = (
        "import gymnasium as gym; "
        f"env = gym.make('symwm:{env_id}'); obs, info = env.reset(seed=0); "
        "print(obs.shape, 'symwm' in type(env.unwrapped).__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "True" in out.stdout


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_episode_byte_for_byte(env_id):
    def episode(seed):
        env = make(env_id)
        obs, info = env.reset(seed=seed)
        env.action_space.seed(seed)
        frames, rewards = [obs.tobytes()], []
        for _ in range(10):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            frames.append(obs.tobytes())
            rewards.append(reward)
            if terminated or truncated:
                break
        return frames, rewards

    assert episode(3) == episode(3)
    assert episode(3)[0] != episode(4)[0]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickled_env_continues_identically(env_id):
    env = make(env_id)
    env.reset(seed=5)
    clone = pickle.loads(pickle.dumps(env))
    env.action_space.seed(0)
    for _ in range(5):
        action = env.action_space.sample()
        a = env.step(action)
        b = clone.step(action)
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_state_round_trip_and_info(env_id):
    env = make(env_id)
    base = env.unwrapped
    obs, info = env.reset(seed=1)
    state = base.get_state()
    assert set(state) == set(base.state_space.spaces)
    assert all(np.array_equal(state[k], info["state"][k]) for k in state)
    assert np.array_equal(base.set_state(state), obs)
    # observation_of renders another state without disturbing the env
    env.step(env.action_space.sample())
    current, current_obs = base.get_state(), base._observation()
    assert np.array_equal(base.observation_of(state), obs)
    assert base.symmetry.state_distance(base.get_state(), current) == 0
    assert np.array_equal(base._observation(), current_obs)
    # info carries a copy: mutating it does not touch the env
    _, _, _, _, info = env.step(env.action_space.sample())
    before = base.get_state()
    for v in info["state"].values():
        v[...] = 0
    assert base.symmetry.state_distance(base.get_state(), before) == 0


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_group_laws_on_states_and_actions(env_id):
    env = make(env_id)
    base, sym = env.unwrapped, env.unwrapped.symmetry
    group, rng = sym.group, np.random.default_rng(0)
    tol = STATE_TOL.get(env_id, 0.0)
    env.reset(seed=2)
    state = base.get_state()
    elements = group_elements(sym, rng)
    e = group.identity()
    assert sym.state_distance(sym.act_on_state(e, state), state) <= tol
    pairs = [(elements[i], elements[j]) for i, j in rng.integers(len(elements), size=(40, 2))]
    for g, h in pairs:
        gh = group.compose(g, h)
        lhs = sym.act_on_state(g, sym.act_on_state(h, state))
        assert sym.state_distance(lhs, sym.act_on_state(gh, state)) <= tol
        back = sym.act_on_state(group.inverse(g), sym.act_on_state(g, state))
        assert sym.state_distance(back, state) <= tol
        base.validate_state(sym.act_on_state(g, state))  # transformed states are valid states
    # actions
    agroup = sym.action_group
    aelements = group_elements(sym, rng, action=True)
    env.action_space.seed(1)
    for _ in range(20):
        a = env.action_space.sample()
        g, h = (aelements[i] for i in rng.integers(len(aelements), size=2))
        assert np.allclose(sym.act_on_action(agroup.identity(), a), a)
        lhs = sym.act_on_action(g, sym.act_on_action(h, a))
        assert np.allclose(lhs, sym.act_on_action(agroup.compose(g, h), a), atol=1e-9)
        assert np.allclose(sym.act_on_action(agroup.inverse(g), sym.act_on_action(g, a)), a, atol=1e-9)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_bad_input_is_named(env_id):
    with pytest.raises(TypeError, match="no_such_option"):
        make(env_id, no_such_option=1)
    env = make(env_id)
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        env.unwrapped.step(env.action_space.sample())
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(seed=0, options={"no_such_option": 1})
    env.reset(seed=0)
    state = env.unwrapped.get_state()
    key = sorted(state)[0]
    with pytest.raises(ValueError, match="missing keys"):
        env.unwrapped.set_state({k: v for k, v in state.items() if k != key})
    with pytest.raises(ValueError, match="shape"):
        env.unwrapped.set_state({**state, key: np.zeros((7, 7))})
    with pytest.raises((TypeError, ValueError), match="action"):
        env.step("left")
    with pytest.raises(ValueError, match="range|shape"):
        env.step(np.full(99, 1e6))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_rgb_array(env_id):
    env = make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    env_cls = type(env.unwrapped)
    with pytest.raises(ValueError, match="render_mode"):
        env_cls(render_mode="bogus")


def test_package_version_and_ids():
    assert symwm.__version__
    assert set(ENV_IDS) <= set(gym.registry)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_next_state_is_step_without_side_effects(env_id):
    env = make(env_id)
    base = env.unwrapped
    env.reset(seed=4)
    env.action_space.seed(4)
    for _ in range(3):
        state, action = base.get_state(), env.action_space.sample()
        predicted = base.next_state(state, action)
        assert base.symmetry.state_distance(base.get_state(), state) == 0  # the env did not move
        env.step(action)
        assert base.symmetry.state_distance(predicted, base.get_state()) <= STATE_TOL.get(env_id, 0.0)
    with pytest.raises((TypeError, ValueError), match="action"):
        base.next_state(base.get_state(), "left")
