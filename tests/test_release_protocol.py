"""The authors' release's protocol: one-step training data from random starts, quarter-turn twins,
EE and DIE as the release computes them, and the validation split that picks the best checkpoint."""

import math

import h5py
import numpy as np
import pytest
import torch

from symwm.envs.groups import DihedralElement
from symwm.world_models.build import build_model
from symwm.world_models.checkpoint import read_checkpoint
from symwm.world_models.collect import QUARTER_TURN, collect
from symwm.world_models.datasets import TransitionDataset, open_dataset
from symwm.world_models.evaluate import evaluate
from symwm.world_models.metrics import release_distance_invariance_error
from symwm.world_models.model import ModelSpec
from symwm.world_models.train import TrainConfig, train, validation_split

SHAPES = "symwm/Shapes2D-v0"
KW = {"n_objects": 3}


def test_one_step_episodes_start_from_independent_random_states(tmp_path):
    path = collect(tmp_path / "one.h5", SHAPES, 300, 1, seed=4, env_kwargs=KW, actions="no-left", progress=False)
    with h5py.File(path) as f:
        assert f["obs"].shape == (300, 2, 50, 50, 3)
        # many episodes share one chunk: one-step files are written in blocks, not episode by episode
        assert f["obs"].chunks[0] > 1
        starts = f["states/positions"][:, 0]  # [N, K, 2]
        actions = f["actions"][:, 0]
    # random start states, not a drifting trajectory: almost all distinct, objects spread over the grid
    assert len({s.tobytes() for s in starts}) >= 295
    cols = starts[..., 1].ravel()
    assert np.bincount(cols, minlength=5).min() > 0.1 * cols.size / 5
    assert not np.any(actions % 4 == 3)  # no "left" (motion 3)
    ds = TransitionDataset(path)
    assert len(ds) == 300


def test_quarter_turn_twins(tmp_path):
    path = collect(tmp_path / "q.h5", SHAPES, 4, 3, seed=1, env_kwargs=KW, twins=QUARTER_TURN, progress=False)
    with open_dataset(path) as f:
        (g,) = f.twin_elements()
        env = f.make_env()
        assert env.unwrapped.symmetry.action_group.equal(g, env.unwrapped.symmetry.quarter_turn())
        assert g[0] == DihedralElement(1, False) and env.unwrapped.symmetry.permutations.is_identity(g[1])
    with pytest.raises(ValueError, match="twins must be"):
        collect(tmp_path / "bad.h5", SHAPES, 2, 2, twins="half-turn", progress=False)


def test_release_die_by_hand():
    pred = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    z = torch.tensor([[0.0, 3.0], [4.0, 0.0]])  # mean norm 3.5
    # twins scaled by 2: every distance doubles, |d - 2d| = d; d = (1, 2) whatever the permutation
    die = release_distance_invariance_error(pred, target, 2 * pred, 2 * target, z, torch.Generator().manual_seed(0))
    assert die == pytest.approx(1.5 / 3.5)
    # an isometry (a rotation of both predictions and targets) gives 0
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    assert release_distance_invariance_error(pred, target, pred @ rot.T, target @ rot.T, z, torch.Generator()) == 0.0
    # predictions are compared with *true* latents, not with other predictions
    moved = release_distance_invariance_error(pred, target, pred, target + 1.0, z, torch.Generator().manual_seed(1))
    assert moved > 0.0
    assert math.isnan(release_distance_invariance_error(pred, target, pred, target, 0 * z, torch.Generator()))
    with pytest.raises(ValueError, match="one shape"):
        release_distance_invariance_error(pred, target, pred[:, :1], target, z, torch.Generator())


def test_evaluate_reports_the_release_metrics_at_the_quarter_turn(tmp_path):
    path = collect(tmp_path / "ev.h5", SHAPES, 12, 3, seed=2, env_kwargs=KW, twins=QUARTER_TURN, progress=False)
    model = build_model(ModelSpec(SHAPES, "ours", "cpu", env_kwargs=KW))
    r = evaluate(model, path, 2)
    assert {"ee", "die_sen", "die_model"} <= set(r) and "ee_mean_g" not in r
    assert all(r[k] >= 0.0 for k in ("ee", "die_sen", "die_model"))
    assert 0.0 <= r["slot_usage"] <= 1.0  # object-factored latents: the least-used slot's spread
    # with several twin elements the group average comes under its own name
    path4 = collect(tmp_path / "ev4.h5", SHAPES, 12, 3, seed=2, env_kwargs=KW, twins="all", progress=False)
    r4 = evaluate(model, path4, 2)
    assert r4["ee"] == pytest.approx(r["ee"]) and "ee_mean_g" in r4


def test_hard_negatives_on_an_env_without_a_pose_fail_before_ranking(tmp_path, monkeypatch):
    import symwm.world_models.evaluate as evaluation

    path = collect(tmp_path / "ev.h5", SHAPES, 6, 2, seed=2, env_kwargs=KW, progress=False)
    model = build_model(ModelSpec(SHAPES, "ours", "cpu", env_kwargs=KW))

    def no_ranking(*args, **kwargs):
        raise AssertionError("ranked before checking the pose key")

    monkeypatch.setattr(evaluation, "ranks_with_and_without_ids", no_ranking)
    with pytest.raises(ValueError, match="hard negatives need env.pose_key.*Shapes2D"):
        evaluation.evaluate(model, path, 1, hard_negatives=2)


def test_validation_split_holds_out_whole_episodes():
    train_idx, val_idx = validation_split(50, 4, 0.1, seed=3)
    assert len(val_idx) == 5 * 4 and len(train_idx) == 45 * 4
    assert not set(train_idx) & set(val_idx) and sorted(train_idx + val_idx) == list(range(200))
    assert {i // 4 for i in val_idx}.isdisjoint({i // 4 for i in train_idx})
    assert validation_split(50, 4, 0.1, seed=3) == (train_idx, val_idx)
    assert validation_split(50, 4, 0.1, seed=4)[1] != val_idx
    assert validation_split(50, 4, 0.0, seed=3) == (list(range(200)), [])
    with pytest.raises(ValueError, match="val_fraction"):
        validation_split(50, 4, 1.0, seed=3)


def test_best_checkpoint_is_chosen_by_validation_loss(tmp_path):
    data = collect(tmp_path / "t.h5", SHAPES, 120, 1, seed=5, env_kwargs=KW, progress=False)
    cfg = TrainConfig(dataset=str(data), out_dir=str(tmp_path / "run"), epochs=3, batch_size=20, lr=1e-3,
                      val_fraction=0.25, progress=False, tensorboard=False)
    result = train(ModelSpec(SHAPES, "none", "cpu", env_kwargs=KW), cfg)
    rows = result.history
    assert all({"val_loss", "val_hits@1", "val_mrr", "val_slot_usage"} <= set(r) for r in rows)
    best_epoch = min(range(len(rows)), key=lambda e: rows[e]["val_loss"]) + 1
    payload = read_checkpoint(result.best)
    assert payload["trainer_state"]["best_epoch"] == best_epoch
    assert payload["trainer_state"]["best_loss"] == pytest.approx(rows[best_epoch - 1]["val_loss"])
