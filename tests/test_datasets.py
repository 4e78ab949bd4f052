"""Tests of rollout collection (HDF5) and the torch datasets that read it."""

from __future__ import annotations

import json
import pickle
import shutil

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import symwm
from symwm.envs.groups import Octahedral, is_rotation_matrix
from symwm.world_models import collect as collect_module
from symwm.world_models.collect import (
    FORMAT_VERSION,
    collect,
    ensure_collected,
    episode_seeds,
    parse_action_subset,
)
from symwm.world_models.datasets import (
    DatasetError,
    PathDataset,
    TransitionDataset,
    open_dataset,
    twin_elements,
)

SHAPES = "symwm/Shapes2D-v0"
REACHER = "symwm/Reacher-v0"
ROTATING = "symwm/RotatingObject-v0"
SHAPES_KW = {"n_objects": 2}  # C4 x S2: 8 twins with twins="all"
REACHER_KW = {"resolution": 32}
ROT_KW = {"resolution": 16}


def read_all(path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file, by name."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("rollouts")


@pytest.fixture(scope="module")
def shapes_path(data_dir):
    return collect(data_dir / "shapes.h5", SHAPES, 3, 5, seed=3, env_kwargs=SHAPES_KW, actions="no-left",
                   twins="all", progress=False)


@pytest.fixture(scope="module")
def reacher_path(data_dir):
    return collect(data_dir / "reacher.h5", REACHER, 3, 4, seed=1, env_kwargs=REACHER_KW, actions="1>=0",
                   warmup_steps=3, twins=2, progress=False)


@pytest.fixture(scope="module")
def rot_path(data_dir):
    return collect(data_dir / "rot.h5", ROTATING, 2, 3, seed=2, env_kwargs=ROT_KW, twins=3, progress=False)


# -------------------------------------------------------------------------------------------------
# Collection
# -------------------------------------------------------------------------------------------------


def test_layout_and_attributes(shapes_path):
    data = read_all(shapes_path)
    assert data["obs"].shape == (3, 6, 50, 50, 3) and data["obs"].dtype == np.uint8
    assert data["actions"].shape == (3, 5) and data["actions"].dtype == np.int64
    assert data["rewards"].shape == (3, 5) and data["rewards"].dtype == np.float32
    assert data["states/positions"].shape == (3, 6, 2, 2)
    assert data["twins/obs"].shape == (3, 8, 6, 50, 50, 3)
    assert data["twins/actions"].shape == (3, 8, 5)
    assert data["twins/states/positions"].shape == (3, 8, 6, 2, 2)
    assert data["episode_seeds"].tolist() == [episode_seeds(3, i)[0] for i in range(3)]
    with h5py.File(shapes_path) as f:
        attrs = dict(f.attrs)
        # episodes share a chunk up to CHUNK_BYTES of observations (here 405 kB each, twins included)
        assert f["obs"].chunks == (2, 6, 50, 50, 3) and f["obs"].compression == "gzip"
        assert f["twins/obs"].chunks == (2, 1, 6, 50, 50, 3)
    assert attrs["format_version"] == FORMAT_VERSION and attrs["complete"]
    assert attrs["env_id"] == SHAPES and json.loads(attrs["env_kwargs"]) == SHAPES_KW
    assert attrs["actions"] == "no-left" and attrs["policy"] == "random" and attrs["seed"] == 3
    assert (attrs["n_episodes"], attrs["episode_length"], attrs["warmup_steps"]) == (3, 5, 0)
    assert attrs["symwm_version"] == symwm.__version__ and attrs["twins"] == "all" and attrs["created"]


def test_no_left_action_is_recorded(shapes_path):
    data = read_all(shapes_path)
    assert not np.any(data["actions"] % 4 == 3)  # motion 3 = left
    assert np.any(data["twins/actions"] % 4 == 3)  # rotated twins do move left


def test_reacher_subset_and_warmup(reacher_path):
    data = read_all(reacher_path)
    acts = data["actions"]
    assert acts.shape == (3, 4, 2) and acts.dtype == np.float32
    assert np.all(acts[..., 1] >= 0) and np.all(np.abs(acts) <= 1)
    assert np.any(acts[..., 0] < 0)  # dimension 0 unrestricted
    # after warm-up steps the first recorded frame already has a previous pose != current pose
    assert not np.allclose(data["states/prev_qpos"][:, 0], data["states/qpos"][:, 0])
    with h5py.File(reacher_path) as f:
        assert f.attrs["warmup_steps"] == 3


def test_episode_seeds_are_distinct_across_dataset_seeds():
    train = {episode_seeds(0, i)[0] for i in range(200)}
    evaluation = {episode_seeds(1, i)[0] for i in range(200)}
    assert len(train) == 200 and not train & evaluation


@pytest.mark.parametrize("env_id,kwargs,actions", [(SHAPES, SHAPES_KW, "no-left"), (REACHER, REACHER_KW, "1>=0")])
def test_parallel_collection_is_identical(tmp_path, env_id, kwargs, actions):
    common = dict(seed=5, env_kwargs=kwargs, actions=actions, warmup_steps=2, twins=2, progress=False)
    a = read_all(collect(tmp_path / "serial.h5", env_id, 3, 3, n_envs=1, **common))
    b = read_all(collect(tmp_path / "parallel.h5", env_id, 3, 3, n_envs=2, **common))  # 2 + 1 padded
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("fixture", ["shapes_path", "reacher_path", "rot_path"])
def test_states_reproduce_observations(request, fixture):
    path = request.getfixturevalue(fixture)
    with open_dataset(path) as f:
        env = f.make_env()
        obs = f["obs"][()]
        states = {k: f[f"states/{k}"][()] for k in f.state_keys}
    for i in range(obs.shape[0]):
        for t in range(obs.shape[1]):
            rendered = env.observation_of({k: v[i, t] for k, v in states.items()})
            np.testing.assert_array_equal(rendered, obs[i, t])


def test_grid_states_follow_the_dynamics(shapes_path):
    data = read_all(shapes_path)
    env = open_dataset(shapes_path).make_env()
    for i in range(3):
        env.set_state({"positions": data["states/positions"][i, 0]})
        for t in range(5):
            obs, *_ = env.step(int(data["actions"][i, t]))
            np.testing.assert_array_equal(env.get_state()["positions"], data["states/positions"][i, t + 1])
            np.testing.assert_array_equal(obs, data["obs"][i, t + 1])


def test_grid_twins_are_rendered_transformed_states(shapes_path):
    data = read_all(shapes_path)
    with open_dataset(shapes_path) as f:
        env = f.make_env()
        elements = f.twin_elements(env)
    sym = env.symmetry
    assert elements == sym.action_group.elements()  # "all", identity first
    assert twin_elements(shapes_path) == elements
    for i in range(3):
        for gi, g in enumerate(elements):
            for t in range(6):
                moved = sym.act_on_state(g, {"positions": data["states/positions"][i, t]})
                np.testing.assert_array_equal(data["twins/states/positions"][i, gi, t], moved["positions"])
                np.testing.assert_array_equal(data["twins/obs"][i, gi, t], env.observation_of(moved))
            want = [sym.act_on_action(g, a) for a in data["actions"][i]]
            assert data["twins/actions"][i, gi].tolist() == want
    np.testing.assert_array_equal(data["twins/obs"][:, 0], data["obs"])  # identity twin


def test_rotating_object_twins_use_the_octahedral_group(rot_path):
    data = read_all(rot_path)
    with open_dataset(rot_path) as f:
        env = f.make_env()
        elements = f.twin_elements()
        assert f["twins/elements"].attrs["group"] == "action_group"
    assert len(elements) == 3 and all(Octahedral().contains(g) for g in elements)
    sym = env.symmetry
    for gi, g in enumerate(elements):
        want = [sym.act_on_action(g, a) for a in data["actions"][0]]
        assert data["twins/actions"][0, gi].tolist() == want
        np.testing.assert_allclose(data["twins/states/orientation"][0, gi, 1], g @ data["states/orientation"][0, 1])


def test_so3_twins_store_matrices(tmp_path):
    kw = {"resolution": 16, "actions": "continuous"}
    with pytest.raises(ValueError, match="finite"):
        collect(tmp_path / "bad.h5", ROTATING, 1, 1, env_kwargs=kw, twins="all", progress=False)
    assert not list(tmp_path.iterdir())
    path = collect(tmp_path / "so3.h5", ROTATING, 2, 2, env_kwargs=kw, twins=2, actions="0>=0", progress=False)
    data = read_all(path)
    elements = twin_elements(path)
    assert data["twins/elements"].shape == (2, 3, 3) and len(elements) == 2
    assert all(is_rotation_matrix(g) for g in elements)
    assert data["actions"].dtype == np.float32 and np.all(data["actions"][..., 0] >= 0)
    sym = open_dataset(path).make_env().symmetry  # rotates the norm-clipped action vector
    want = [sym.act_on_action(elements[1], a) for a in data["actions"][0]]
    np.testing.assert_allclose(data["twins/actions"][0, 1], want, atol=1e-6)


def test_parse_action_subset():
    import gymnasium as gym

    grid = gym.make(SHAPES, **SHAPES_KW)
    assert parse_action_subset(grid, "up").env_kwargs == {"allowed_actions": [0, 4]}
    assert parse_action_subset(grid, "up, right,down").env_kwargs["allowed_actions"] == [0, 1, 2, 4, 5, 6]
    no_left = parse_action_subset(grid, "no-left")
    assert no_left.env_kwargs["allowed_actions"] == [0, 1, 2, 4, 5, 6]
    assert not no_left.contains(3) and no_left.contains(4)
    assert parse_action_subset(grid, "0,7").env_kwargs["allowed_actions"] == [0, 7]
    for bad, match in [("sideways", "unknown action"), ("up,no-left", "mixes"), ("", "non-empty"),
                       ("up,,down", "empty entry"), ("8", "out of range"),
                       ("no-up,no-right,no-down,no-left", "excludes every")]:
        with pytest.raises(ValueError, match=match) as info:
            parse_action_subset(grid, bad)
        assert "valid forms" in str(info.value)

    reacher = gym.make(REACHER, **REACHER_KW)
    box = parse_action_subset(reacher, "1>=0").space
    assert box.low.tolist() == [-1, 0] and box.high.tolist() == [1, 1]
    box = parse_action_subset(reacher, "0<=0.5, 1>=-0.25,1 <= 0.5").space
    assert box.low.tolist() == [-1, -0.25] and box.high.tolist() == [0.5, 0.5]
    for bad, match in [("2>=0", "out of range"), ("1>0", "cannot parse"), ("1>=2", "leaves no actions"),
                       ("1>=x", "cannot parse"), ("up", "cannot parse")]:
        with pytest.raises(ValueError, match=match):
            parse_action_subset(reacher, bad)

    rot = gym.make(ROTATING, **ROT_KW)
    small = parse_action_subset(rot, "0,2,4")
    assert np.flatnonzero(small.space.mask).tolist() == [0, 2, 4] and small.env_kwargs == {}
    assert np.flatnonzero(parse_action_subset(rot, "no-5").space.mask).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="valid forms"):
        parse_action_subset(rot, "up")


