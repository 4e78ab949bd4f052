"""The object-factored planar family (C_n / D_n x S_K, any n) on a user environment written outside symwm
(three tokens on a hexagonal board, C6 x S3) and on symwm's grid worlds when named."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from symwm.envs.checker import check_symmetric_env
from symwm.envs.groups import Dihedral, Permutation, Symmetric
from symwm.world_models.build import build_model, make_env
from symwm.world_models.checkpoint import load_model
from symwm.world_models.collect import collect
from symwm.world_models.equivariance import check_model_equivariance
from symwm.world_models.evaluate import evaluate
from symwm.world_models.model import ModelSpec
from symwm.world_models.models import planar_objects
from symwm.world_models.representations import object_motion_maps
from symwm.world_models.train import TrainConfig, train

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TOKENS = "hex_tokens_env:HexTokens-v0"


@pytest.fixture(autouse=True)
def examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))


def test_the_example_keeps_the_contract_and_gets_the_family():
    assert all(r.ok for r in check_symmetric_env(gym.make(TOKENS), n=20))
    model = build_model(ModelSpec(TOKENS))
    assert model.family == "planar-objects" and model.latent_shape == (3, 12)  # 3 tokens, 2 regular C6 fields each
    t = model.transition
    assert t.n_motions == 6 and sorted(t.motion_slot.tolist()) == list(range(6))


@pytest.mark.parametrize("mode", ["train", "eval", "export"])
def test_ours_is_equivariant_under_turns_and_relabellings_and_none_is_not(mode):
    env = make_env(ModelSpec(TOKENS))
    torch.manual_seed(0)
    model = build_model(ModelSpec(TOKENS, "ours"))
    model = model.export() if mode == "export" else model.train(mode == "train")
    errs = check_model_equivariance(model, env, batch=6, n_elements=36)  # all of C6 x S3
    assert errs["encoder"] < 1e-4 and errs["transition"] < 1e-4, errs
    none = build_model(ModelSpec(TOKENS, "none")).eval()
    v = none.embed(torch.randint(0, 256, (4, *env.observation_space.shape), dtype=torch.uint8))  # [4, 3, 24]
    assert v.shape == (4, 3, 24)
    g = (Dihedral(6).elements()[1], Symmetric(3).identity())
    rel = (none.encoder(none.symmetry.act_on_embedding(g, v)) - none.encoder(v)).norm() / none.encoder(v).norm()
    assert rel > 0.05
    with pytest.raises(ValueError, match="no group action"):
        none.symmetry.act_on_latent(g, torch.zeros(1, *none.latent_shape))


def test_relabelling_moves_slots_of_the_embedding_and_the_latent():
    model = build_model(ModelSpec(TOKENS)).eval()
    swap = (Dihedral(6).identity(), Permutation((1, 0, 2)))
    z = torch.randn(2, 3, 12)
    moved = model.symmetry.act_on_latent(swap, z)
    assert torch.equal(moved[:, 0], z[:, 1]) and torch.equal(moved[:, 1], z[:, 0]) and torch.equal(moved[:, 2], z[:, 2])


@pytest.mark.parametrize("kwargs", [{}, {"symmetry": "D4"}])
def test_the_family_also_models_a_grid_world_when_named(kwargs):
    spec = ModelSpec("symwm/Shapes2D-v0", env_kwargs=kwargs, family="planar-objects")
    torch.manual_seed(1)
    model = build_model(spec).eval()
    assert model.family == "planar-objects"
    errs = check_model_equivariance(model, make_env(spec), batch=4)
    assert errs["encoder"] < 1e-4 and errs["transition"] < 1e-4, errs


def test_action_layouts_that_are_not_object_factored_are_named():
    planar, perms = Dihedral(4), Symmetric(2)
    elements = {i: g for i, g in enumerate(planar.elements())}

    def across(g, a):  # a rotation moves object 0's actions to object 1
        planar_g, perm = g
        obj, motion = divmod(int(a), 4)
        return 4 * ((obj + planar_g.rotation) % 2) + (motion + planar_g.rotation) % 4

    with pytest.raises(ValueError, match="moves actions between objects"):
        object_motion_maps(across, planar, elements, perms, 8)

    def ignores_labels(g, a):  # permutations leave actions where they are
        obj, motion = divmod(int(a), 4)
        return 4 * obj + (motion + g[0].rotation) % 4

    with pytest.raises(ValueError, match="does not move object i's actions"):
        object_motion_maps(ignores_labels, planar, elements, perms, 8)
    with pytest.raises(ValueError, match="equal blocks"):
        object_motion_maps(ignores_labels, planar, elements, Symmetric(3), 8)
    assert planar_objects.supports(gym.make("hex_env:HexToken-v0").unwrapped) is not None  # no S_K factor


def test_collect_train_evaluate_and_load_end_to_end(tmp_path):
    train_h5 = collect(tmp_path / "train.h5", TOKENS, 60, 1, seed=1, actions="no-3,no-9,no-15", progress=False)
    eval_h5 = collect(tmp_path / "eval.h5", TOKENS, 20, 3, seed=2, twins="quarter-turn", progress=False)
    cfg = TrainConfig(dataset=str(train_h5), out_dir=str(tmp_path / "run"), epochs=1, batch_size=32, progress=False,
                      tensorboard=False, val_fraction=0.1)
    train(ModelSpec(TOKENS, "ours"), cfg)
    model = load_model(tmp_path / "run" / "best.pt")
    assert model.family == "planar-objects"
    metrics = evaluate(model, eval_h5, 3)
    assert 0.0 <= metrics["hits@1"] <= 100.0 and np.isfinite(metrics["ee"]) and 0.0 <= metrics["slot_usage"] <= 1.0
