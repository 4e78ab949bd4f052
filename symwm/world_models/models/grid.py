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

How the planar group acts on each object's map and on the four motions of one object is not
hard-coded: both are permutation representations read off the environment (``transform_grid``
on pixel indices, ``env.symmetry.act_on_action`` on motions), split into orbits, and every orbit
becomes an escnn field (regular, trivial, or a quotient-like permutation representation built
numerically). The same code therefore covers absolute directions (Shapes/Cubes), relative motions
(RushHour), C4 and D4, even and odd image sizes.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from escnn import group as egroup
from escnn import gspaces
from escnn import nn as enn
from torch import nn
from torch.nn import functional as F

from symwm.envs.groups import Dihedral, DihedralElement, Permutation, Symmetric, transform_grid
from symwm.world_models.escnn_bridge import EscnnModule, PlainIO, representation_matrix, to_escnn
from symwm.world_models.representations import permutation_fields
from symwm.world_models.model import LatentSymmetry, ModelSpec, WorldModel

NAME = "grid"
VARIANTS = ("ours", "none", "full")

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
_PAPER_EQ = {"sen_channels": 32, "sen_layers": 3, "sen_pool": 1, "encoder_hidden": 256, "transition_hidden": 256, "latent_fields": 2}
_CPU_EQ = {"sen_channels": 8, "sen_layers": 1, "sen_pool": 2, "encoder_hidden": 64, "transition_hidden": 64, "latent_fields": 2}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "ours": dict(_PAPER_EQ),
        "full": {**_PAPER_EQ, "sen_fields": None},
        "none": {"sen_channels": 32, "sen_layers": 3, "sen_pool": 1, "encoder_hidden": 512, "transition_hidden": 512, "latent_dim": 2},
    },
    "cpu": {
        "ours": dict(_CPU_EQ),
        "full": {**_CPU_EQ, "sen_fields": 2},  # compute-matched, not parameter-matched (note above)
        "none": {"sen_channels": 8, "sen_layers": 1, "sen_pool": 2, "encoder_hidden": 128, "transition_hidden": 128, "latent_dim": 2},
    },
}

N_MOTIONS = 4


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
    """For every escnn element ``h``: ``p[m]`` = the motion that motion ``m`` becomes (``act_on_action``)."""
    ident = symmetry.permutations.identity()
    maps = {}
    for h, s in _symwm_elements(symmetry.planar, G).items():
        maps[h] = np.array([symmetry.act_on_action((s, ident), m) % N_MOTIONS for m in range(N_MOTIONS)])
    return maps


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------


class FieldLayerNorm(nn.Module):
    """LayerNorm over the whole feature vector with one scale and shift per field.

    Mean and variance over all features are invariant under permutation representations, and a
    per-field affine map commutes with permutations inside the field: equivariant for regular fields.
    """

    def __init__(self, n_fields: int, field_size: int, eps: float = 1e-5):
        super().__init__()
        self.n_fields, self.field_size, self.eps = n_fields, field_size, eps
        self.weight = nn.Parameter(torch.ones(n_fields))
        self.bias = nn.Parameter(torch.zeros(n_fields))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x, x.shape[-1:], eps=self.eps)  # [N, n_fields * field_size]
        y = y.unflatten(-1, (self.n_fields, self.field_size))  # [N, n_fields, field_size]
        return (y * self.weight[:, None] + self.bias[:, None]).flatten(-2)


def equivariant_mlp(
    in_type: enn.FieldType, hidden_fields: int, out_type: enn.FieldType, initialize: bool
) -> nn.Sequential:
    """Linear, ReLU, Linear, LayerNorm, ReLU, Linear with equivariant layers on regular hidden fields."""
    gs = in_type.gspace
    G = gs.fibergroup
    hid = enn.FieldType(gs, [G.regular_representation] * hidden_fields)
    return nn.Sequential(
        PlainIO(enn.Linear(in_type, hid, initialize=initialize)),
        nn.ReLU(),  # pointwise on regular fields = equivariant
        PlainIO(enn.Linear(hid, hid, initialize=initialize)),
        FieldLayerNorm(hidden_fields, G.order()),
        nn.ReLU(),
        PlainIO(enn.Linear(hid, out_type, initialize=initialize)),
    )


