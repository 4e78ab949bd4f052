"""Grid worlds (Shapes2D, Cubes3D, RushHour): dynamics, exact equivariance, pixel symmetry, goals."""

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symwm.envs.groups import transform_grid
from symwm.envs.grid_world import SubsetDiscrete
from symwm.envs.shapes2d import SYMMETRIC_SHAPES

GRID_IDS = ["symwm/Shapes2D-v0", "symwm/Cubes3D-v0", "symwm/RushHour-v0"]


def base(env_id, **kwargs):
    return gym.make(env_id, **kwargs).unwrapped


@pytest.mark.parametrize("symmetry", ["C4", "D4"])
@pytest.mark.parametrize("env_id", GRID_IDS)
def test_dynamics_are_exactly_equivariant_for_every_group_element(env_id, symmetry):
    env = base(env_id, symmetry=symmetry, goal_moves=3)
    sym = env.symmetry
    elements = sym.group.elements()
    assert len(elements) == (960 if symmetry == "D4" else 480)
    rng = np.random.default_rng(0)
    for g in elements:
        env.reset(seed=int(rng.integers(1 << 30)))
        s = env.get_state()
        a = int(rng.integers(env.action_space.n))
        env.set_state(s)
        _, r1, term1, _, _ = env.step(a)
        s1 = env.get_state()
        env.set_state(sym.act_on_state(g, s))
        _, r2, term2, _, _ = env.step(sym.act_on_action(g, a))
        assert sym.state_distance(env.get_state(), sym.act_on_state(g, s1)) == 0
        assert (r1, term1) == (r2, term2)


@given(seed=st.integers(0, 2**31 - 1), steps=st.lists(st.integers(0, 19), min_size=1, max_size=20))
@settings(max_examples=40, deadline=None)
def test_twin_episodes_stay_twins(seed, steps):
    env = base("symwm/RushHour-v0", symmetry="D4")
    twin = base("symwm/RushHour-v0", symmetry="D4")
    sym = env.symmetry
    g = sym.group.sample(np.random.default_rng(seed))
    env.reset(seed=seed)
    twin.set_state(sym.act_on_state(g, env.get_state()))
    for a in steps:
        env.step(a)
        twin.step(sym.act_on_action(g, a))
        assert sym.state_distance(twin.get_state(), sym.act_on_state(g, env.get_state())) == 0


def test_moves_walls_and_blocking():
    env = base("symwm/Shapes2D-v0", n_objects=2)
    env.set_state({"positions": np.array([[0, 0], [0, 1]])})
    env.step(0)  # object 0 up: wall
    env.step(1)  # object 0 right: blocked by object 1
    assert env.get_state()["positions"].tolist() == [[0, 0], [0, 1]]
    env.step(2)  # object 0 down
    env.step(4 + 3)  # object 1 left
    assert env.get_state()["positions"].tolist() == [[1, 0], [0, 0]]
    assert env.action_name(7) == "object 1 left"


def test_rush_hour_moves_relative_to_heading():
    env = base("symwm/RushHour-v0", n_objects=1)
    env.set_state({"positions": np.array([[2, 2]]), "orientations": np.array([1])})  # heading right
    env.step(0)  # forward
    assert env.get_state()["positions"].tolist() == [[2, 3]]
    env.step(2)  # turn left: now heading up
    assert env.get_state()["orientations"].tolist() == [0]
    env.step(1)  # backward: down
    assert env.get_state()["positions"].tolist() == [[3, 3]]
    env.step(3)
    env.step(3)  # two right turns: heading down
    assert env.get_state()["orientations"].tolist() == [2]


def test_reflection_swaps_turns_and_rotations_keep_relative_actions():
    sym = base("symwm/RushHour-v0", symmetry="D4").symmetry
    ident = sym.permutations.identity()
    for p in sym.planar.elements():
        for a in range(4):
            expected = {2: 3, 3: 2}.get(a, a) if p.reflection else a
            assert sym.act_on_action((p, ident), a) == expected


@pytest.mark.parametrize("symmetry", ["C4", "D4"])
def test_symmetric_shapes_rotate_pixel_for_pixel(symmetry):
    env = base("symwm/Shapes2D-v0", shapes=SYMMETRIC_SHAPES, symmetry=symmetry)
    sym = env.symmetry
    ident = sym.permutations.identity()
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        s = env.get_state()
        for p in sym.planar.elements():
            twin = env.observation_of(sym.act_on_state((p, ident), s))
            assert np.array_equal(twin, transform_grid(p, obs))


@pytest.mark.parametrize("env_id", ["symwm/Shapes2D-v0", "symwm/Cubes3D-v0"])
def test_default_views_are_not_pixel_symmetric(env_id):
    env = base(env_id)
    sym = env.symmetry
    ident = sym.permutations.identity()
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        s = env.get_state()
        for p in sym.planar.elements()[1:]:
            twin = env.observation_of(sym.act_on_state((p, ident), s))
            diff = np.abs(twin.astype(int) - transform_grid(p, obs).astype(int)).mean()
            assert diff > (2.0 if env_id.endswith("Cubes3D-v0") else 0.1), (p, diff)


