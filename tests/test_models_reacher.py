"""Reacher world models: D4 equivariance of every equivariant part (train, eval, exported), sizes, round trips."""

import copy
import time

import numpy as np
import pytest
import torch
from escnn import gspaces
from escnn import nn as enn

from symwm.envs.groups import Dihedral, DihedralElement, transform_grid
from symwm.envs.reacher import ReacherEnv
from symwm.world_models.build import build_model, make_env
from symwm.world_models.equivariance import check_model_equivariance
from symwm.world_models.escnn_bridge import representation_matrix, to_escnn
from symwm.world_models.model import ModelSpec, WorldModel
from symwm.world_models.models import reacher

ENV_ID = "symwm/Reacher-v0"
D4 = Dihedral(4, reflections=True)
ELEMENTS = D4.elements()
TOL = 1e-4


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def spec(variant: str, size: str = "cpu", **env_kwargs) -> ModelSpec:
    return ModelSpec(ENV_ID, variant, size, env_kwargs=env_kwargs)


def top_camera_batch(seeds: range) -> tuple[ReacherEnv, list[dict], np.ndarray]:
    """States reached by simulation (so the two frames differ) and their top-camera observations."""
    env = ReacherEnv(camera="top", resolution=64, goal="random")
    states, obs = [], []
    for seed in seeds:
        env.reset(seed=seed)
        for a in np.random.default_rng(seed).uniform(-1, 1, (3, 2)):
            o, *_ = env.step(a)
        states.append(env.get_state())
        obs.append(o)
    return env, states, np.stack(obs)


def warmed_up(variant: str, frames: torch.Tensor) -> WorldModel:
    """A cpu-size model whose BatchNorm running statistics come from rendered frames."""
    model = build_model(spec(variant)).train()
    with torch.no_grad():
        for _ in range(3):
            model.encode(frames)
    return model


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    """Eight top-camera observations ``[8, 64, 64, 6]`` for BatchNorm statistics."""
    return torch.as_tensor(top_camera_batch(range(100, 108))[2])


@pytest.fixture(scope="module")
def models(frames) -> dict[str, WorldModel]:
    """One cpu-size model per variant (tests may run them in train mode with random inputs)."""
    torch.manual_seed(0)
    return {variant: warmed_up(variant, frames) for variant in reacher.VARIANTS}


@pytest.fixture(scope="module")
def full_on_frames(frames) -> WorldModel:
    """A ``full`` model that only ever sees rendered frames (random inputs can kill every ReLU in eval mode)."""
    torch.manual_seed(0)
    return warmed_up("full", frames)


def in_mode(model: WorldModel, mode: str) -> WorldModel:
    """The model in train or eval mode, or its export."""
    if mode == "export":
        return model.export()
    return model.train() if mode == "train" else model.eval()


def torques(g: DihedralElement, a: torch.Tensor) -> torch.Tensor:
    """``rho_A(g) a`` as the environment defines it."""
    return torch.as_tensor(ReacherEnv().symmetry.act_on_action(g, a.numpy()), dtype=torch.float32)


# -- the group on Z and on actions ------------------------------------------------------------------


def test_latent_action_is_a_representation_of_d4(models):
    sym = models["ours"].symmetry
    z = torch.randn(5, 1, 32)
    for g in ELEMENTS:
        for h in ELEMENTS:
            lhs = sym.act_on_latent(g, sym.act_on_latent(h, z))
            assert torch.allclose(lhs, sym.act_on_latent(D4.compose(g, h), z), atol=1e-6)
    assert torch.equal(sym.act_on_latent(D4.identity(), z), z)
    with pytest.raises(ValueError, match="not an element"):
        sym.act_on_latent(DihedralElement(5, False), z)


def test_flip_irrep_is_the_envs_torque_representation():
    G = gspaces.flipRot2dOnR2(4).fibergroup
    rho = reacher.flip_irrep(G)
    assert rho.size == 1 and rho.name == "irrep_1,0"
    a = np.array([0.3, -0.7])
    latent = reacher.ReacherLatentSymmetry(D4, G)
    for g in ELEMENTS:
        sign = float(representation_matrix(rho, to_escnn(g, G))[0, 0])
        assert np.array_equal(sign * a, ReacherEnv().symmetry.act_on_action(g, a))
        assert np.array_equal(latent.act_on_action(g, torch.as_tensor(a)).numpy(), sign * a)


def test_latent_symmetry_agrees_with_escnn_field_types(models):
    """act_on_latent is the transition's input/output field type acting on z (and actions)."""
    transition = models["ours"].transition.net.net  # escnn SequentialModule
    t_in, t_out = transition.in_type, transition.out_type
    G = t_in.fibergroup
    sym = models["ours"].symmetry
    z, a = torch.randn(4, 1, 32), torch.rand(4, 2) * 2 - 1
    for g in ELEMENTS:
        x = t_in(torch.cat([z.flatten(1), a], 1)).transform(to_escnn(g, G)).tensor
        assert torch.allclose(x[:, :32], sym.act_on_latent(g, z).flatten(1), atol=1e-6)
        assert torch.allclose(x[:, 32:], torques(g, a), atol=1e-6)
        zt = t_out(z.flatten(1)).transform(to_escnn(g, G)).tensor
        assert torch.allclose(zt, sym.act_on_latent(g, z).flatten(1), atol=1e-6)