def plain_mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """C-SWM's MLP: Linear, ReLU, Linear, LayerNorm, ReLU, Linear."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
    )


def export_sequential(seq: nn.Sequential) -> nn.Sequential:
    """A plain-torch copy of ``seq``: parts with ``export()`` exported, the rest deep-copied."""
    parts = [m.export() if hasattr(m, "export") else copy.deepcopy(m) for m in seq]
    return nn.Sequential(*parts).eval()


class ObjectEncoder(EscnnModule):
    """Per-object encoder, weights shared over objects: V ``[B, K, H, W]`` -> Z ``[B, K, D]``.

    ``pixel_order`` reorders each flattened map into the field layout of ``mlp``'s input.
    """

    def __init__(self, mlp: nn.Sequential, pixel_order: torch.Tensor | None = None):
        super().__init__()
        self.mlp = mlp
        self.register_buffer("pixel_order", pixel_order, persistent=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        b, k = v.shape[:2]
        x = v.reshape(b * k, -1)  # [B*K, H*W]
        if self.pixel_order is not None:
            x = x.index_select(1, self.pixel_order)
        return self.mlp(x).view(b, k, -1)  # [B, K, D]

    def export(self) -> "ObjectEncoder":
        """The same encoder with plain-torch layers (eval mode)."""
        self.eval()
        return ObjectEncoder(export_sequential(self.mlp), self.pixel_order).eval()


class GNNTransition(EscnnModule):
    """Fully connected GNN over objects (C-SWM): ``z' = z + node(z_i, a_i, sum_j edge(z_i, z_j))``.

    Raw actions ``a`` in ``[0, 4K)`` (object ``a // 4``, motion ``a % 4``) become one 4-dim one-hot
    per object (zeros for objects not acted on), with motion ``m`` at position ``motion_slot[m]``.
    """

    def __init__(
        self, edge_mlp: nn.Module, node_mlp: nn.Module, n_objects: int, edge_dim: int, motion_slot: torch.Tensor | None = None
    ):
        super().__init__()
        self.edge_mlp, self.node_mlp = edge_mlp, node_mlp
        self.n_objects, self.edge_dim = n_objects, edge_dim
        if motion_slot is None:
            motion_slot = torch.arange(N_MOTIONS)
        self.register_buffer("motion_slot", motion_slot.long(), persistent=False)
        src = [(i, j) for i in range(n_objects) for j in range(n_objects) if i != j]  # grouped by receiver i
        self.register_buffer("receivers", torch.tensor([i for i, _ in src], dtype=torch.long), persistent=False)
        self.register_buffer("senders", torch.tensor([j for _, j in src], dtype=torch.long), persistent=False)

    def encode_actions(self, actions: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Raw actions ``[B]`` -> per-object motion one-hots ``[B, K, 4]``."""
        if actions.dim() == 2 and actions.shape[1] == 1:
            actions = actions[:, 0]
        actions = actions.long()
        b, k = actions.shape[0], self.n_objects
        if ((actions < 0) | (actions >= N_MOTIONS * k)).any():
            raise ValueError(f"actions must lie in [0, {N_MOTIONS * k})")
        flat = (actions // N_MOTIONS) * N_MOTIONS + self.motion_slot[actions % N_MOTIONS]
        onehot = torch.zeros(b, k * N_MOTIONS, dtype=like.dtype, device=like.device)
        onehot[torch.arange(b, device=like.device), flat] = 1.0
        return onehot.view(b, k, N_MOTIONS)

    def forward(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        b, k, d = z.shape
        act = self.encode_actions(actions, z)  # [B, K, 4]
        if k > 1:
            pairs = torch.cat([z[:, self.receivers], z[:, self.senders]], dim=-1)  # [B, K(K-1), 2D]
            agg = self._edge_sum(pairs.reshape(-1, 2 * d)).view(b, k, -1)  # [B, K, hidden]
        else:
            agg = z.new_zeros(b, k, self.edge_dim)  # a single object has no neighbours
        node_in = torch.cat([z, act, agg], dim=-1).reshape(b * k, -1)
        return z + self.node_mlp(node_in).view(b, k, d)

    def _edge_sum(self, pairs: torch.Tensor) -> torch.Tensor:
        """``sum_j edge(z_i, z_j)`` for pairs ``[B*K*(K-1), 2D]`` grouped by receiver -> ``[B*K, hidden]``.

        The edge MLP ends in an affine layer ``f``, and ``sum_j f(h_ij) = f(sum_j h_ij) + (K-2) f(0)``:
        summing before that layer computes the same function with K-1 times fewer rows for it (the
        largest matmul of a grid-world training step after the encoder's first layer).
        """
        *body, last = self.edge_mlp
        h = pairs
        for layer in body:
            h = layer(h)
        k = self.n_objects
        h = h.view(-1, k - 1, h.shape[-1]).sum(1)  # [B*K, hidden']
        out = last(h)
        if k > 2:
            out = out + (k - 2) * last(h.new_zeros(1, h.shape[-1]))  # the bias of the K-2 further terms
        return out

    def export(self) -> "GNNTransition":
        """The same transition with plain-torch layers (eval mode)."""
        self.eval()
        return GNNTransition(
            export_sequential(self.edge_mlp), export_sequential(self.node_mlp), self.n_objects, self.edge_dim, self.motion_slot
        ).eval()


class PaddedInputConv2d(nn.Conv2d):
    """``nn.Conv2d`` that, on CUDA, zero-pads its input channels (and its weight) to ``pad_to``.

    The result is the same function with the same parameters and state-dict keys (the padded weight
    columns are constants), but cuDNN has no fast kernels for 3 input channels: for the grid SEN's
    first layer the padded form makes a paper-size training step 15 % faster on an H200 (measured in
    benchmarks/train_speed.py). On CPU padding costs a few percent, so it is not done there.
    """

    def __init__(self, *args: Any, pad_to: int = 8, force: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pad_to, self.force = pad_to, force

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        extra = self.pad_to - self.in_channels
        if extra > 0 and self.groups == 1 and (x.is_cuda or self.force):
            x = F.pad(x, (0, 0, 0, 0, 0, extra)).contiguous(memory_format=torch.channels_last)  # [B, pad_to, H, W]
            weight = F.pad(weight, (0, 0, 0, 0, 0, extra))  # [out, pad_to, k, k]
        return super()._conv_forward(x, weight, bias)


def block_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """``k x k`` average pooling ``[B, C, H, W] -> [B, C, H/k, W/k]`` as a depthwise strided convolution.

    The same numbers as ``avg_pool2d`` (bit-identical for k=2, measured), but about 10x faster on CPU
    for the channels-last RGB batches the models see (1.6 ms instead of 16 ms for 512 50x50 frames).
    """
    c = x.shape[1]
    weight = x.new_full((c, 1, k, k), 1.0 / (k * k))
    return F.conv2d(x, weight, stride=k, groups=c)


class BlockMean(nn.Module):
    """:func:`block_mean` as a module (stateless, like the ``nn.AvgPool2d`` it replaces)."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return block_mean(x, self.k)


class PlainSEN(nn.Sequential):
    """The SEN of ``ours``/``none``: ``hidden_layers`` x (3x3 conv, BatchNorm, ReLU), 3x3 conv to K maps, sigmoid.

    Runs in channels-last memory layout: about twice as fast on CPU for these thin, full-resolution
    layers (measured); the function computed is unchanged. The first convolution pads its RGB input
    to 8 channels on CUDA (:class:`PaddedInputConv2d`).
    """

    def __init__(self, in_channels: int, n_objects: int, channels: int, hidden_layers: int = 3, pool: int = 1):
        layers: list[nn.Module] = [BlockMean(pool)] if pool > 1 else []
        c = in_channels
        for i in range(hidden_layers):
            conv = PaddedInputConv2d if i == 0 else nn.Conv2d
            layers += [conv(c, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
            c = channels
        layers += [nn.Conv2d(c, n_objects, 3, padding=1), nn.Sigmoid()]
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.contiguous(memory_format=torch.channels_last))  # [B, K, H, W]


class EquivariantSEN(EscnnModule):
    """The SEN of ``full``: the plain SEN's shape built from escnn R2Conv (pixels assumed to rotate)."""

    def __init__(
        self,
        gspace: gspaces.GSpace2D,
        in_channels: int,
        n_objects: int,
        fields: int,
        initialize: bool,
        hidden_layers: int = 3,
        pool: int = 1,
    ):
        super().__init__()
        self.pool = pool  # average pooling of whole pool x pool blocks commutes with the grid's symmetries
        G = gspace.fibergroup
        t = enn.FieldType(gspace, [G.trivial_representation] * in_channels)
        hid = enn.FieldType(gspace, [G.regular_representation] * fields)
        layers: list[enn.EquivariantModule] = []
        for _ in range(hidden_layers):
            layers += [enn.R2Conv(t, hid, 3, padding=1, initialize=initialize), enn.InnerBatchNorm(hid), enn.ReLU(hid)]
            t = hid
        out = enn.FieldType(gspace, [G.trivial_representation] * n_objects)
        layers.append(enn.R2Conv(t, out, 3, padding=1, initialize=initialize))
        self.net = PlainIO(enn.SequentialModule(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool > 1:
            x = block_mean(x, self.pool)
        return torch.sigmoid(self.net(x))  # sigmoid on trivial fields: equivariant; [B, K, H, W]

    def export(self) -> nn.Sequential:
        """Plain-torch convolutions computing the same maps (eval mode)."""
        self.eval()
        pool = [BlockMean(self.pool)] if self.pool > 1 else []
        return nn.Sequential(*pool, self.net.export(), nn.Sigmoid()).eval()


def matching_sen_fields(
    gspace: gspaces.GSpace2D, in_channels: int, n_objects: int, channels: int, hidden_layers: int = 3
) -> int:
    """The number of regular fields that gives :class:`EquivariantSEN` about the plain SEN's parameter count.

    Counts come from escnn itself (one-field 3x3 R2Convs; escnn's band-limited 3x3 basis has 24
    weights per C4 regular pair, 48 per D4 pair, not 9 |G|), so this stays right if escnn changes.
    """
    G = gspace.fibergroup
    triv = enn.FieldType(gspace, [G.trivial_representation])
    reg = enn.FieldType(gspace, [G.regular_representation])

    def weights(a: enn.FieldType, b: enn.FieldType) -> int:
        return enn.R2Conv(a, b, 3, padding=1, initialize=False).weights.numel()

    w_in, w_hid, w_out = weights(triv, reg), weights(reg, reg), weights(reg, triv)

    def count(n: int) -> int:  # convs + one bias per output field + BatchNorm scale/shift per field
        return (
            in_channels * n * w_in + (hidden_layers - 1) * n * n * w_hid + n * n_objects * w_out
            + hidden_layers * n + n_objects + 2 * hidden_layers * n
        )

    target = sum(p.numel() for p in PlainSEN(in_channels, n_objects, channels, hidden_layers).parameters())
    return min(range(1, 4 * channels + 1), key=lambda n: abs(count(n) - target))


# ----------------------------------------------------------------------------------------------
# The group's action on V and Z
# ----------------------------------------------------------------------------------------------


def _permute_objects(perms: Symmetric, perm: Permutation, x: torch.Tensor, dim: int) -> torch.Tensor:
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
        return _permute_objects(self.permutations, perm, transform_grid(planar, v, axes=(-2, -1)), v.dim() - 3)

    def act_on_latent(self, g: Any, z: torch.Tensor) -> torch.Tensor:
        """``[..., K, D]``: regular representation per object, then move object ``i`` to ``perm[i]``."""
        planar, perm = self._split(g)
        if self.latent_matrices is None:
            raise ValueError(
                "this model's latent carries no group action (the non-equivariant 'none' variant); "
                "its SEN outputs do (act_on_embedding)"
            )
        mat = self.latent_matrices[planar].to(z)
        return _permute_objects(self.permutations, perm, z @ mat.T, z.dim() - 2)


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
    if h % pool or w % pool:
        raise ValueError(f"sen_pool={pool} must divide the image size {h}x{w}")
    h, w = h // pool, w // pool  # the SEN's maps: [B, K, h, w]
    sym = env.symmetry
    G = escnn_planar_group(sym.planar)
    gs = gspaces.no_base_space(G)
    if spec.variant == "none":
        d = int(params["latent_dim"])
        symmetry = GridLatentSymmetry(sym, None)
        hid = int(params["encoder_hidden"])
        sen = PlainSEN(c, k, int(params["sen_channels"]), int(params["sen_layers"]), pool)
        encoder = ObjectEncoder(plain_mlp(h * w, hid, d))
        th = int(params["transition_hidden"])
        transition = GNNTransition(plain_mlp(2 * d, th, th), plain_mlp(d + N_MOTIONS + th, th, d), k, th)
        return WorldModel(spec, sen, encoder, transition, symmetry=symmetry, latent_shape=(k, d))

    latent_type = enn.FieldType(gs, [G.regular_representation] * int(params["latent_fields"]))
    d = latent_type.size
    latent_matrices = {s: representation_matrix(latent_type.representation, to_escnn(s, G)) for s in sym.planar.elements()}
    symmetry = GridLatentSymmetry(sym, latent_matrices)
    if spec.variant == "ours":
        sen = PlainSEN(c, k, int(params["sen_channels"]), int(params["sen_layers"]), pool)
    else:
        space = gspaces.flipRot2dOnR2(4) if sym.planar.reflections else gspaces.rot2dOnR2(4)
        fields = params.get("sen_fields") or matching_sen_fields(space, c, k, int(params["sen_channels"]), int(params["sen_layers"]))
        sen = EquivariantSEN(space, c, k, int(fields), initialize, int(params["sen_layers"]), pool)

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
