"""Reacher: D4-equivariant pymunk dynamics, exactly symmetric top camera, oblique camera, input checks."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from symwm.envs.groups import Dihedral, DihedralElement, transform_grid
from symwm.envs.reacher import ReacherEnv, ReacherSymmetry, forward_kinematics

D4 = Dihedral(4, reflections=True)
ELEMENTS = D4.elements()


def random_actions(seed, n):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(n, 2)).astype(np.float32)


def stepped_state(env, seed, n_steps=3):
    """A state reached by simulation (so prev_qpos != qpos) from a seeded reset."""
    env.reset(seed=seed)
    for a in random_actions(seed + 100, n_steps):
        env.step(a)
    return env.get_state()


# -- symmetry and dynamics ------------------------------------------------------------------------


@pytest.mark.parametrize("g", ELEMENTS, ids=repr)
def test_dynamics_are_equivariant_for_20_steps(g):
    env, twin = ReacherEnv(camera="top", resolution=16, goal="random"), ReacherEnv(camera="top", resolution=16, goal="random")
    sym = env.symmetry
    for seed in range(3):
        _, info = env.reset(seed=seed)
        _, twin_info = twin.reset(seed=seed)
        twin.set_state(sym.act_on_state(g, info["state"]))
        for a in random_actions(seed, 20):
            _, reward, terminated, truncated, info = env.step(a)
            _, twin_reward, _, _, twin_info = twin.step(sym.act_on_action(g, a))
            assert sym.state_distance(sym.act_on_state(g, info["state"]), twin_info["state"]) < 1e-6
            assert abs(reward - twin_reward) < 1e-6
            assert abs(info["distance"] - twin_info["distance"]) < 1e-6
            assert not terminated and not truncated


def test_action_representation_flips_torques_only_for_reflections():
    sym = ReacherSymmetry()
    a = np.array([0.3, -0.7], dtype=np.float32)
    for g in ELEMENTS:
        out = sym.act_on_action(g, a)
        assert isinstance(out, np.ndarray) and out.dtype.kind == "f"
        assert np.array_equal(out, -a if g.reflection else a)
    ints = sym.act_on_action(DihedralElement(1, True), [1, 0])
    assert ints.dtype == np.float64 and ints.tolist() == [-1.0, 0.0]
    with pytest.raises(ValueError, match="not an element of D4"):
        sym.act_on_action(DihedralElement(5, False), a)
    with pytest.raises(ValueError, match="not an element"):
        sym.act_on_state("r1", {"qpos": np.zeros(2)})


def test_group_action_on_states_matches_the_spec():
    sym = ReacherSymmetry()
    state = {
        "qpos": np.array([0.4, -1.1]),
        "qvel": np.array([0.5, 2.0]),
        "prev_qpos": np.array([3.0, 0.2]),
        "goal": np.array([0.9, 0.4]),
    }
    quarter = sym.act_on_state(DihedralElement(1, False), state)
    assert np.allclose(quarter["qpos"], [0.4 + np.pi / 2, -1.1])
    assert np.allclose(quarter["prev_qpos"], [3.0 + np.pi / 2 - 2 * np.pi, 0.2])  # wrapped
    assert np.array_equal(quarter["qvel"], state["qvel"]) and np.array_equal(quarter["goal"], [-0.4, 0.9])
    flip = sym.act_on_state(DihedralElement(0, True), state)
    assert np.array_equal(flip["qpos"], [-0.4, 1.1]) and np.array_equal(flip["prev_qpos"], [-3.0, -0.2])
    assert np.array_equal(flip["qvel"], [-0.5, -2.0]) and np.array_equal(flip["goal"], [0.9, -0.4])
    # the fingertip moves with the world
    for g in ELEMENTS:
        tip = forward_kinematics(sym.act_on_state(g, state)["qpos"], (1.0, 1.0))[1]
        assert np.allclose(tip, D4.matrix(g) @ forward_kinematics(state["qpos"], (1.0, 1.0))[1])


def test_set_state_then_step_matches_simulation_exactly():
    env, clone = ReacherEnv(resolution=32), ReacherEnv(resolution=32)
    state = stepped_state(env, seed=7, n_steps=5)
    clone.set_state(state)
    for a in random_actions(8, 10):
        obs, reward, *_ = env.step(a)
        clone_obs, clone_reward, *_ = clone.step(a)
        assert np.array_equal(obs, clone_obs) and reward == clone_reward
    assert env.symmetry.state_distance(env.get_state(), clone.get_state()) == 0.0


# -- cameras --------------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [64, 128])
def test_top_camera_twins_are_transformed_images_pixel_for_pixel(resolution):
    env = ReacherEnv(camera="top", resolution=resolution, goal="random")
    sym = env.symmetry
    for seed in range(4):
        state = stepped_state(env, seed)
        assert not np.array_equal(state["qpos"], state["prev_qpos"])
        obs = env.observation_of(state)
        for g in ELEMENTS:
            twin = env.observation_of(sym.act_on_state(g, state))
            assert np.array_equal(twin, transform_grid(g, obs)), f"{g} seed {seed}"


def test_oblique_camera_is_not_rotation_symmetric():
    env = ReacherEnv(camera="oblique", resolution=64)
    sym = env.symmetry
    state = stepped_state(env, seed=0)
    obs = env.observation_of(state).astype(np.float64)
    for k in (1, 2, 3):
        g = DihedralElement(k, False)
        twin = env.observation_of(sym.act_on_state(g, state)).astype(np.float64)
        assert np.mean(np.abs(twin - transform_grid(g, obs))) > 10.0


def test_observation_stacks_previous_and_current_frames():
    env = ReacherEnv(render_mode="rgb_array")
    obs, info = env.reset(seed=0)
    assert obs.shape == (64, 64, 6) and obs.dtype == np.uint8
    assert np.array_equal(obs[..., :3], obs[..., 3:])  # prev_qpos == qpos after a reset
    assert np.array_equal(info["state"]["prev_qpos"], info["state"]["qpos"])
    frame = env.render()
    obs, *_ = env.step(np.array([1.0, -1.0], dtype=np.float32))
    assert np.array_equal(obs[..., :3], frame)
    assert np.array_equal(obs[..., 3:], env.render())
    assert not np.array_equal(obs[..., :3], obs[..., 3:])


def test_each_step_renders_one_frame():
    env = ReacherEnv()
    env.reset(seed=0)
    calls = []
    render = env._renderer.render
    env._renderer.render = lambda *args: calls.append(1) or render(*args)
    for a in random_actions(0, 5):
        env.step(a)
    assert len(calls) == 5


# -- Gymnasium API, seeding, rewards ---------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"camera": "top", "goal": "random"}])
def test_checkers_pass(kwargs):
    env = ReacherEnv(**kwargs)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=True)
    assert env.observation_space.shape == (64, 64, 6)


def test_reward_is_negative_distance_minus_control_cost():
    env = ReacherEnv(ctrl_cost=0.5)
    env.reset(seed=1)
    a = np.array([0.5, -1.0], dtype=np.float32)
    _, reward, terminated, truncated, info = env.step(a)
    tip = forward_kinematics(info["state"]["qpos"], env.link_lengths)[1]
    distance = np.linalg.norm(tip - info["state"]["goal"])
    assert info["distance"] == pytest.approx(distance)
    assert reward == pytest.approx(-distance - 0.5 * 1.25)
    assert terminated is False and truncated is False


def test_goals_fixed_default_and_random():
    default = ReacherEnv()
    goal = default.reset(seed=0)[1]["state"]["goal"]
    assert np.array_equal(goal, default.reset(seed=1)[1]["state"]["goal"])
    assert goal[0] != 0 and goal[1] != 0 and abs(goal[0]) != abs(goal[1])
    fixed = ReacherEnv(goal=(0.5, -1.2))
    assert np.array_equal(fixed.reset(seed=0)[1]["state"]["goal"], [0.5, -1.2])
    rand = ReacherEnv(goal="random", link_lengths=(1.0, 0.5))
    goals = np.array([rand.reset(seed=s)[1]["state"]["goal"] for s in range(20)])
    radii = np.linalg.norm(goals, axis=1)
    assert len({g.tobytes() for g in goals}) == 20 and np.all((radii >= 0.5) & (radii <= 1.5))


def test_same_seed_same_episode_byte_for_byte():
    def episode(seed):
        env = ReacherEnv(goal="random")
        obs, _ = env.reset(seed=seed)
        frames, rewards = [obs.tobytes()], []
        for a in random_actions(seed, 10):
            obs, reward, *_ = env.step(a)
            frames.append(obs.tobytes())
            rewards.append(reward)
        return frames, rewards

    assert episode(3) == episode(3)
    other = episode(4)
    assert episode(3)[0][0] != other[0][0] and episode(3)[1] != other[1]


def test_pickled_env_continues_identically():
    env = ReacherEnv(camera="top", goal="random")
    env.reset(seed=5)
    clone = pickle.loads(pickle.dumps(env))
    for a in random_actions(0, 5):
        obs, reward, *_ = env.step(a)
        clone_obs, clone_reward, *_ = clone.step(a)
        assert np.array_equal(obs, clone_obs) and reward == clone_reward


def test_velocities_stay_bounded_under_full_torque():
    env = ReacherEnv(resolution=16, camera="top")
    env.reset(seed=0)
    for _ in range(200):
        _, _, _, _, info = env.step(np.array([1.0, -1.0], dtype=np.float32))
    qvel = info["state"]["qvel"]
    assert np.all(np.abs(qvel) < 20.0) and np.all(np.abs(info["state"]["qpos"]) <= np.pi)


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"camera": "side"}, "camera must be one of"),
        ({"resolution": 8}, "resolution must be an int in 16..512"),
        ({"resolution": 64.0}, "resolution"),
        ({"resolution": True}, "resolution"),
        ({"goal": (3.0, 3.0)}, "goal .* is not reachable"),
        ({"goal": (0.1, 0.0), "link_lengths": (1.0, 0.5)}, "goal .* is not reachable"),
        ({"goal": "anywhere"}, "goal must be None, 'random'"),
        ({"goal": (1.0, 0.0, 0.0)}, "goal must be"),
        ({"goal": (np.nan, 0.0)}, "goal must be"),
        ({"link_lengths": (1.0, -1.0)}, "link_lengths"),
        ({"link_lengths": 1.0}, "link_lengths"),
        ({"gear": 0.0}, "gear"),
        ({"damping": -1.0}, "damping"),
        ({"ctrl_cost": float("inf")}, "ctrl_cost"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_bad_constructor_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReacherEnv(**kwargs)


def test_unknown_options_are_named():
    with pytest.raises(TypeError, match="no_such_option"):
        ReacherEnv(no_such_option=1)
    env = ReacherEnv()
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(seed=0, options={"no_such_option": 1})


def test_bad_actions_are_named():
    env = ReacherEnv(resolution=16)
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        env.step(np.zeros(2, dtype=np.float32))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="out of range"):
        env.step(np.array([1.5, 0.0], dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3, dtype=np.float32))
    with pytest.raises(TypeError, match="numeric"):
        env.step("left")
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan, 0.0]))


def test_invalid_states_are_named():
    env = ReacherEnv(resolution=16)
    state = stepped_state(env, seed=0)
    with pytest.raises(ValueError, match="missing keys \\['goal'\\]"):
        env.set_state({k: v for k, v in state.items() if k != "goal"})
    with pytest.raises(ValueError, match="unknown keys \\['speed'\\]"):
        env.set_state({**state, "speed": np.zeros(2)})
    with pytest.raises(ValueError, match="'qpos' has shape \\(3,\\)"):
        env.set_state({**state, "qpos": np.zeros(3)})
    with pytest.raises(ValueError, match="'qvel' contains NaN"):
        env.set_state({**state, "qvel": np.array([np.nan, 0.0])})
    with pytest.raises(ValueError, match="'qpos' .* is outside"):
        env.set_state({**state, "qpos": np.array([4.0, 0.0])})
    with pytest.raises(ValueError, match="'qvel' .* is outside"):
        env.set_state({**state, "qvel": np.array([1e3, 0.0])})
    with pytest.raises(ValueError, match="goal .* is not reachable"):
        ReacherEnv(link_lengths=(1.0, 0.5)).set_state({**state, "goal": np.array([0.1, 0.1])})
    # a failed set_state leaves the env as it was
    assert env.symmetry.state_distance(env.get_state(), state) == 0.0
