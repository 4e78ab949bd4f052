"""World models for any environment with a planar symmetry group C_n or D_n acting on its actions.

The generic family of the "bring your own environment" path: nothing here names an environment.
What the model needs is read off the environment's contract (``env.symmetry.action_group`` a
:class:`~symwm.envs.groups.Dihedral`, ``act_on_action``):

* **SEN** ``S``: a plain CNN (stride-2 3x3 convolutions, BatchNorm, ReLU) and a linear layer on
  its last feature map to ``sen_fields`` fibres of ``|G|`` numbers: ``V = [B, sen_fields * |G|]``. The
  group acts on V by the regular representation on every fibre (it cyclically shifts, and for D_n
  also reflects, each fibre). The SEN is not constrained: it learns to map images so that this
  action matches the environment's.
* **Encoder** ``E``: an escnn equivariant MLP from V to ``latent_fields`` regular fields.
* **Transition** ``T``: an escnn equivariant MLP on ``[z, a]`` to a residual, where the action ``a``
  carries the representation derived from the environment: for ``Discrete`` actions the
  permutation representation ``act_on_action`` induces (one-hot actions, split into orbits), for
  ``Box`` actions the linear representation recovered from ``act_on_action`` on the basis
  (checked linear and orthogonal).

Variants: ``ours`` (as above) and ``none`` (the same SEN, plain MLPs). The fibre form of V makes
equivariance exact for every n (a rotation by 2 pi / n of a pixel grid is not a pixel permutation
unless n divides 4); latents are ``[B, 1, latent_fields * |G|]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from escnn import group as egroup
from escnn import gspaces
from escnn import nn as enn
from gymnasium import spaces

from symwm.envs.groups import Dihedral
from symwm.world_models.escnn_bridge import representation_matrix, to_escnn
from symwm.world_models.families import require_support
from symwm.world_models.model import LatentSymmetry, ModelSpec, WorldModel
from symwm.world_models.components.encoders import VectorEncoder
from symwm.world_models.components.mlp import equivariant_mlp, plain_mlp
from symwm.world_models.components.sen import FibreSEN
from symwm.world_models.components.transitions import ResidualTransition
from symwm.world_models.representations import discrete_action_maps, linear_action_representation, permutation_fields

NAME = "planar"
VARIANTS = ("ours", "none")
_CPU = {"sen_channels": 16, "sen_layers": 3, "sen_fields": 8, "hidden_fields": 16, "latent_fields": 2}
_PAPER = {"sen_channels": 32, "sen_layers": 4, "sen_fields": 16, "hidden_fields": 64, "latent_fields": 4}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # none's hidden layers have hidden_fields * sqrt(|G|) plain units: about the parameters of ours' regular fields
    "cpu": {"ours": dict(_CPU), "none": dict(_CPU)},
    "paper": {"ours": dict(_PAPER), "none": dict(_PAPER)},
}


def supports(env: Any) -> str | None:
    """``None`` if ``env``'s action group is C_n or D_n (n >= 2) acting on Discrete or Box actions and it emits images."""
    group = getattr(getattr(env, "symmetry", None), "action_group", None)
    if not isinstance(group, Dihedral) or group.n < 2:
        return "needs a planar group C_n or D_n (symmetry.action_group a Dihedral) acting on actions"
    if not isinstance(env.action_space, (spaces.Discrete, spaces.Box)) or (
        isinstance(env.action_space, spaces.Box) and len(env.action_space.shape) != 1
    ):
        return f"needs Discrete or 1-d Box actions, got {env.action_space}"
    shape = env.observation_space.shape
    if shape is None or len(shape) != 3:
        return f"needs image observations [H, W, C], got shape {shape}"
    return None


def escnn_group(planar: Dihedral) -> egroup.Group:
    """escnn's C_n or D_n for the environment's planar group."""
    return egroup.dihedral_group(planar.n) if planar.reflections else egroup.cyclic_group(planar.n)