def test_rotating_object_subset_is_respected(tmp_path):
    path = collect(tmp_path / "r.h5", ROTATING, 2, 6, env_kwargs=ROT_KW, actions="0,2,4", progress=False)
    assert set(read_all(path)["actions"].ravel().tolist()) <= {0, 2, 4}


def test_bad_arguments(tmp_path):
    for kwargs, match in [
        (dict(n_episodes=0), "n_episodes"),
        (dict(twins=0), "twins"),
        (dict(twins=100), "exceeds"),
        (dict(env_id="symwm/Nope-v0"), "unknown environment id"),
        (dict(env_kwargs={"allowed_actions": [0]}, actions="up"), "not both"),
        (dict(env_kwargs={"shapes": object()}), "JSON"),
        (dict(compression="zstd"), "compression"),
    ]:
        args = dict(path=tmp_path / "x.h5", env_id=SHAPES, n_episodes=1, episode_length=1, env_kwargs=SHAPES_KW,
                    progress=False)
        args.update(kwargs)
        with pytest.raises(ValueError, match=match):
            collect(**args)
    assert not list(tmp_path.iterdir())


def test_interrupted_collection_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "d.h5"
    calls = []
    original = collect_module._Writer.write

    def failing_write(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(collect_module._Writer, "write", failing_write)
    with pytest.raises(RuntimeError, match="simulated crash"):
        collect(path, SHAPES, 3, 2, env_kwargs=SHAPES_KW, progress=False)
    assert not list(tmp_path.iterdir())  # no file at path, no temporary litter

    # an existing file at path survives a failed overwrite untouched
    monkeypatch.setattr(collect_module._Writer, "write", original)
    collect(path, SHAPES, 1, 2, env_kwargs=SHAPES_KW, progress=False)
    before = path.read_bytes()
    calls.clear()
    monkeypatch.setattr(collect_module._Writer, "write", failing_write)
    with pytest.raises(RuntimeError):
        collect(path, SHAPES, 3, 2, env_kwargs=SHAPES_KW, progress=False)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["d.h5"]


# -------------------------------------------------------------------------------------------------
# Validation of files
# -------------------------------------------------------------------------------------------------


def _edited_copy(src, dst, edit):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def _replace_actions(f):
    del f["actions"]
    f.create_dataset("actions", data=np.zeros((3, 4), np.int64))  # 4 actions for 6 observations


@pytest.mark.parametrize(
    "name,edit,match",
    [
        ("missing.h5", lambda f: f.__delitem__("rewards"), "missing dataset 'rewards'"),
        ("incomplete.h5", lambda f: f.attrs.__setitem__("complete", False), "incomplete"),
        ("future.h5", lambda f: f.attrs.__setitem__("format_version", 99), "format version 99"),
        ("foreign.h5", lambda f: f.attrs.__delitem__("format_version"), "not a symwm rollout file"),
        ("shapes.h5", _replace_actions, "inconsistent shapes: 'actions'"),
        ("twins.h5", lambda f: f.__delitem__("twins/elements"), "twins/elements"),
    ],
)
def test_invalid_files_raise_dataset_error(shapes_path, tmp_path, name, edit, match):
    path = _edited_copy(shapes_path, tmp_path / name, edit)
    with pytest.raises(DatasetError, match=match) as info:
        open_dataset(path)
    assert str(path) in str(info.value)
    with pytest.raises(DatasetError):
        TransitionDataset(path)


def test_unreadable_files(shapes_path, tmp_path):
    missing = tmp_path / "nothing.h5"
    with pytest.raises(DatasetError, match="no such file") as info:
        open_dataset(missing)
    assert str(missing) in str(info.value)

    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(shapes_path.read_bytes()[: shapes_path.stat().st_size // 2])
    for path in (text, truncated):
        with pytest.raises(DatasetError, match="not a readable HDF5 file") as info:
            open_dataset(path)
        assert str(path) in str(info.value)


def test_wrong_env_and_corrupt_chunk(shapes_path, tmp_path):
    with pytest.raises(DatasetError, match="expected 'symwm/Cubes3D-v0'") as info:
        open_dataset(shapes_path, expect_env_id="symwm/Cubes3D-v0")
    assert str(shapes_path) in str(info.value)
    assert open_dataset(shapes_path, expect_env_id=SHAPES).n_twins == 8

    bad = tmp_path / "flipped.h5"
    shutil.copy(shapes_path, bad)
    with h5py.File(bad) as f:
        chunk = f["obs"].id.get_chunk_info(1)  # the second chunk: episode 2's frames (two episodes per chunk)
    raw = bytearray(bad.read_bytes())
    for k in range(chunk.byte_offset + 100, chunk.byte_offset + 140):
        raw[k] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="corrupt") as info:
        TransitionDataset(bad)  # loads everything: the checksum fails
    assert str(bad) in str(info.value)
    lazy = TransitionDataset(bad, in_memory=False)
    lazy[5]  # episode 1, in the first chunk, is intact
    with pytest.raises(DatasetError, match="corrupt"):
        lazy[10]  # episode 2


# -------------------------------------------------------------------------------------------------
# Torch datasets
# -------------------------------------------------------------------------------------------------


def test_transition_dataset(shapes_path, reacher_path):
    data = read_all(shapes_path)
    ds = TransitionDataset(shapes_path, states=True, twins=True)
    assert len(ds) == 15
    item = ds[7]  # episode 1, step 2
    assert item["obs"].dtype == torch.uint8 and item["obs"].shape == (50, 50, 3)
    assert item["action"].dtype == torch.int64 and item["action"].shape == ()
    np.testing.assert_array_equal(item["obs"].numpy(), data["obs"][1, 2])
    np.testing.assert_array_equal(item["next_obs"].numpy(), data["obs"][1, 3])
    assert int(item["action"]) == data["actions"][1, 2]
    np.testing.assert_array_equal(item["next_states"]["positions"].numpy(), data["states/positions"][1, 3])
    assert item["twin_obs"].shape == (8, 50, 50, 3) and item["twin_action"].shape == (8,)
    np.testing.assert_array_equal(item["twin_next_obs"].numpy(), data["twins/obs"][1, :, 3])
    np.testing.assert_array_equal(item["twin_states"]["positions"].numpy(), data["twins/states/positions"][1, :, 2])
    item["obs"].zero_()  # items are copies: the dataset is unchanged
    assert torch.equal(ds[7]["next_obs"], ds[8]["obs"]) and ds[7]["obs"].any()
    with pytest.raises(IndexError):
        ds[15]

    reacher = TransitionDataset(reacher_path)
    item = reacher[0]
    assert len(reacher) == 12 and item["action"].dtype == torch.float32 and item["action"].shape == (2,)
    assert item["obs"].shape == (32, 32, 6) and "states" not in item and "twin_obs" not in item


def test_path_dataset(shapes_path, reacher_path):
    data = read_all(shapes_path)
    first = PathDataset(shapes_path, horizon=5)
    assert first.starts == "first" and len(first) == 3
    for i in range(3):
        item = first[i]
        np.testing.assert_array_equal(item["obs"].numpy(), data["obs"][i, 0])
        np.testing.assert_array_equal(item["next_obs"].numpy(), data["obs"][i, 5])
        assert item["actions"].tolist() == data["actions"][i].tolist()

    every = PathDataset(shapes_path, horizon=2, starts="all", states=True, twins=True)
    assert len(every) == 3 * 4
    item = every[6]  # episode 1, start 2
    np.testing.assert_array_equal(item["obs"].numpy(), data["obs"][1, 2])
    np.testing.assert_array_equal(item["next_obs"].numpy(), data["obs"][1, 4])
    assert item["actions"].shape == (2,) and item["actions"].dtype == torch.int64
    np.testing.assert_array_equal(item["next_states"]["positions"].numpy(), data["states/positions"][1, 4])
    assert item["twin_actions"].shape == (8, 2)
    np.testing.assert_array_equal(item["twin_next_obs"].numpy(), data["twins/obs"][1, :, 4])

    reacher = PathDataset(reacher_path, horizon=3, starts="all")
    assert len(reacher) == 3 * 2
    assert reacher[0]["actions"].shape == (3, 2) and reacher[0]["actions"].dtype == torch.float32

    with pytest.raises(ValueError, match="horizon"):
        PathDataset(shapes_path, horizon=6)
    with pytest.raises(ValueError, match="starts"):
        PathDataset(shapes_path, horizon=1, starts="last")
    no_twins = collect(shapes_path.parent / "plain.h5", SHAPES, 1, 2, env_kwargs=SHAPES_KW, progress=False)
    with pytest.raises(DatasetError, match="no transformed twins"):
        PathDataset(no_twins, horizon=1, twins=True)


def _collate_all(loader):
    batches = list(loader)
    return {k: torch.cat([b[k] for b in batches]) for k in ("obs", "action", "next_obs")}, batches


def test_lazy_dataloader_with_workers(shapes_path):
    eager = TransitionDataset(shapes_path, states=True)
    lazy = TransitionDataset(shapes_path, in_memory=False, states=True)
    lazy[0]  # the parent opens its own handle; workers must not reuse it
    restored = pickle.loads(pickle.dumps(lazy))
    assert restored._h5 is None and torch.equal(restored[3]["obs"], eager[3]["obs"])

    want, _ = _collate_all(DataLoader(eager, batch_size=4))
    got, batches = _collate_all(DataLoader(lazy, batch_size=4, num_workers=2))
    for key in want:
        assert torch.equal(want[key], got[key]), key
    assert batches[0]["states"]["positions"].shape == (4, 2, 2)

    eager_paths = PathDataset(shapes_path, 3, starts="all", twins=True)
    lazy_paths = PathDataset(shapes_path, 3, in_memory=False, starts="all", twins=True)
    batches = list(DataLoader(lazy_paths, batch_size=5, num_workers=2))
    assert sum(len(b["obs"]) for b in batches) == 3 * 3
    for key in ("obs", "actions", "next_obs", "twin_obs", "twin_actions", "twin_next_obs"):
        want = torch.stack([eager_paths[k][key] for k in range(len(eager_paths))])
        assert torch.equal(torch.cat([b[key] for b in batches]), want), key


def test_episodes_continue_past_termination(tmp_path):
    # a 2x2 grid with the goal one move away: the random policy reaches it (reward 1, terminated)
    kw = {"grid_size": 2, "n_objects": 1, "goal_moves": 1}
    a = read_all(collect(tmp_path / "a.h5", SHAPES, 3, 6, env_kwargs=kw, seed=4, progress=False))
    b = read_all(collect(tmp_path / "b.h5", SHAPES, 3, 6, env_kwargs=kw, seed=4, n_envs=2, progress=False))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert a["rewards"].shape == (3, 6) and np.any(a["rewards"][:, :-1] == 1.0)
    # the state after the goal step keeps evolving with the recorded actions
    env = open_dataset(tmp_path / "a.h5").make_env()
    for i in range(3):
        env.set_state({k[len("states/"):]: v[i, 0] for k, v in a.items() if k.startswith("states/")})
        for t in range(6):
            env.step(int(a["actions"][i, t]))
            np.testing.assert_array_equal(env.get_state()["positions"], a["states/positions"][i, t + 1])


def test_ensure_collected_reuses_only_identical_files(tmp_path):
    path = tmp_path / "d.h5"
    kw = dict(seed=4, env_kwargs=SHAPES_KW, actions="no-left", progress=False)
    assert ensure_collected(path, SHAPES, 2, 3, **kw) == (path, True)
    stamp = path.stat().st_mtime_ns
    assert ensure_collected(path, SHAPES, 2, 3, **kw) == (path, False)
    assert path.stat().st_mtime_ns == stamp
    assert ensure_collected(path, SHAPES, 2, 3, **{**kw, "seed": 5})[1]  # another seed: recollected
    with open_dataset(path) as f:
        assert f.attrs["seed"] == 5
    path.write_bytes(b"not hdf5")  # a corrupt file is replaced, not trusted
    assert ensure_collected(path, SHAPES, 2, 3, **kw)[1]
    with open_dataset(path) as f:
        assert f.n_episodes == 2
