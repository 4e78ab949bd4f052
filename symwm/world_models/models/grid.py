"""World models for the object grid worlds (Shapes2D, Cubes3D, RushHour): ``C4 x S_K`` or ``D4 x S_K``.

Three variants (paper-notes.md):

* ``ours``: a plain CNN SEN ``S: [B, 3, H, W] -> V = [B, K, H, W]`` (one map per object), a
  planar-equivariant per-object encoder ``E: V -> Z = [B, K, D]`` and an equivariant fully
  connected GNN transition (C-SWM style). The group acts on V by moving every map with the grid
  and permuting object channels; on Z by the regular representation of the planar group on each
  object's ``D = latent_fields * |G|`` dims and permuting objects.
* ``none``: the same SEN, a plain per-object MLP encoder and the plain C-SWM GNN (no symmetry).
* ``full``: the SEN is an escnn CNN too, i.e. it assumes (wrongly, for Cubes3D) that the group
  rotates pixels; encoder and transition as in ``ours``.
* ``cnn``: not object-factored (the paper's "CNN" baseline of its 2D Shapes table): the same CNN,
  its K maps flattened together into one MLP to a single latent vector ``Z = [B, 1, D]``, and an
  MLP transition on ``[z, one-hot(a)]``. No symmetry.

How the planar group acts on each object's map and on the four motions of one object is not
hard-coded: both are permutation representations read off the environment (``transform_grid``
on pixel indices, ``env.symmetry.act_on_action`` on motions), split into orbits, and every orbit
becomes an escnn field (regular, trivial, or a quotient-like permutation representation built
numerically). The same code therefore covers absolute directions (Shapes/Cubes), relative motions
(RushHour), C4 and D4, even and odd image sizes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from escnn import group as egroup
from escnn import gspaces
from escnn import nn as enn

from symwm.envs.groups import Dihedral, DihedralElement, Permutation, Symmetric, transform_grid
from symwm.world_models.escnn_bridge import representation_matrix, to_escnn
from symwm.world_models.components.encoders import ObjectEncoder, VectorEncoder
from symwm.world_models.components.mlp import equivariant_mlp, plain_mlp
from symwm.world_models.components.sen import EquivariantSEN, PlainSEN, matching_sen_fields
from symwm.world_models.components.transitions import N_MOTIONS, GNNTransition, ResidualTransition
from symwm.world_models.representations import object_motion_maps, permutation_fields
from symwm.world_models.model import LatentSymmetry, ModelSpec, WorldModel

NAME = "grid"
VARIANTS = ("ours", "none", "full", "cnn")

# Hyper-parameters. ``encoder_hidden`` / ``transition_hidden`` count regular fields for ``ours`` and
# ``full`` (|G| units each) and plain units for ``none``. ``latent_fields`` regular fields per object
# give D = latent_fields * |G| for ``ours`` and ``full`` (8 for C4, 16 for D4); ``none`` has ``latent_dim``
# plain units per object, 2 as in the authors' release (C-SWM's; with it the paper-size ``none`` has
# the release's 2,625,577 parameters). ``sen_channels`` is the plain
# SEN's hidden width; the ``full`` SEN uses ``sen_fields`` regular fields, or (None) the count whose
# parameter count is closest to the plain SEN's (:func:`matching_sen_fields`). At equal parameters an
# escnn CNN has sqrt(|G|) times the channels, i.e. about |G| times the work; the SEN at full image
# resolution dominates the cost on CPU, so the ``cpu`` preset of ``full`` fixes 2 regular fields
# (8 channels for C4, like the plain SEN) instead of matching parameters. For the same reason the
# ``cpu`` presets use one hidden SEN layer (``sen_layers``; the paper has 3) on images average-pooled
# 2x2 (``sen_pool``; parameter-free and exactly equivariant for even image sizes): the SEN only has
# to tell the objects apart, the per-orbit weights of the encoder absorb the camera's geometry.
# ``sen_out_pool`` (1 in every preset, the release's V at the SEN's full resolution) averages the
# SEN's maps over blocks: set to the grid cell's side in map pixels (``--set sen_out_pool=5`` for
# 2D Shapes at the ``cpu`` size), V holds one value per cell and object, and a map that is not
# symmetric within its cell no longer breaks the group's action on V (table 3's ``-cells`` block).
_PAPER_EQ = {"sen_channels": 32, "sen_layers": 3, "sen_pool": 1, "sen_out_pool": 1, "encoder_hidden": 256, "transition_hidden": 256, "latent_fields": 2}
_CPU_EQ = {"sen_channels": 8, "sen_layers": 1, "sen_pool": 2, "sen_out_pool": 1, "encoder_hidden": 64, "transition_hidden": 64, "latent_fields": 2}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "ours": dict(_PAPER_EQ),
        "full": {**_PAPER_EQ, "sen_fields": None},
        "none": {"sen_channels": 32, "sen_layers": 3, "sen_pool": 1, "sen_out_pool": 1, "encoder_hidden": 512, "transition_hidden": 512, "latent_dim": 2},
        "cnn": {"sen_channels": 32, "sen_layers": 3, "sen_pool": 1, "sen_out_pool": 1, "encoder_hidden": 512, "transition_hidden": 512, "latent_dim": 32},
    },
    "cpu": {
        "ours": dict(_CPU_EQ),
        "full": {**_CPU_EQ, "sen_fields": 2},  # compute-matched, not parameter-matched (note above)
        "none": {"sen_channels": 8, "sen_layers": 1, "sen_pool": 2, "sen_out_pool": 1, "encoder_hidden": 128, "transition_hidden": 128, "latent_dim": 2},
        # one latent vector for the whole scene (the paper gives no size; 'ours' has 8 per object)
        "cnn": {"sen_channels": 8, "sen_layers": 1, "sen_pool": 2, "sen_out_pool": 1, "encoder_hidden": 128, "transition_hidden": 128, "latent_dim": 32},
    },
}


# ----------------------------------------------------------------------------------------------
# Group plumbing: planar elements <-> escnn, permutation representations from point maps
# ----------------------------------------------------------------------------------------------


def escnn_planar_group(planar: Dihedral) -> egroup.Group:
    """escnn's C4 or D4 for the environment's planar group."""
    if planar.n != 4:
        raise ValueError(f"grid models need quarter-turn symmetry, got {planar.name}")
    return egroup.dihedral_group(4) if planar.reflections else egroup.cyclic_group(4)


def _symwm_elements(planar: Dihedral, G: egroup.Group) -> dict[Any, DihedralElement]:
    """escnn element -> the symwm planar element that acts like it."""
    out = {to_escnn(s, G): s for s in planar.elements()}
    if len(out) != G.order():
        raise ValueError(f"{planar.name} does not map onto {G}")
    return out


def pixel_maps(planar: Dihedral, G: egroup.Group, height: int, width: int) -> dict[Any, np.ndarray]:
    """For every escnn element ``h``: ``p[i]`` = flat index where pixel ``i`` lands under ``transform_grid``."""
    if height != width:
        raise ValueError(f"quarter turns need square maps, got {height}x{width}")
    idx = np.arange(height * width).reshape(height, width)
    maps = {}
    for h, s in _symwm_elements(planar, G).items():
        moved = np.ascontiguousarray(transform_grid(s, idx)).ravel()  # moved[q] = pixel now at q
        p = np.empty_like(moved)
        p[moved] = np.arange(moved.size)
        maps[h] = p
    return maps


def motion_maps(symmetry: Any, G: egroup.Group) -> dict[Any, np.ndarray]:
    """For every escnn element ``h``: ``p[m]`` = the motion that motion ``m`` becomes (``act_on_action``, checked)."""
    perms = symmetry.permutations
    elements = _symwm_elements(symmetry.planar, G)
    return object_motion_maps(symmetry.act_on_action, symmetry.planar, elements, perms, N_MOTIONS * perms.n)


# ----------------------------------------------------------------------------------------------
# The group's action on V and Z
# ----------------------------------------------------------------------------------------------


def permute_objects(perms: Symmetric, perm: Permutation, x: torch.Tensor, dim: int) -> torch.Tensor:
    """Move entry ``i`` along ``dim`` to slot ``perm[i]`` (``Symmetric.permute`` on tensors)."""
    inv = torch.tensor(perms.inverse(perm).perm, dtype=torch.long, device=x.device)
    return x.index_select(dim, inv)


class GridLatentSymmetry(LatentSymmetry):
    """``(planar, perm)`` acts on V by moving maps and permuting object channels, on Z by regular reps."""

    def __init__(self, env_symmetry: Any, latent_matrices: dict[DihedralElement, torch.Tensor] | None):
        self.group = env_symmetry.group
        self.planar: Dihedral = env_symmetry.planar
        self.permutations: Symmetric = env_symmetry.permutations
        self.latent_matrices = latent_matrices  # planar element -> [D, D]; None: the group does not act on Z

    def _split(self, g: Any) -> tuple[DihedralElement, Permutation]:
        if not self.group.contains(g):
            raise ValueError(f"{g!r} is not an element of {self.group.name}")
        return g

    def act_on_embedding(self, g: Any, v: torch.Tensor) -> torch.Tensor:
        """``[..., K, H, W]``: transform every map with the grid, then move object ``i`` to ``perm[i]``."""
        planar, perm = self._split(g)
        return permute_objects(self.permutations, perm, transform_grid(planar, v, axes=(-2, -1)), v.dim() - 3)

    def act_on_latent(self, g: Any, z: torch.Tensor) -> torch.Tensor:
        """``[..., K, D]``: regular representation per object, then move object ``i`` to ``perm[i]``."""
        planar, perm = self._split(g)
        if self.latent_matrices is None:
            raise ValueError(
                "this model's latent carries no group action (the non-equivariant 'none' variant); "
                "its SEN outputs do (act_on_embedding)"
            )
        mat = self.latent_matrices[planar].to(z)
        return permute_objects(self.permutations, perm, z @ mat.T, z.dim() - 2)


# ----------------------------------------------------------------------------------------------
# build
# ----------------------------------------------------------------------------------------------


def supports(env: Any) -> str | None:
    """``None`` if ``env`` is an object grid world this family models, else why not (from its contract).

    Needed: a symmetry ``planar x permutations`` (``.planar`` a quarter-turn :class:`Dihedral`,
    ``.permutations`` the :class:`Symmetric` group of the env's ``n_objects``), ``Discrete(4 K)``
    actions (object ``a // 4``, motion ``a % 4``) and square ``[H, W, C]`` images.
    """
    from gymnasium import spaces

    sym = getattr(env, "symmetry", None)
    planar, perms = getattr(sym, "planar", None), getattr(sym, "permutations", None)
    if not isinstance(planar, Dihedral) or not isinstance(perms, Symmetric):
        return "needs a symmetry 'planar x object permutations' (symmetry.planar a Dihedral, symmetry.permutations a Symmetric)"
    if planar.n != 4:
        return f"needs quarter-turn symmetry (C4 or D4), got {planar.name}"
    k = getattr(env, "n_objects", None)
    if k != perms.n:
        return f"needs env.n_objects equal to the {perms.n} permuted objects, got {k!r}"
    space = env.action_space
    if not isinstance(space, spaces.Discrete) or int(space.n) != N_MOTIONS * k or int(space.start) != 0:
        return f"needs Discrete({N_MOTIONS * k}) actions (object a // {N_MOTIONS}, motion a % {N_MOTIONS}), got {space}"
    shape = env.observation_space.shape
    if shape is None or len(shape) != 3 or shape[0] != shape[1]:
        return f"needs square image observations [H, W, C], got shape {shape}"
    return None



def build(spec: ModelSpec, env: Any, params: dict[str, Any], initialize: bool = True) -> WorldModel:
    """Build the ``spec.variant`` grid-world model for the unwrapped ``env`` with hyper-parameters ``params``."""
    if spec.variant not in VARIANTS:
        raise ValueError(f"unknown variant {spec.variant!r}; known: {list(VARIANTS)}")
    k = int(env.n_objects)
    h, w, c = env.observation_space.shape
    pool = int(params["sen_pool"])
    for name in ("sen_pool", "sen_out_pool"):
        if int(params.get(name, 1)) < 1:
            raise ValueError(f"{name} must be a positive integer (a block side), got {params[name]!r}")
    if h % pool or w % pool:
        raise ValueError(f"sen_pool={pool} must divide the image size {h}x{w}")
    out_pool = int(params.get("sen_out_pool", 1))  # absent from checkpoints made before it existed
    if (h // pool) % out_pool or (w // pool) % out_pool:
        raise ValueError(f"sen_out_pool={out_pool} must divide the SEN's {h // pool}x{w // pool} maps (image {h}x{w}, sen_pool={pool})")
    h, w = h // pool // out_pool, w // pool // out_pool  # the SEN's maps: [B, K, h, w]
    sym = env.symmetry
    G = escnn_planar_group(sym.planar)
    gs = gspaces.no_base_space(G)
    if spec.variant == "none":
        d = int(params["latent_dim"])
        symmetry = GridLatentSymmetry(sym, None)
        hid = int(params["encoder_hidden"])
        sen = PlainSEN(c, k, int(params["sen_channels"]), int(params["sen_layers"]), pool, out_pool)
        encoder = ObjectEncoder(plain_mlp(h * w, hid, d))
        th = int(params["transition_hidden"])
        transition = GNNTransition(plain_mlp(2 * d, th, th), plain_mlp(d + N_MOTIONS + th, th, d), k, th)
        return WorldModel(spec, sen, encoder, transition, symmetry=symmetry, latent_shape=(k, d))
    if spec.variant == "cnn":
        d, hid, th = int(params["latent_dim"]), int(params["encoder_hidden"]), int(params["transition_hidden"])
        sen = PlainSEN(c, k, int(params["sen_channels"]), int(params["sen_layers"]), pool, out_pool)
        encoder = VectorEncoder(nn.Sequential(nn.Flatten(), *plain_mlp(k * h * w, hid, d)))  # [B, K, h, w] -> [B, K h w] -> [B, 1, D]
        n_actions = N_MOTIONS * k
        transition = ResidualTransition(plain_mlp(d + n_actions, th, d), n_actions, torch.arange(n_actions))
        return WorldModel(spec, sen, encoder, transition, symmetry=GridLatentSymmetry(sym, None), latent_shape=(1, d))

    latent_type = enn.FieldType(gs, [G.regular_representation] * int(params["latent_fields"]))
    d = latent_type.size
    latent_matrices = {s: representation_matrix(latent_type.representation, to_escnn(s, G)) for s in sym.planar.elements()}
    symmetry = GridLatentSymmetry(sym, latent_matrices)
    if spec.variant == "ours":
        sen = PlainSEN(c, k, int(params["sen_channels"]), int(params["sen_layers"]), pool, out_pool)
    else:
        space = gspaces.flipRot2dOnR2(4) if sym.planar.reflections else gspaces.rot2dOnR2(4)
        fields = params.get("sen_fields") or matching_sen_fields(space, c, k, int(params["sen_channels"]), int(params["sen_layers"]))
        sen = EquivariantSEN(space, c, k, int(fields), initialize, int(params["sen_layers"]), pool, out_pool)

    pixel_order, pixel_reps = permutation_fields(G, pixel_maps(sym.planar, G, h, w))
    in_type = enn.FieldType(gs, pixel_reps)
    encoder = ObjectEncoder(
        equivariant_mlp(in_type, int(params["encoder_hidden"]), latent_type, initialize), torch.from_numpy(pixel_order)
    )

    motion_order, motion_reps = permutation_fields(G, motion_maps(sym, G))
    motion_slot = torch.from_numpy(np.argsort(motion_order))  # motion m sits at position motion_slot[m]
    action_type = enn.FieldType(gs, motion_reps)
    th = int(params["transition_hidden"])
    hidden_type = enn.FieldType(gs, [G.regular_representation] * th)
    edge_mlp = equivariant_mlp(latent_type + latent_type, th, hidden_type, initialize)
    node_mlp = equivariant_mlp(latent_type + action_type + hidden_type, th, latent_type, initialize)
    transition = GNNTransition(edge_mlp, node_mlp, k, hidden_type.size, motion_slot)
    return WorldModel(spec, sen, encoder, transition, symmetry=symmetry, latent_shape=(k, d))
