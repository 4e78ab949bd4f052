"""Rollouts users already have: Minari datasets of a symmetric env into training and evaluation."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

minari = pytest.importorskip("minari")
from minari.data_collector.episode_buffer import EpisodeBuffer  # noqa: E402

from symwm.cli import main  # noqa: E402
from symwm.world_models.datasets import DatasetError, PathDataset, TransitionDataset, open_dataset  # noqa: E402
from symwm.world_models.minari_io import from_minari  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ENV = "hex_env:HexToken-v0"


@pytest.fixture(autouse=True)
def examples_on_path_and_private_minari(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


def record(dataset_id: str, episodes: int, with_states: bool):
    """A Minari dataset of random episodes as a user would have it: ground-truth states in infos, or nothing."""
    env = gym.make(ENV)
    env.action_space.seed(0)
    buffers = []
    for ep in range(episodes):
        o, info = env.reset(seed=ep)
        obs, acts, rews, terms, truns, states = [o], [], [], [], [], [info["state"]]
        for _ in range(6):
            a = int(env.action_space.sample())
            o, r, term, trunc, info = env.step(a)
            obs.append(o), acts.append(a), rews.append(r), terms.append(term), truns.append(trunc), states.append(info["state"])
            if term:
                break
        infos = {"state": {k: np.stack([s[k] for s in states]) for k in states[0]}} if with_states else None
        buffers.append(EpisodeBuffer(id=ep, observations=np.stack(obs), actions=np.array(acts), rewards=np.array(rews),
                                     terminations=np.array(terms), truncations=np.array(truns), infos=infos))
    return minari.create_dataset_from_buffers(dataset_id, buffers, env=env, algorithm_name="random")


def test_a_minari_dataset_with_states_trains_and_gets_twins(tmp_path, capsys):
    record("symwm/hex/random-v0", 12, with_states=True)
    assert main(["import-minari", "symwm/hex/random-v0", "--out", str(tmp_path / "eval.h5"), "--steps", "2",
                 "--twins", "quarter-turn"]) == 0
    with open_dataset(tmp_path / "eval.h5") as f:
        assert f.env_id == ENV and f.episode_length == 2 and f.n_twins == 1 and f.state_keys == ("goal", "token")
        assert f.attrs["source"] == "minari:symwm/hex/random-v0" and f.attrs["states"] == "recorded"
        obs = f["obs"][0]
    ds = minari.load_dataset("symwm/hex/random-v0")
    assert np.array_equal(obs, np.asarray(next(iter(ds.iterate_episodes())).observations)[:3])  # the first window
    run = tmp_path / "run"
    assert main(["train", "--env", ENV, "--dataset", "minari:symwm/hex/random-v0", "--out-dir", str(run), "--epochs", "1",
                 "--batch-size", "16", "--no-progress", "--no-tensorboard", "--val-fraction", "0"]) == 0
    assert (run / "minari-symwm_hex_random-v0.h5").exists() and (run / "best.pt").exists()
    assert main(["eval", str(run / "best.pt"), "--dataset", str(tmp_path / "eval.h5"), "--horizon", "2", "--quiet"]) == 0
    assert "EE" in capsys.readouterr().out


def test_without_states_training_works_and_twins_are_refused_with_a_reason(tmp_path):
    record("symwm/hex/plain-v0", 8, with_states=False)
    with pytest.raises(ValueError, match="twins are rendered from ground-truth states"):
        from_minari("symwm/hex/plain-v0", tmp_path / "x.h5", twins="quarter-turn")
    path = from_minari("symwm/hex/plain-v0", tmp_path / "plain.h5")
    data = TransitionDataset(path)
    assert len(data) > 0 and data.attrs["states"] == "none"
    with pytest.raises(DatasetError, match="no ground-truth states .* training and Hits@k / MRR do not need them"):
        PathDataset(path, 1, states=True)
    with pytest.raises(ValueError, match="cannot load the Minari dataset"):
        from_minari("symwm/hex/none-v0", tmp_path / "y.h5")
