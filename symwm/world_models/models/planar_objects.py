"""World models for object-factored worlds with symmetry ``C_n x S_K`` or ``D_n x S_K``, any n.

The object-factored twin of the generic :mod:`~symwm.world_models.models.planar` family, for
environments that are not pixel grids with quarter turns (those keep the ``grid`` family). Nothing
here names an environment; what the model needs is read off the contract:

* ``env.symmetry.action_group`` a :class:`~symwm.envs.groups.DirectProduct` of a planar group
  (:class:`~symwm.envs.groups.Dihedral`, C_n or D_n, n >= 2) and the :class:`~symwm.envs.groups.Symmetric`
  group S_K of the K objects;
* ``Discrete(M K)`` actions laid out ``a = M * object + motion``, with ``act_on_action`` moving
  every object's M motions alike under the planar group and moving actions between objects under
  permutations (derived and checked by :func:`~symwm.world_models.representations.object_motion_maps`);
* image observations ``[H, W, C]``.

Networks
    * **SEN** ``S``: a plain CNN (:class:`~symwm.world_models.components.sen.FibreSEN`, stride-2
      convolutions and a linear layer) to ``K`` slots of ``sen_fields`` fibres of ``|G|`` numbers:
      ``V = [B, K, sen_fields * |G|]``. The planar group acts on V by the regular representation on
      every fibre, S_K by moving slot ``i`` to ``perm[i]``; the SEN is not constrained, it learns to
      map images so that this action matches the environment's.
    * **Encoder** ``E``: one escnn equivariant MLP per slot (weights shared), ``V -> Z = [B, K, D]``
      with ``D = latent_fields * |G|``: sharing the weights over slots makes it S_K-equivariant.
    * **Transition** ``T``: the C-SWM graph network over objects with escnn equivariant edge and node
      MLPs; each object's action input is the permutation representation of its M motions (split
      into orbits), residual ``z' = z + T(z, a)``.

Variants: ``ours`` (as above) and ``none`` (the same SEN, plain MLPs: C-SWM on the SEN's slots).
"""

from __future__ import annotations

from typing import Any

import torch
from escnn import gspaces
from escnn import nn as enn
from gymnasium import spaces
from torch import nn

from symwm.envs.groups import Dihedral, DirectProduct, Symmetric
from symwm.world_models.components.encoders import ObjectEncoder
from symwm.world_models.components.mlp import equivariant_mlp, plain_mlp
from symwm.world_models.components.sen import FibreSEN
from symwm.world_models.components.transitions import GNNTransition
from symwm.world_models.escnn_bridge import representation_matrix, to_escnn
from symwm.world_models.families import require_support
from symwm.world_models.model import LatentSymmetry, ModelSpec, WorldModel
from symwm.world_models.models.grid import permute_objects
from symwm.world_models.models.planar import escnn_group
from symwm.world_models.representations import object_motion_maps, permutation_fields

NAME = "planar-objects"
VARIANTS = ("ours", "none")
_CPU = {"sen_channels": 16, "sen_layers": 3, "sen_fields": 4, "hidden_fields": 16, "latent_fields": 2}
_PAPER = {"sen_channels": 32, "sen_layers": 4, "sen_fields": 8, "hidden_fields": 64, "latent_fields": 4}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # none's hidden layers have hidden_fields * sqrt(|G|) plain units: about the parameters of ours' regular fields
    "cpu": {"ours": dict(_CPU), "none": dict(_CPU)},
    "paper": {"ours": dict(_PAPER), "none": dict(_PAPER)},
}


def _factors(env: Any) -> tuple[Dihedral, Symmetric] | str:
    """The planar group and S_K of ``env``'s action group, or why it has no such form."""
    group = getattr(getattr(env, "symmetry", None), "action_group", None)
    factors = getattr(group, "factors", ()) if isinstance(group, DirectProduct) else ()
    if len(factors) != 2 or not isinstance(factors[0], Dihedral) or not isinstance(factors[1], Symmetric):
        return "needs an action group 'planar x S_K' (a DirectProduct of a Dihedral and a Symmetric group)"
    if factors[0].n < 2:
        return f"needs a planar group C_n or D_n with n >= 2, got {factors[0].name}"
    return factors[0], factors[1]


def _motions(env: Any, planar: Dihedral, perms: Symmetric, G: Any) -> dict[Any, Any]:
    elements = {to_escnn(g, G): g for g in planar.elements()}
    return object_motion_maps(env.symmetry.act_on_action, planar, elements, perms, int(env.action_space.n))


