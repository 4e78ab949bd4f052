"""Tests of the rotating-object (3D "teapot") environment and its SO(3) symmetry."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from symwm.envs.groups import SO3, Octahedral, geodesic_distance, rotation_from_vector
from symwm.envs.rotating_object import (
    ARM_ALBEDOS,
    ARM_BALL_RADII,
    ARM_LENGTHS,
    SMALL_ANGLE,
    SMALL_AXES,
    RotatingObjectEnv,
    arm_end_points,
)

MODES = ("small", "continuous")


def random_action(env: RotatingObjectEnv, rng: np.random.Generator):
    """A random action; continuous ones often exceed max_angle in norm (exercising the rescaling)."""
    if env.actions == "small":
        return int(rng.integers(6))
    return rng.uniform(-env.max_angle, env.max_angle, 3)


def run_twins(mode: str, g: np.ndarray, seed: int, steps: int = 20) -> None:
    """Step an env and its g-transformed twin side by side; states must stay g-related."""
    env, twin = RotatingObjectEnv(actions=mode), RotatingObjectEnv(actions=mode)
    sym = env.symmetry
    _, info = env.reset(seed=seed)
    twin.set_state(sym.act_on_state(g, info["state"]))
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        a = random_action(env, rng)
        _, r, term, _, info = env.step(a)
        _, r2, term2, _, info2 = twin.step(sym.act_on_action(g, a))
        assert sym.state_distance(sym.act_on_state(g, info["state"]), info2["state"]) < 1e-9
        assert r2 == pytest.approx(r, abs=1e-9)  # bi-invariant distance: invariant reward
        assert term == term2


# -- symmetry -------------------------------------------------------------------------------------


def test_equivariance_continuous_random_rotations():
    rng = np.random.default_rng(0)
    for i in range(20):
        run_twins("continuous", SO3().sample(rng), seed=i)


def test_equivariance_small_all_octahedral():
    for i, g in enumerate(Octahedral().elements()):
        run_twins("small", g, seed=100 + i)


def test_reward_is_invariant():
    env = RotatingObjectEnv()
    _, info = env.reset(seed=3)
    rng = np.random.default_rng(3)
    for _ in range(10):
        g = SO3().sample(rng)
        env.set_state(env.symmetry.act_on_state(g, info["state"]))
        assert env.distance() == pytest.approx(info["distance"], abs=1e-9)


def test_small_action_group_is_octahedral_and_others_raise():
    sym = RotatingObjectEnv(actions="small").symmetry
    assert sym.action_group.order == 24
    g = rotation_from_vector(np.array([0.3, -0.2, 0.5]))
    with pytest.raises(ValueError, match="does not map the discrete action set"):
        sym.act_on_action(g, 0)
    with pytest.raises(ValueError, match="SO\\(3\\)"):
        sym.act_on_action(np.diag([1.0, 1.0, -1.0]), 0)  # a reflection
    with pytest.raises(ValueError, match="SO\\(3\\)"):
        sym.act_on_state(2 * np.eye(3), {"orientation": np.eye(3), "target": np.eye(3)})


def test_small_act_on_action_is_conjugation():
    env = RotatingObjectEnv(actions="small")
    for g in Octahedral().elements():
        for a in range(6):
            b = env.symmetry.act_on_action(g, a)
            conj = g @ env._small_rotations[a] @ g.T
            np.testing.assert_allclose(conj, env._small_rotations[b], atol=1e-12)


def test_group_law_on_actions():
    sym = RotatingObjectEnv(actions="small").symmetry
    octa = Octahedral().elements()
    for g in octa:
        for h in octa[::5]:
            for a in range(6):
                assert sym.act_on_action(g, sym.act_on_action(h, a)) == sym.act_on_action(g @ h, a)
    env = RotatingObjectEnv(actions="continuous")
    sym, rng = env.symmetry, np.random.default_rng(1)
    for _ in range(20):
        g, h, a = SO3().sample(rng), SO3().sample(rng), random_action(env, rng)
        lhs = sym.act_on_action(g, sym.act_on_action(h, a))
        np.testing.assert_allclose(lhs, sym.act_on_action(g @ h, a), atol=1e-12)
        assert env.action_space.contains(lhs.astype(np.float32))


def test_continuous_action_norm_is_clipped():
    env = RotatingObjectEnv(actions="continuous")
    env.set_state({"orientation": np.eye(3), "target": np.eye(3)})
    env.step(np.full(3, env.max_angle))
    assert geodesic_distance(env.get_state()["orientation"], np.eye(3)) == pytest.approx(env.max_angle)


# -- the object and its images ------------------------------------------------------------------


def test_object_is_chiral_and_asymmetric():
    # distinct arms: any isometry fixing the core must fix every arm end
    for attr in (ARM_LENGTHS, ARM_BALL_RADII, ARM_ALBEDOS):
        assert len(set(np.round(attr, 6))) == 4
    ends = arm_end_points()
    assert abs(np.linalg.det(ends[:3])) > 0.05  # not coplanar: no reflection fixes them
    # no rotation maps the object onto its mirror image (orthogonal Procrustes restricted to SO(3))
    mirrored = ends * np.array([1.0, 1.0, -1.0])
    u, _, vt = np.linalg.svd(mirrored.T @ ends)
    d = np.sign(np.linalg.det(u @ vt))
    best = u @ np.diag([1.0, 1.0, d]) @ vt
    assert np.max(np.linalg.norm(ends @ best.T - mirrored, axis=1)) > 0.1


def test_images_distinguish_orientations():
    env = RotatingObjectEnv()
    obs, info = env.reset(seed=5)
    state = info["state"]
    rng = np.random.default_rng(5)
    for _ in range(8):
        g = SO3().sample(rng)
        twin = env.observation_of(env.symmetry.act_on_state(g, state))
        assert np.mean(twin != obs) > 0.02
    for a in range(6):  # every axis, both directions, visibly changes the image
        env.set_state(state)
        new, *_ = env.step(a)
        assert np.mean(new != obs) > 0.02
    assert obs.std() > 10  # not blank


def test_observation_and_info():
    env = RotatingObjectEnv(render_mode="rgb_array")
    obs, info = env.reset(seed=1)
    assert obs.shape == (64, 64, 1) and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    assert set(info) == {"state", "distance", "goal_image"}
    assert env.state_space.contains(info["state"])
    goal = env.observation_of({"orientation": info["state"]["target"], "target": info["state"]["target"]})
    np.testing.assert_array_equal(info["goal_image"], goal)
    np.testing.assert_array_equal(env.render(), np.repeat(obs, 3, axis=2))
    assert info["distance"] >= env.goal_tolerance
    big = RotatingObjectEnv(resolution=96)
    assert big.reset(seed=0)[0].shape == (96, 96, 1)


def test_state_roundtrip_and_rounding():
    env = RotatingObjectEnv()
    _, info = env.reset(seed=2)
    obs = env.set_state(info["state"])
    np.testing.assert_array_equal(obs, env.observation_of(info["state"]))
    r = np.eye(3)
    r[0, 0] = 1.0 + 1e-12  # rounding overshoot of the [-1, 1] box is tolerated
    env.set_state({"orientation": r, "target": np.eye(3)})
    assert env.get_state()["orientation"][0, 0] == 1.0


# -- Gymnasium plumbing ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_env_checkers(mode):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(RotatingObjectEnv(actions=mode, render_mode="rgb_array"))
        sb3_check_env(RotatingObjectEnv(actions=mode))


@pytest.mark.parametrize("mode", MODES)
def test_seeding(mode):
    def episode(seed: int):
        env = RotatingObjectEnv(actions=mode)
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        frames, rewards = [obs.tobytes()], []
        for _ in range(10):
            obs, r, *_ = env.step(env.action_space.sample())
            frames.append(obs.tobytes())
            rewards.append(r)
        return frames, rewards

    assert episode(7) == episode(7)
    assert episode(7)[0][0] != episode(8)[0][0]


@pytest.mark.parametrize("mode", MODES)
def test_pickle(mode):
    env = RotatingObjectEnv(actions=mode)
    env.reset(seed=4)
    clone = pickle.loads(pickle.dumps(env))
    a = env.action_space.sample()
    o1, r1, *_ = env.step(a)
    o2, r2, *_ = clone.step(a)
    np.testing.assert_array_equal(o1, o2)
    assert r1 == r2


@pytest.mark.parametrize("action", range(6))
def test_goal_one_action_away_terminates(action):
    # the default tolerance (0.25) exceeds one small rotation (0.21); use a tighter one here
    env = RotatingObjectEnv(actions="small", goal_tolerance=0.1)
    r = SO3().sample(np.random.default_rng(action))
    target = rotation_from_vector(SMALL_ANGLE * SMALL_AXES[action]) @ r
    env.set_state({"orientation": r, "target": target})
    assert env.distance() == pytest.approx(SMALL_ANGLE) and SMALL_ANGLE > env.goal_tolerance
    _, reward, terminated, truncated, info = env.step(action)
    assert terminated and not truncated
    assert info["distance"] < 1e-6 and reward == -info["distance"]  # arccos: ~1e-8 resolution at 0
    env.set_state({"orientation": r, "target": target})
    _, reward, terminated, *_ = env.step(action ^ 1)  # the opposite rotation moves away
    assert not terminated and reward == pytest.approx(-2 * SMALL_ANGLE)


# -- bad input ------------------------------------------------------------------------------------


def test_bad_constructor_options():
    with pytest.raises(ValueError, match="actions must be one of"):
        RotatingObjectEnv(actions="big")
    with pytest.raises(ValueError, match="render_mode"):
        RotatingObjectEnv(render_mode="human")
    with pytest.raises(ValueError, match="max_angle"):
        RotatingObjectEnv(actions="continuous", max_angle=0.0)
    with pytest.raises(ValueError, match="resolution"):
        RotatingObjectEnv(resolution=8)
    with pytest.raises(ValueError, match="goal_tolerance"):
        RotatingObjectEnv(goal_tolerance=-1.0)
    with pytest.raises(TypeError, match="colour"):
        RotatingObjectEnv(colour="red")


def test_unknown_reset_option_and_reset_needed():
    env = RotatingObjectEnv()
    with pytest.raises(gym.error.ResetNeeded, match="step"):
        env.step(0)
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(seed=0, options={"target": np.eye(3)})


def test_bad_actions():
    env = RotatingObjectEnv(actions="small")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="out of range"):
        env.step(6)
    with pytest.raises(TypeError, match="must be an integer"):
        env.step(1.0)
    with pytest.raises(ValueError, match="scalar"):
        env.step(np.array([1, 2]))
    env = RotatingObjectEnv(actions="continuous")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(2))
    with pytest.raises(ValueError, match="out of range"):
        env.step(np.array([10.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan, 0.0, 0.0]))


def test_bad_states():
    env = RotatingObjectEnv()
    env.reset(seed=0)
    eye = np.eye(3)
    with pytest.raises(ValueError, match="'orientation' is not a rotation matrix"):
        env.set_state({"orientation": np.diag([1.0, 0.5, 1.0]), "target": eye})
    with pytest.raises(ValueError, match="'target' is not a rotation matrix.*det -1"):
        env.set_state({"orientation": eye, "target": np.diag([1.0, 1.0, -1.0])})
    with pytest.raises(ValueError, match="'target' has shape"):
        env.set_state({"orientation": eye, "target": np.eye(2)})
    with pytest.raises(ValueError, match="missing keys \\['target'\\]"):
        env.set_state({"orientation": eye})