def test_cubes_rotation_is_far_from_a_pixel_rotation():
    # in 3D Blocks the twin is about as far from the rotated image as from an unrelated image
    env = base("symwm/Cubes3D-v0")
    sym = env.symmetry
    ident = sym.permutations.identity()
    p = sym.planar.elements()[1]
    diffs = []
    for seed in range(10):
        obs, _ = env.reset(seed=seed)
        twin = env.observation_of(sym.act_on_state((p, ident), env.get_state()))
        diffs.append(np.abs(twin.astype(int) - transform_grid(p, obs).astype(int)).mean())
    assert np.mean(diffs) > 5.0


def test_allowed_actions_restrict_sampling_and_stepping():
    env = gym.make("symwm/Cubes3D-v0", allowed_actions=["up", "right", "down"])
    assert isinstance(env.action_space, SubsetDiscrete)
    env.action_space.seed(0)
    samples = {int(env.action_space.sample()) for _ in range(500)}
    assert samples == {a for a in range(20) if a % 4 != 3}
    assert not env.action_space.contains(3) and env.action_space.contains(2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="object 0 left.*allowed_actions"):
        env.step(3)
    up_only = gym.make("symwm/Shapes2D-v0", allowed_actions="up").action_space
    assert np.flatnonzero(up_only.mask).tolist() == [0, 4, 8, 12, 16]
    with pytest.raises(ValueError, match="unknown motion 'sideways'"):
        gym.make("symwm/Shapes2D-v0", allowed_actions=["sideways"])
    with pytest.raises(ValueError, match="invalid entry 20"):
        gym.make("symwm/Shapes2D-v0", allowed_actions=[20])


@pytest.mark.parametrize("env_id", GRID_IDS)
def test_goal_task(env_id):
    env = gym.make(env_id, goal_moves=1)
    obs, info = env.reset(seed=0)
    goal = info["goal_state"]
    assert info["goal_image"].shape == obs.shape
    un = env.unwrapped
    # one of the actions reaches the goal: reward 1, terminated
    start = un.get_state()
    hits = 0
    for a in range(env.action_space.n):
        un.set_state(start)
        _, reward, terminated, truncated, _ = env.step(a)
        if terminated:
            hits += 1
            assert reward == 1.0 and not truncated
            assert all(np.array_equal(un.get_state()[k], goal[k]) for k in goal)
        else:
            assert reward == 0.0
    assert hits >= 1
    assert np.array_equal(info["goal_image"], un.observation_of({**start, **goal}))
    # goals are never the start and at most goal_moves away
    far = gym.make(env_id, goal_moves=6).unwrapped
    for seed in range(20):
        far.reset(seed=seed)
        s = far.get_state()
        assert any(not np.array_equal(s[k], s[f"goal_{k}"]) for k in far._object_keys())


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="symmetry must be one of"):
        gym.make("symwm/Shapes2D-v0", symmetry="C8")
    with pytest.raises(ValueError, match="grid_size"):
        gym.make("symwm/Shapes2D-v0", grid_size=1)
    with pytest.raises(ValueError, match="n_objects"):
        gym.make("symwm/Shapes2D-v0", grid_size=2, n_objects=5)
    with pytest.raises(ValueError, match="goal_moves"):
        gym.make("symwm/Cubes3D-v0", goal_moves=0)
    with pytest.raises(ValueError, match="unknown shape"):
        gym.make("symwm/Shapes2D-v0", shapes=["hexagon"])
    with pytest.raises(ValueError, match="multiple of grid_size"):
        gym.make("symwm/RushHour-v0", resolution=48)
    env = base("symwm/Shapes2D-v0")
    with pytest.raises(ValueError, match="share a cell"):
        env.set_state({"positions": np.zeros((5, 2), dtype=int)})
    with pytest.raises(ValueError, match="outside"):
        env.set_state({"positions": np.arange(10).reshape(5, 2)})
    with pytest.raises(TypeError, match="dtype"):
        env.set_state({"positions": np.zeros((5, 2)) + 0.5})
    env.reset(seed=0)
    with pytest.raises(TypeError, match="must be an integer"):
        env.step(1.5)
    with pytest.raises(ValueError, match="out of range"):
        env.step(20)
    sym = env.symmetry
    with pytest.raises(ValueError, match="not an element"):
        sym.act_on_state((sym.planar.elements()[0], sym.permutations.identity().perm), env.get_state())


def test_other_sizes_work():
    env = gym.make("symwm/Cubes3D-v0", grid_size=6, n_objects=8, resolution=64, symmetry="D4")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3)
    assert env.action_space.n == 32
    assert len(env.unwrapped.symmetry.group) == 8 * 40320