# -- equivariance of the parts -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["train", "eval", "export"])
@pytest.mark.parametrize("variant", ["ours", "full"])
def test_encoder_and_transition_are_d4_equivariant(models, variant, mode):
    model = in_mode(models[variant], mode)
    torch.manual_seed(1)
    v, z, a = torch.randn(4, 8, 32, 32), torch.randn(4, 1, 32), torch.rand(4, 2) * 2 - 1
    errs = check_model_equivariance(model, make_env(spec(variant)), v=v, z=z, actions=list(a.numpy()), elements=ELEMENTS)
    assert errs["encoder"] < TOL and errs["transition"] < TOL, errs


@pytest.mark.parametrize("mode", ["train", "eval", "export"])
def test_full_sen_is_equivariant_to_pixel_transforms(models, frames, mode):
    model = in_mode(models["full"], mode)
    x = frames[:4].permute(0, 3, 1, 2).float() / 255  # rendered frames: random ones can silence every ReLU in eval mode
    with torch.no_grad():
        sx = model.sen(x)
        for g in ELEMENTS:
            gx = transform_grid(g, x, axes=(-2, -1))
            assert rel_err(model.sen(gx), model.symmetry.act_on_embedding(g, sx)) < TOL, g


def test_none_is_not_equivariant(models):
    model = models["none"].eval()
    sym = model.symmetry
    torch.manual_seed(2)
    v, z, a = torch.randn(4, 8, 32, 32), torch.randn(4, 1, 32), torch.rand(4, 2) * 2 - 1
    with torch.no_grad():
        enc = max(rel_err(model.encoder(sym.act_on_embedding(g, v)), sym.act_on_latent(g, model.encoder(v))) for g in ELEMENTS)
        tra = max(
            rel_err(model.transition(sym.act_on_latent(g, z), torques(g, a)), sym.act_on_latent(g, model.transition(z, a)))
            for g in ELEMENTS
        )
    assert enc > 0.05 and tra > 0.05


@pytest.mark.parametrize("mode", ["train", "eval", "export"])
def test_full_model_is_equivariant_end_to_end_with_the_top_camera(full_on_frames, mode):
    """encode(observation_of(g.s)) == rho_Z(g) encode(obs) on rendered frames of simulated states."""
    env, states, obs = top_camera_batch(range(3))
    model = in_mode(full_on_frames, mode)
    with torch.no_grad():
        z = model.encode(torch.as_tensor(obs))
        assert z.abs().amax(dim=(1, 2)).min() > 1e-4  # not a dead network
        for g in ELEMENTS:
            twins = np.stack([env.observation_of(env.symmetry.act_on_state(g, s)) for s in states])
            assert np.array_equal(twins, np.stack([transform_grid(g, o) for o in obs]))  # the env's promise
            assert rel_err(model.encode(torch.as_tensor(twins)), model.symmetry.act_on_latent(g, z)) < TOL, g


def test_dilated_steerable_kernel_is_the_stretched_3x3_kernel():
    gs = gspaces.flipRot2dOnR2(4)
    t = enn.FieldType(gs, [gs.regular_repr] * 2)
    plain = enn.R2Conv(t, t, 3, padding=1, initialize=False)
    for d in (2, 8, 32):
        dilated = enn.R2Conv(t, t, 3, padding=d, dilation=d, initialize=False, **reacher._dilated_basis(d))
        assert dilated.weights.shape == plain.weights.shape  # 48 weights per pair of regular fields
        dilated.weights.data.copy_(torch.randn_like(plain.weights))
        plain.weights.data.copy_(dilated.weights.data)
        assert torch.allclose(dilated.expand_parameters()[0], plain.expand_parameters()[0], atol=1e-5)


# -- sizes, build, export, checkpoints ----------------------------------------------------------------


@pytest.mark.parametrize("variant, target", [("ours", 4.0e6), ("none", 5.6e6)])
def test_paper_size_parameter_counts_and_fast_build(variant, target):
    start = time.perf_counter()
    model = build_model(spec(variant, "paper"), initialize=False)
    assert time.perf_counter() - start < 15.0
    total = model.num_parameters()["total"]
    assert abs(total - target) / target < 0.10, total


def test_parameter_counts_do_not_depend_on_resolution():
    for variant in reacher.VARIANTS:
        n64 = build_model(spec(variant), initialize=False).num_parameters()
        n128 = build_model(spec(variant, resolution=128), initialize=False).num_parameters()
        assert n64 == n128


@pytest.mark.parametrize("variant", reacher.VARIANTS)
def test_state_dict_round_trip_in_eval_mode(models, variant):
    model = models[variant].eval()
    clone = build_model(spec(variant), initialize=False).eval()
    clone.load_state_dict(copy.deepcopy(model.state_dict()))
    obs = torch.randint(0, 256, (3, 64, 64, 6), dtype=torch.uint8)
    a = torch.rand(3, 2) * 2 - 1
    with torch.no_grad():
        z = model.encode(obs)
        assert torch.equal(clone.encode(obs), z)
        assert torch.equal(clone.predict(z, a), model.predict(z, a))