def supports(env: Any) -> str | None:
    """``None`` if ``env`` is object-factored under ``planar x S_K`` with ``a = M * object + motion`` actions and images."""
    factors = _factors(env)
    if isinstance(factors, str):
        return factors
    planar, perms = factors
    space = env.action_space
    if not isinstance(space, spaces.Discrete) or int(space.start) != 0:
        return f"needs Discrete actions starting at 0 (a = M * object + motion), got {space}"
    shape = env.observation_space.shape
    if shape is None or len(shape) != 3:
        return f"needs image observations [H, W, C], got shape {shape}"
    try:
        _motions(env, planar, perms, escnn_group(planar))
    except ValueError as exc:
        return str(exc)
    return None


class ObjectFibreSymmetry(LatentSymmetry):
    """``(planar, perm)`` acts on ``[..., K, F]`` by a matrix on every slot, then moves slot ``i`` to ``perm[i]``."""

    def __init__(self, group: DirectProduct, v_mats: dict[Any, torch.Tensor], z_mats: dict[Any, torch.Tensor] | None):
        self.group = group
        self.permutations: Symmetric = group.factors[1]
        self._v, self._z = v_mats, z_mats

    def _act(self, mats: dict[Any, torch.Tensor], g: Any, x: torch.Tensor) -> torch.Tensor:
        if not self.group.contains(g):
            raise ValueError(f"{g!r} is not an element of {self.group.name}")
        planar, perm = g
        return permute_objects(self.permutations, perm, x @ mats[planar].to(x).T, x.dim() - 2)

    def act_on_embedding(self, g: Any, v: torch.Tensor) -> torch.Tensor:
        """``[..., K, F]``: the regular representation on every fibre of every slot, slots permuted."""
        return self._act(self._v, g, v)

    def act_on_latent(self, g: Any, z: torch.Tensor) -> torch.Tensor:
        """``[..., K, D]``: the regular representation on every latent field of every object, objects permuted."""
        if self._z is None:
            raise ValueError("this model's latent carries no group action (the non-equivariant 'none' variant)")
        return self._act(self._z, g, z)


def build(spec: ModelSpec, env: Any, params: dict[str, Any], initialize: bool = True) -> WorldModel:
    """The ``spec.variant`` object-factored planar model for the unwrapped ``env``."""
    require_support(NAME, supports, env, spec.env_id)
    if spec.variant not in VARIANTS:
        raise ValueError(f"unknown variant {spec.variant!r} for the planar-objects family; known: {list(VARIANTS)}")
    planar, perms = _factors(env)
    k = perms.n
    G = escnn_group(planar)
    gs = gspaces.no_base_space(G)
    reg = G.regular_representation
    v_type = enn.FieldType(gs, [reg] * int(params["sen_fields"]))
    z_type = enn.FieldType(gs, [reg] * int(params["latent_fields"]))
    motion_order, motion_reps = permutation_fields(G, _motions(env, planar, perms, G))
    motion_type = enn.FieldType(gs, motion_reps)
    m = motion_type.size
    motion_slot = torch.from_numpy(motion_order).argsort()  # motion j sits at position motion_slot[j]
    h, w, c = env.observation_space.shape
    sen = nn.Sequential(  # [B, C, H, W] -> [B, K * F] -> [B, K, F]
        FibreSEN(c, int(params["sen_channels"]), int(params["sen_layers"]), k * v_type.size, (h, w)), nn.Unflatten(1, (k, v_type.size))
    )
    hidden = int(params["hidden_fields"])
    v_mats = {g: representation_matrix(v_type.representation, to_escnn(g, G)) for g in planar.elements()}
    if spec.variant == "none":
        width, d = int(round(hidden * G.order() ** 0.5)), z_type.size
        encoder = ObjectEncoder(plain_mlp(v_type.size, width, d))
        transition = GNNTransition(plain_mlp(2 * d, width, width), plain_mlp(d + m + width, width, d), k, width, motion_slot, m)
        symmetry = ObjectFibreSymmetry(env.symmetry.action_group, v_mats, None)
    else:
        encoder = ObjectEncoder(equivariant_mlp(v_type, hidden, z_type, initialize))
        hidden_type = enn.FieldType(gs, [reg] * hidden)
        edge_mlp = equivariant_mlp(z_type + z_type, hidden, hidden_type, initialize)
        node_mlp = equivariant_mlp(z_type + motion_type + hidden_type, hidden, z_type, initialize)
        transition = GNNTransition(edge_mlp, node_mlp, k, hidden_type.size, motion_slot, m)
        z_mats = {g: representation_matrix(z_type.representation, to_escnn(g, G)) for g in planar.elements()}
        symmetry = ObjectFibreSymmetry(env.symmetry.action_group, v_mats, z_mats)
    return WorldModel(spec, sen, encoder, transition, symmetry=symmetry, latent_shape=(k, z_type.size))