def action_type(env: Any, gs: gspaces.GSpace) -> tuple[enn.FieldType, torch.Tensor | None]:
    """The field type of the transition's action input and, for Discrete actions, the one-hot slot of each action."""
    sym, space, G = env.symmetry, env.action_space, gs.fibergroup
    elements = {to_escnn(g, G): g for g in sym.action_group.elements()}
    if isinstance(space, spaces.Discrete):
        order, reps = permutation_fields(G, discrete_action_maps(sym.act_on_action, elements, int(space.n)))
        return enn.FieldType(gs, reps), torch.from_numpy(np.argsort(order))
    dim = int(space.shape[0])
    scale = float(np.min(np.minimum(np.abs(space.low), np.abs(space.high))))
    rep = linear_action_representation(sym.act_on_action, elements, dim, G, scale=scale if scale > 0 else 1.0)
    return enn.FieldType(gs, [rep]), None


class PlanarLatentSymmetry(LatentSymmetry):
    """The planar group acts on V and on Z by matrices (regular fibres), elements given as the env's."""

    def __init__(self, group: Dihedral, v_mats: dict[Any, torch.Tensor], z_mats: dict[Any, torch.Tensor] | None):
        self.group = group
        self._v, self._z = v_mats, z_mats

    def _mat(self, mats: dict[Any, torch.Tensor], g: Any) -> torch.Tensor:
        if not self.group.contains(g):
            raise ValueError(f"{g!r} is not an element of {self.group.name}")
        return mats[g]

    def act_on_embedding(self, g: Any, v: torch.Tensor) -> torch.Tensor:
        """``[..., V]``: the regular representation on every fibre."""
        return v @ self._mat(self._v, g).to(v).T

    def act_on_latent(self, g: Any, z: torch.Tensor) -> torch.Tensor:
        """``[..., D]``: the regular representation on every latent field."""
        if self._z is None:
            raise ValueError("this model's latent carries no group action (the non-equivariant 'none' variant)")
        return z @ self._mat(self._z, g).to(z).T


def build(spec: ModelSpec, env: Any, params: dict[str, Any], initialize: bool = True) -> WorldModel:
    """The ``spec.variant`` planar model for the unwrapped ``env``."""
    require_support(NAME, supports, env, spec.env_id)
    planar: Dihedral = env.symmetry.action_group
    G = escnn_group(planar)
    gs = gspaces.no_base_space(G)
    reg = G.regular_representation
    v_type = enn.FieldType(gs, [reg] * int(params["sen_fields"]))
    z_type = enn.FieldType(gs, [reg] * int(params["latent_fields"]))
    a_type, slots = action_type(env, gs)
    h, w, c = env.observation_space.shape
    sen = FibreSEN(c, int(params["sen_channels"]), int(params["sen_layers"]), v_type.size, (h, w))
    hidden = int(params["hidden_fields"])
    n_actions = int(env.action_space.n) if isinstance(env.action_space, spaces.Discrete) else None
    v_mats = {g: representation_matrix(v_type.representation, to_escnn(g, G)) for g in planar.elements()}
    if spec.variant == "none":
        width = int(round(hidden * G.order() ** 0.5))
        encoder = VectorEncoder(plain_mlp(v_type.size, width, z_type.size))
        transition = ResidualTransition(plain_mlp(z_type.size + a_type.size, width, z_type.size), n_actions, slots)
        symmetry = PlanarLatentSymmetry(planar, v_mats, None)
    elif spec.variant == "ours":
        encoder = VectorEncoder(equivariant_mlp(v_type, hidden, z_type, initialize))
        transition = ResidualTransition(equivariant_mlp(z_type + a_type, hidden, z_type, initialize), n_actions, slots)
        z_mats = {g: representation_matrix(z_type.representation, to_escnn(g, G)) for g in planar.elements()}
        symmetry = PlanarLatentSymmetry(planar, v_mats, z_mats)
    else:
        raise ValueError(f"unknown variant {spec.variant!r} for the planar family; known: {list(VARIANTS)}")
    return WorldModel(spec, sen, encoder, transition, symmetry=symmetry, latent_shape=(1, z_type.size))
