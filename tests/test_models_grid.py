"""Grid-world world models (``symwm.world_models.models.grid``): equivariance, sizes, export, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from symwm.envs.groups import transform_grid
from symwm.world_models.equivariance import check_model_equivariance
from symwm.world_models.components.mlp import FieldLayerNorm
from symwm.world_models.build import build_model, make_env
from symwm.world_models.model import ModelSpec, WorldModel
from symwm.world_models.models import grid

# (env id, env kwargs): C4 and D4, even and odd image sizes (odd: fixed centre pixel, and for D4
# pixel orbits with a reflection stabiliser), absolute (Cubes/Shapes) and relative (RushHour) motions.
CONFIGS = [
    ("symwm/Cubes3D-v0", {}),
    ("symwm/Cubes3D-v0", {"symmetry": "D4"}),
    ("symwm/Cubes3D-v0", {"symmetry": "D4", "resolution": 17}),  # odd: built with sen_pool=1
    ("symwm/RushHour-v0", {}),
    ("symwm/RushHour-v0", {"symmetry": "D4"}),
    ("symwm/Shapes2D-v0", {"n_objects": 1, "grid_size": 3, "resolution": 18}),
]
CONFIG_IDS = ["cubes-C4", "cubes-D4", "cubes-D4-odd", "rush-C4", "rush-D4", "shapes-1obj"]
TOL = 1e-4

_cache: dict[tuple, tuple[WorldModel, object]] = {}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small batches run ~10x faster (and steadier) on one thread than on two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def model_and_env(env_id: str, kwargs: dict, variant: str) -> tuple[WorldModel, object]:
    """A cpu-size model (built once per session, seeded) and its unwrapped env."""
    key = (env_id, tuple(sorted(kwargs.items())), variant)
    if key not in _cache:
        torch.manual_seed(0)
        overrides = {"sen_pool": 1} if kwargs.get("resolution", 50) % 2 else {}
        spec = ModelSpec(env_id, variant, "cpu", env_kwargs=dict(kwargs), overrides=overrides)
        _cache[key] = (build_model(spec), make_env(spec))
    return _cache[key]


def map_size(model: WorldModel, env) -> int:
    """Side of the SEN's maps (the image side divided by the preset's ``sen_pool``)."""
    with torch.no_grad():
        return model.eval().embed(torch.zeros(1, *env.observation_space.shape, dtype=torch.uint8)).shape[-1]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def group_samples(sym, rng: np.random.Generator, n_perms: int = 3) -> list[tuple]:
    """Every planar element, each with the identity and a few random permutations."""
    perms = sym.permutations
    out = []
    for p in sym.planar.elements():
        out.append((p, perms.identity()))
        out += [(p, perms.sample(rng)) for _ in range(n_perms - 1)]
    return out


def in_mode(model: WorldModel, mode: str) -> WorldModel:
    if mode == "export":
        return model.export()
    return model.train() if mode == "train" else model.eval()


def equivariance_errors(model: WorldModel, env, mode: str) -> tuple[float, float]:
    """Largest relative encoder and transition equivariance errors (the library's check) over sampled group elements."""
    rng = np.random.default_rng(1)
    gen = torch.Generator().manual_seed(1)
    k, d = model.latent_shape
    h = map_size(model, env)
    v = torch.rand(4, k, h, h, generator=gen)
    z = torch.randn(4, k, d, generator=gen)
    a = rng.integers(0, 4 * k, size=4)
    errs = check_model_equivariance(in_mode(model, mode), env, v=v, z=z, actions=list(a), elements=group_samples(env.symmetry, rng))
    return errs["encoder"], errs["transition"]


@pytest.mark.parametrize("mode", ["train", "eval", "export"])
@pytest.mark.parametrize("variant", ["ours", "full"])
@pytest.mark.parametrize("env_id,kwargs", CONFIGS, ids=CONFIG_IDS)
def test_encoder_and_transition_are_equivariant(env_id, kwargs, variant, mode):
    model, env = model_and_env(env_id, kwargs, variant)
    enc, trans = equivariance_errors(model, env, mode)
    assert enc < TOL, f"encoder equivariance error {enc:.2e}"
    assert trans < TOL, f"transition equivariance error {trans:.2e}"


@pytest.mark.parametrize("env_id,kwargs", CONFIGS[:3] + CONFIGS[3:4], ids=CONFIG_IDS[:4])
def test_none_variant_has_the_release_latent_and_no_group_action(env_id, kwargs):
    """``none`` keeps C-SWM's 2 plain latent units per object; the group does not act on them."""
    model, env = model_and_env(env_id, kwargs, "none")
    k, d = model.latent_shape
    assert d == 2
    g = (env.symmetry.planar.elements()[1], env.symmetry.permutations.identity())
    with pytest.raises(ValueError, match="no group action"):
        model.symmetry.act_on_latent(g, torch.zeros(1, k, d))
    h = map_size(model, env)
    v = torch.rand(4, k, h, h, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # a quarter turn of the maps changes the latent: E is not invariant either
        assert rel_err(model.eval().encoder(model.symmetry.act_on_embedding(g, v)), model.encoder(v)) > 0.05


@pytest.mark.parametrize("mode", ["train", "eval", "export"])
@pytest.mark.parametrize("env_id,kwargs", CONFIGS[:3], ids=CONFIG_IDS[:3])
def test_full_sen_and_full_model_are_pixel_equivariant(env_id, kwargs, mode):
    """``full``: S(g x) = rho_V(g) S(x) and E(S(g x)) = rho_Z(g) E(S(x)) for pixel-transformed images."""
    model, env = model_and_env(env_id, kwargs, "full")
    m = in_mode(model, mode)
    sym, ident = model.symmetry, env.symmetry.permutations.identity()
    gen = torch.Generator().manual_seed(2)
    obs = torch.randint(0, 256, (4, *env.observation_space.shape), dtype=torch.uint8, generator=gen)
    with torch.no_grad():
        s, z = m.embed(obs), m.encode(obs)
        for p in env.symmetry.planar.elements():
            g_obs = transform_grid(p, obs, axes=(1, 2))  # [B, H, W, C]
            assert rel_err(m.embed(g_obs), sym.act_on_embedding((p, ident), s)) < TOL, p
            assert rel_err(m.encode(g_obs), sym.act_on_latent((p, ident), z)) < TOL, p


@pytest.mark.parametrize("variant", grid.VARIANTS)
def test_export_is_plain_torch_and_matches_eval(variant):
    model, env = model_and_env(*CONFIGS[1], variant)
    k = env.n_objects
    gen = torch.Generator().manual_seed(4)
    obs = torch.randint(0, 256, (3, *env.observation_space.shape), dtype=torch.uint8, generator=gen)
    a = torch.randint(0, 4 * k, (3,), generator=gen)
    exported = model.export()
    assert not any(type(mod).__module__.startswith("escnn") for mod in exported.modules())
    with torch.no_grad():
        z = model.eval().encode(obs)
        torch.testing.assert_close(exported.encode(obs), z, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(exported.predict(z, a), model.predict(z, a), rtol=1e-4, atol=1e-5)


def test_paper_parameter_counts():
    """Cubes3D defaults (5 objects, 50x50, C4): ours ~2.0M, none the release's 2,625,577, full's SEN ~ the plain SEN."""
    counts = {v: build_model(ModelSpec("symwm/Cubes3D-v0", v, "paper"), initialize=False).num_parameters() for v in grid.VARIANTS}
    assert abs(counts["ours"]["total"] - 2.0e6) < 0.1 * 2.0e6, counts["ours"]
    assert counts["none"]["total"] == 2_625_577, counts["none"]  # the release's C-SWM baseline, to the parameter
    assert abs(counts["full"]["sen"] - counts["ours"]["sen"]) < 0.1 * counts["ours"]["sen"], counts
    assert counts["ours"]["sen"] == counts["none"]["sen"]


@pytest.mark.parametrize("variant", grid.VARIANTS)
def test_state_dict_round_trip(variant):
    spec = ModelSpec("symwm/Cubes3D-v0", variant, "cpu", env_kwargs={"symmetry": "D4", "resolution": 18})
    torch.manual_seed(5)
    model = build_model(spec)
    env = make_env(spec)
    k = env.n_objects
    obs = torch.randint(0, 256, (4, *env.observation_space.shape), dtype=torch.uint8)
    a = torch.randint(0, 4 * k, (4,))
    model.train()
    model.encode(obs)  # move BatchNorm running statistics away from their defaults
    model.eval()
    state = {name: t.clone() for name, t in model.state_dict().items()}
    fresh = build_model(spec, initialize=False).eval()
    fresh.load_state_dict(state, strict=True)
    with torch.no_grad():
        z = model.encode(obs)
        assert torch.equal(fresh.encode(obs), z)
        assert torch.equal(fresh.predict(z, a), model.predict(z, a))


@pytest.mark.parametrize("variant", grid.VARIANTS)
def test_forward_shapes(variant):
    model, env = model_and_env(*CONFIGS[0], variant)
    slots, d = model.latent_shape
    assert (slots, d) == {"none": (5, 2), "cnn": (1, 32)}.get(variant, (5, 8))  # cnn: one vector for the scene
    k = env.n_objects
    gen = torch.Generator().manual_seed(6)
    obs = torch.randint(0, 256, (3, *env.observation_space.shape), dtype=torch.uint8, generator=gen)
    actions = torch.randint(0, 4 * k, (3, 4), generator=gen)
    model.train()
    z, z_pred, z_next = model(obs, actions[:, 0], obs)
    assert z.shape == z_pred.shape == z_next.shape == (3, slots, d)
    assert model.embed(obs).shape == (3, k, 25, 25)  # the cpu preset pools 2x2 before the SEN
    with torch.no_grad():
        model.eval()
        z = model.encode(obs)
        assert model.predict(z, actions[:, 0]).shape == (3, slots, d)
        assert model.rollout(z, actions).shape == (3, slots, d)
        assert torch.equal(model.rollout(z, actions[:, :1]), model.predict(z, actions[:, 0]))
    with pytest.raises(ValueError):
        model.predict(z, torch.full((3,), 4 * k))


def test_d4_latent_size_and_group():
    model, env = model_and_env(*CONFIGS[1], "ours")
    assert model.latent_shape == (5, 16)
    assert model.symmetry.group.name == env.symmetry.group.name == "D4 x S5"


@pytest.mark.parametrize("env_id,kwargs", CONFIGS[:3], ids=CONFIG_IDS[:3])
def test_latent_and_embedding_actions_are_group_actions(env_id, kwargs):
    """rho(g) rho(h) = rho(g h) on V and Z (catches permutation-direction and composition-order slips)."""
    model, env = model_and_env(env_id, kwargs, "ours")
    sym, group = model.symmetry, env.symmetry.group
    rng = np.random.default_rng(7)
    k, d = model.latent_shape
    h = map_size(model, env)
    v, z = torch.randn(2, k, h, h), torch.randn(2, k, d)
    for _ in range(6):
        g1, g2 = group.sample(rng), group.sample(rng)
        g12 = group.compose(g1, g2)
        assert torch.equal(sym.act_on_embedding(g1, sym.act_on_embedding(g2, v)), sym.act_on_embedding(g12, v))
        torch.testing.assert_close(sym.act_on_latent(g1, sym.act_on_latent(g2, z)), sym.act_on_latent(g12, z))


@pytest.mark.parametrize("size,reflections", [(4, False), (5, False), (4, True), (5, True)])
def test_pixel_fields_match_the_pixel_permutation(size, reflections):
    """The orbit decomposition reproduces transform_grid exactly, field by field."""
    from symwm.envs.groups import Dihedral

    planar = Dihedral(4, reflections)
    G = grid.escnn_planar_group(planar)
    order, reps = grid.permutation_fields(G, grid.pixel_maps(planar, G, size, size))
    assert sorted(order.tolist()) == list(range(size * size))
    assert sum(r.size for r in reps) == size * size
    x = torch.randn(size, size)
    for s in planar.elements():
        h = grid.to_escnn(s, G)
        block = torch.block_diag(*[grid.representation_matrix(r, h) for r in reps])
        moved = transform_grid(s, x).reshape(-1)[order]
        assert torch.allclose(block @ x.reshape(-1)[order], moved)
    names = {r.name for r in reps}
    assert "regular" in names
    assert ("irrep_0" in names or "irrep_0,0" in names) == (size % 2 == 1)  # the fixed centre pixel


@pytest.mark.parametrize(
    "env_id,kwargs,sizes",
    [
        ("symwm/Cubes3D-v0", {}, [4]),  # C4 on up/right/down/left: the regular representation
        ("symwm/Cubes3D-v0", {"symmetry": "D4"}, [4]),
        ("symwm/RushHour-v0", {}, [1, 1, 1, 1]),  # relative motions: rotations act trivially
        ("symwm/RushHour-v0", {"symmetry": "D4"}, [1, 1, 2]),  # reflections swap turn_left/turn_right
    ],
)
def test_motion_representation(env_id, kwargs, sizes):
    env = make_env(ModelSpec(env_id, "ours", "cpu", env_kwargs=kwargs))
    G = grid.escnn_planar_group(env.symmetry.planar)
    order, reps = grid.permutation_fields(G, grid.motion_maps(env.symmetry, G))
    assert [r.size for r in reps] == sizes
    if not kwargs:
        assert reps[0].name == ("regular" if sizes == [4] else "irrep_0")


def test_field_layer_norm_is_equivariant_for_field_permutations():
    ln = FieldLayerNorm(3, 4)
    with torch.no_grad():
        ln.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
        ln.bias.copy_(torch.tensor([0.1, 0.0, 0.3]))
    x = torch.randn(5, 12)
    perm = torch.tensor([1, 2, 3, 0])
    permute = lambda t: t.view(5, 3, 4)[..., perm].reshape(5, 12)  # noqa: E731  same cyclic shift in every field
    torch.testing.assert_close(ln(permute(x)), permute(ln(x)))
    torch.testing.assert_close(FieldLayerNorm(1, 12)(x), torch.nn.functional.layer_norm(x, (12,)))


def test_sen_pool_must_divide_the_image():
    spec = ModelSpec("symwm/Cubes3D-v0", "ours", "cpu", env_kwargs={"resolution": 17})
    with pytest.raises(ValueError, match="sen_pool=2 must divide the image size 17x17"):
        build_model(spec, initialize=False)


def test_padded_input_conv_is_the_same_function_and_parameters():
    from symwm.world_models.components.sen import PaddedInputConv2d

    torch.manual_seed(0)
    plain = torch.nn.Conv2d(3, 5, 3, padding=1)
    padded = PaddedInputConv2d(3, 5, 3, padding=1, force=True)  # force: the CUDA path, on CPU
    padded.load_state_dict(plain.state_dict())
    assert list(padded.state_dict()) == list(plain.state_dict())
    x = torch.rand(4, 3, 10, 10, requires_grad=True)
    y0, y1 = plain(x), padded(x)
    assert torch.allclose(y0, y1, atol=1e-6)
    g0 = torch.autograd.grad(y0.square().sum(), (x, plain.weight, plain.bias))
    g1 = torch.autograd.grad(y1.square().sum(), (x, padded.weight, padded.bias))
    for a, b in zip(g0, g1):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)


def _shapes_twins(env, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, object]:
    """``n`` random Shapes2D observations and their quarter-turn twins rendered by the env (not pixel-rotated)."""
    sym = env.symmetry
    g = (sym.planar.elements()[1], sym.permutations.identity())  # a quarter turn
    obs, twins = [], []
    for i in range(n):
        env.reset(seed=seed + i)
        state = env.get_state()
        obs.append(env.observation_of(state))
        twins.append(env.observation_of(sym.act_on_state(g, state)))
    return torch.from_numpy(np.stack(obs)), torch.from_numpy(np.stack(twins)), g


def test_sen_out_pool_gives_one_value_per_cell_and_a_symmetric_v():
    """``sen_out_pool`` = the cell's side: V is one value per cell, the block mean of the full maps; on the
    top-down 2D Shapes even an untrained plain SEN is then nearly equivariant (a map's shape inside its cell
    no longer matters), several times more than at full resolution."""
    from symwm.world_models.metrics import equivariance_error

    kwargs = {"n_objects": 3, "grid_size": 4, "resolution": 40}  # cells of 10 px, 5 after the SEN's 2x2 pooling
    torch.manual_seed(0)
    fine = build_model(ModelSpec("symwm/Shapes2D-v0", "ours", "cpu", env_kwargs=kwargs), initialize=False).eval()
    coarse = build_model(ModelSpec("symwm/Shapes2D-v0", "ours", "cpu", env_kwargs=kwargs, overrides={"sen_out_pool": 5})).eval()
    coarse.sen.load_state_dict(fine.sen.state_dict())  # the same SEN weights; only the pooling differs
    env = make_env(ModelSpec("symwm/Shapes2D-v0", "ours", "cpu", env_kwargs=kwargs))
    obs, twins, g = _shapes_twins(env, 16, seed=3)
    with torch.no_grad():
        v_fine, v_coarse = fine.embed(obs), coarse.embed(obs)  # [16, 3, 20, 20], [16, 3, 4, 4]
    assert v_fine.shape == (16, 3, 20, 20) and v_coarse.shape == (16, 3, 4, 4)
    torch.testing.assert_close(v_coarse, torch.nn.functional.avg_pool2d(v_fine, 5))
    ee = {name: equivariance_error(m.embed, obs, twins, m.symmetry.act_on_embedding, g) for name, m in
          (("fine", fine), ("coarse", coarse))}
    assert ee["coarse"] < 0.01 and ee["coarse"] < ee["fine"] / 3, ee  # measured 0.004 against 0.016 (what is left: the
    # 3x3 convolutions spill a response 2 pixels into the next cell)
    # the encoder reads the coarse V, and the model stays exactly equivariant where the group acts on V
    assert max(equivariance_errors(coarse, env, "eval")) < TOL


def test_sen_out_pool_must_divide_the_maps():
    spec = ModelSpec("symwm/Shapes2D-v0", "ours", "cpu", overrides={"sen_out_pool": 4})
    with pytest.raises(ValueError, match=r"sen_out_pool=4 must divide the SEN's 25x25 maps \(image 50x50, sen_pool=2\)"):
        build_model(spec, initialize=False)
    with pytest.raises(ValueError, match="sen_out_pool must be a positive integer"):
        build_model(ModelSpec("symwm/Shapes2D-v0", "ours", "cpu", overrides={"sen_out_pool": 0}), initialize=False)