@pytest.mark.parametrize("variant", reacher.VARIANTS)
def test_export_is_plain_torch_and_matches_after_training(variant):
    torch.manual_seed(3)
    model = build_model(spec(variant)).train()
    obs = torch.randint(0, 256, (4, 64, 64, 6), dtype=torch.uint8)
    a = torch.rand(4, 2) * 2 - 1
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    z, z_pred, z_next = model(obs, a, obs.flip(0))
    (z_pred - z_next).pow(2).sum().backward()
    opt.step()
    exported = model.export()  # deep-copies the eval-mode model: filters must not carry autograd history
    assert not any(type(m).__module__.startswith("escnn") for m in exported.modules())
    with torch.no_grad():
        z = model.encode(obs)
        assert torch.allclose(exported.encode(obs), z, atol=1e-5, rtol=1e-4)
        assert torch.allclose(exported.predict(z, a), model.predict(z, a), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("variant", reacher.VARIANTS)
def test_shapes(models, variant):
    model = models[variant].eval()
    assert model.latent_shape == (1, 32)
    assert model.symmetry.group.order == 8 and model.spec.variant == variant
    obs = torch.randint(0, 256, (5, 64, 64, 6), dtype=torch.uint8)
    a = torch.rand(5, 2) * 2 - 1
    with torch.no_grad():
        assert model.embed(obs).shape == (5, 8, 32, 32)
        z = model.encode(obs)
        assert z.shape == (5, 1, 32)
        assert model.predict(z, a).shape == (5, 1, 32)
        assert model.rollout(z, torch.rand(5, 7, 2) * 2 - 1).shape == (5, 1, 32)
        assert all(t.shape == (5, 1, 32) for t in model(obs, a, obs))


def test_resolution_128_and_bad_resolutions():
    model = build_model(spec("full", resolution=128), initialize=False).eval()
    with torch.no_grad():
        assert model.encode(torch.randint(0, 256, (2, 128, 128, 6), dtype=torch.uint8)).shape == (2, 1, 32)
    with pytest.raises(ValueError, match="multiple of 32"):
        build_model(spec("ours", resolution=48))


@pytest.mark.parametrize("resolution", [64, 128])
def test_strided_sen_is_the_releases_form(resolution):
    """ours'/none's SEN: a stride-2 3x3 conv on the frames, dilations 2..32, a 3x3 conv to 8 maps on 32x32; no pooling."""
    for variant in ("ours", "none"):
        model = build_model(spec(variant, resolution=resolution), initialize=False).eval()
        convs = [m for m in model.sen.modules() if isinstance(m, torch.nn.Conv2d)]
        assert model.sen.factor == 1
        assert [c.kernel_size for c in convs] == [(3, 3)] * 7
        assert [c.dilation[0] for c in convs] == [1, 2, 4, 8, 16, 32, 1]
        assert [c.stride[0] for c in convs] == [2, 1, 1, 1, 1, 1, 2 if resolution == 128 else 1]
        with torch.no_grad():
            v = model.embed(torch.randint(0, 256, (2, resolution, resolution, 6), dtype=torch.uint8))
        assert v.shape == (2, 8, 32, 32)


def test_pooled_sen_remains_an_option_and_bad_downsampling_is_named():
    pooled = build_model(
        ModelSpec(ENV_ID, "ours", "cpu", env_kwargs={"resolution": 96},
                  overrides={"sen_downsample": "pool", "sen_dilations": reacher.DILATIONS}),
        initialize=False,
    ).eval()
    assert pooled.sen.factor == 3
    with torch.no_grad():
        assert pooled.embed(torch.randint(0, 256, (2, 96, 96, 6), dtype=torch.uint8)).shape == (2, 8, 32, 32)
    with pytest.raises(ValueError, match="strided Reacher SEN takes"):
        build_model(spec("ours", resolution=96), initialize=False)
    with pytest.raises(ValueError, match="sen_downsample must be"):
        build_model(ModelSpec(ENV_ID, "none", "cpu", overrides={"sen_downsample": "dilate"}), initialize=False)


def test_presets_cover_every_variant_and_overrides_apply():
    assert reacher.VARIANTS == ("ours", "none", "full")
    for size in ("cpu", "paper"):
        assert set(reacher.PRESETS[size]) == set(reacher.VARIANTS)
    wide = build_model(ModelSpec(ENV_ID, "ours", "cpu", overrides={"enc_fields": 5}), initialize=False)
    assert wide.num_parameters()["encoder"] > build_model(spec("ours"), initialize=False).num_parameters()["encoder"]
    env = make_env(spec("ours"))
    with pytest.raises(ValueError, match="unknown Reacher variant"):
        reacher.build(ModelSpec(ENV_ID, "matmul"), env, reacher.PRESETS["cpu"]["ours"])
