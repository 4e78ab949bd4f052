"""An emulation of the authors' released training step (github jypark0/sen), for speed comparisons only.

The release pins torch 1.9 and e2cnn and does not install today, so this module rebuilds its way of
computing, written from a description of the release (no code taken from it), at the widths of OUR
presets (``symwm.world_models.build.preset``), so that the same architecture is timed two ways:

Grid worlds (the release's 3D Blocks models)
    * SEN (``ours``/``none``): plain CNN, 3x3 conv + BatchNorm + ReLU hidden layers, 3x3 conv to one
      map per object, sigmoid; default NCHW layout; called separately on ``obs`` and ``next_obs``.
    * SEN (``full``): the same stack from escnn ``R2Conv`` (C4 regular fields, InnerBatchNorm, ReLU,
      trivial output fields, pointwise sigmoid), run un-exported.
    * encoder (``ours``/``full``): each object's map -> the 4 rotations of its top-left quadrant,
      written into a zeros tensor ``[B, K, orbits, 4]`` by a Python loop over ``rot90``, permuted to
      ``[B, K, 4, orbits]``; then C4 "Conv" linear layers whose ``[4, 4, out, in]`` weight is rebuilt
      on every call by stacking 4 rolled copies of a ``[4, out, in]`` parameter and applied with an
      einsum; hidden 256, ``LayerNorm(hidden)`` over the last dim (per rotation copy).
    * transition (``ours``/``full``): C-SWM GNN from the same C4 layers: edge list from ``nonzero``
      (cached per batch size), per-edge 3-layer edge MLP on ``[z_i, z_j]``, segment sum with
      ``scatter_add_`` into zeros, node MLP on ``[z_i, one-hot action (one regular channel), agg]``,
      returns the residual.
    * ``none``: the C-SWM per-object MLP encoder and GNN (``nn.Linear``, 512 hidden).

Reacher
    * SEN: the plain dilated CNN of our preset, NCHW, called separately on ``obs`` and ``next_obs``
      (``full``: the same from escnn ``R2Conv``, un-exported).
    * encoder (``ours``/``full``): our D4 encoder's layers from escnn ``R2Conv`` / ``InnerBatchNorm`` /
      pointwise pooling, un-exported, ``GeometricTensor`` in and out (e2cnn's API, which escnn keeps).
    * transition (``ours``/``full``): three 1x1 ``R2Conv`` on ``[B, C, 1, 1]`` maps; the torques enter
      as ``[a, -a]`` in D4's quotient representation by the rotations, joined with ``tensor_directsum``.
    * ``none``: plain convolutions and an MLP, as ours.

The loss is the release's: ``energy = 0.5 / sigma^2 * sum (x - y)^2`` (mean over objects first when
the transition has objects), positive term on ``z + T(z, a)`` against ``z'``, one negative by a
random permutation of the batch, hinge 1; Adam; ``optimizer.zero_grad()`` zero-filling (torch 1.9's
default); ``loss.item()`` and the latent norm read every step (the release logs both).

Differences from our models, forced by the release's layer types (parameter counts differ by these):
the C4 encoder's centre pixel (odd map sizes only) is a 4-copy regular channel there, a trivial field
here; the Reacher torques use a 2-dim quotient representation there, a 1-dim irrep here; the C4
``LayerNorm`` normalises each rotation copy there, the whole vector here (same parameter count).
The rotating object was not released: :func:`has_authors_model` is False for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from escnn import gspaces
from escnn import nn as enn
from torch import nn
from torch.nn import functional as F

from symwm.world_models.build import domain_of, make_env, preset
from symwm.world_models.model import ModelSpec

#: families the authors released models for
RELEASED = ("grid", "reacher")


def has_authors_model(spec: ModelSpec) -> bool:
    """Whether the release had this family (the rotating object was never released)."""
    return domain_of(spec.env_id) in RELEASED


def preprocess_nchw(obs: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, H, W, C]`` -> contiguous float ``[B, C, H, W]`` in [0, 1] (the release's NCHW input)."""
    return obs.permute(0, 3, 1, 2).contiguous().float().div_(255.0)


# ------------------------------------------------------------------------------------------------
# Grid worlds
# ------------------------------------------------------------------------------------------------


class RebuiltC4Linear(nn.Module):
    """C4-equivariant linear map on ``[..., 4, in]`` whose ``[4, 4, out, in]`` weight is rebuilt every call."""

    def __init__(self, size_in: int, size_out: int):
        super().__init__()
        bound = 1.0 / float(np.sqrt(size_in))
        self.weights = nn.Parameter((torch.rand(4, size_out, size_in) - 0.5) * bound)  # [4, out, in]
        self.bias = nn.Parameter(torch.zeros(size_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mat = torch.stack([torch.roll(self.weights, i, dims=0) for i in range(4)], dim=0)  # [4, 4, out, in]
        return torch.einsum("ghij,...hj->...gi", mat, x) + self.bias  # [..., 4, in] -> [..., 4, out]


class PlainGridSEN(nn.Module):
    """Plain CNN SEN in NCHW: (avg pool), hidden 3x3 conv + BN + ReLU layers, 3x3 conv to K maps, sigmoid."""

    def __init__(self, in_channels: int, n_objects: int, channels: int, hidden_layers: int, pool: int):
        super().__init__()
        layers: list[nn.Module] = [nn.AvgPool2d(pool)] if pool > 1 else []
        c = in_channels
        for _ in range(hidden_layers):
            layers += [nn.Conv2d(c, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
            c = channels
        layers += [nn.Conv2d(c, n_objects, 3, padding=1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # [B, K, H, W]


class EscnnGridSEN(nn.Module):
    """``full``'s SEN from escnn R2Conv on C4 (or D4) regular fields, un-exported, pointwise sigmoid."""

    def __init__(self, gspace: Any, in_channels: int, n_objects: int, fields: int, hidden_layers: int, pool: int, initialize: bool):
        super().__init__()
        self.pool = pool
        G = gspace.fibergroup
        t = enn.FieldType(gspace, [G.trivial_representation] * in_channels)
        self.in_type = t
        hid = enn.FieldType(gspace, [G.regular_representation] * fields)
        layers: list[enn.EquivariantModule] = []
        for _ in range(hidden_layers):
            layers += [enn.R2Conv(t, hid, 3, padding=1, initialize=initialize), enn.InnerBatchNorm(hid), enn.ReLU(hid)]
            t = hid
        out = enn.FieldType(gspace, [G.trivial_representation] * n_objects)
        layers += [enn.R2Conv(t, out, 3, padding=1, initialize=initialize), enn.PointwiseNonLinearity(out, "p_sigmoid")]
        self.net = enn.SequentialModule(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)
        return self.net(enn.GeometricTensor(x, self.in_type)).tensor  # [B, K, H, W]


def n_orbits(size: int) -> int:
    """Number of C4 orbits of pixels of a ``size x size`` map in the release's layout."""
    c = size // 2
    return c * c if size % 2 == 0 else 1 + c + c * c


class C4OrbitEncoder(nn.Module):
    """Per-object maps ``[B, K, H, H]`` -> orbit stack ``[B, K, 4, orbits]`` -> 3 rebuilt C4 layers -> ``[B, K, 4, F]``."""

    def __init__(self, size: int, hidden: int, latent_fields: int):
        super().__init__()
        self.fc1 = RebuiltC4Linear(n_orbits(size), hidden)
        self.fc2 = RebuiltC4Linear(hidden, hidden)
        self.fc3 = RebuiltC4Linear(hidden, latent_fields)
        self.ln = nn.LayerNorm(hidden)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc1(self.orbit_stack(v)))  # [B, K, 4, hidden]
        h = F.relu(self.ln(self.fc2(h)))
        return self.fc3(h)  # [B, K, 4, F]

    def orbit_stack(self, x: torch.Tensor) -> torch.Tensor:
        """The 4 rotations of the top-left quadrant (and the centre, odd sizes), looped into a zeros tensor."""
        b, k, size = x.shape[0], x.shape[1], x.shape[-1]
        c = size // 2
        out = torch.zeros(b, k, n_orbits(size), 4, device=self.fc1.weights.device, dtype=x.dtype)
        if size % 2:
            out[:, :, 0, :] = x[:, :, c, c].unsqueeze(2).expand(-1, -1, 4)
            for i in range(4):
                out[:, :, 1:, i] = torch.rot90(x, i, (-2, -1))[:, :, :c, : c + 1].reshape(b, k, -1)
        else:
            for i in range(4):
                out[:, :, :, i] = torch.rot90(x, i, (-2, -1))[:, :, :c, :c].reshape(b, k, -1)
        return out.permute(0, 1, 3, 2)  # [B, K, 4, orbits]


class MLPObjectEncoder(nn.Module):
    """C-SWM per-object MLP: ``[B, K, H, W]`` -> ``[B, K, D]`` (Linear, ReLU, Linear, LayerNorm, ReLU, Linear)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
        )

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.net(v.flatten(2))


def one_hot(indices: torch.Tensor, n: int) -> torch.Tensor:
    """float32 one-hot ``[B, n]`` by scatter into zeros."""
    zeros = torch.zeros(indices.shape[0], n, dtype=torch.float32, device=indices.device)
    return zeros.scatter_(1, indices.long().unsqueeze(1), 1)


def segment_sum(x: torch.Tensor, segment_ids: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Sum rows of ``x`` ``[E, ...]`` into ``n_segments`` rows by id (scatter_add into zeros)."""
    shape = x.shape
    flat = x.reshape(shape[0], -1)
    out = torch.zeros(n_segments, flat.shape[1]).type_as(flat)
    out.scatter_add_(0, segment_ids.unsqueeze(-1).expand(-1, flat.shape[1]), flat)
    return out.view(n_segments, *shape[1:])


class _EdgeList(nn.Module):
    """Fully connected edge list over ``K`` objects for a batch, rebuilt when the batch size changes."""

    def __init__(self) -> None:
        super().__init__()
        self.edge_list: torch.Tensor | None = None
        self.batch_size = 0

    def edges(self, b: int, k: int, device: torch.device) -> torch.Tensor:
        if self.edge_list is None or self.batch_size != b or self.edge_list.device != device:
            self.batch_size = b
            pairs = (torch.ones(k, k, device=device) - torch.eye(k, device=device)).nonzero()  # [K(K-1), 2]
            pairs = pairs.repeat(b, 1)
            offset = torch.arange(0, b * k, k, device=device).repeat_interleave(k * (k - 1))
            self.edge_list = (pairs + offset.unsqueeze(-1)).t()  # [2, B K (K-1)]
        return self.edge_list


class C4GNN(_EdgeList):
    """C-SWM GNN from rebuilt C4 layers on ``[B, K, 4, F]`` latents; returns the residual ``[B, K, 4, F]``."""

    def __init__(self, latent_fields: int, n_objects: int, hidden: int):
        super().__init__()
        self.n_objects, self.latent_fields = n_objects, latent_fields
        self.edge_mlp = nn.Sequential(
            RebuiltC4Linear(2 * latent_fields, hidden), nn.ReLU(), RebuiltC4Linear(hidden, hidden),
            nn.LayerNorm(hidden), nn.ReLU(), RebuiltC4Linear(hidden, hidden),
        )
        self.node_mlp = nn.Sequential(
            RebuiltC4Linear(hidden + latent_fields + 1, hidden), nn.ReLU(), RebuiltC4Linear(hidden, hidden),
            nn.LayerNorm(hidden), nn.ReLU(), RebuiltC4Linear(hidden, latent_fields),
        )

    def forward(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        b, k = z.shape[:2]
        nodes = z.reshape(-1, 4, self.latent_fields).contiguous()  # [B K, 4, F]
        row, col = self.edges(b, k, z.device)
        edge_attr = self.edge_mlp(torch.cat([nodes[row], nodes[col]], dim=2))  # [E, 4, hidden]
        act = one_hot(actions, 4 * k).view(-1, 4)  # [B K, 4]
        nodes = torch.cat([nodes, act.unsqueeze(2)], dim=-1)  # [B K, 4, F + 1]
        agg = segment_sum(edge_attr, row, nodes.shape[0])
        out = self.node_mlp(torch.cat([nodes, agg], dim=2))
        return out.view(b, k, 4, -1)


class PlainGNN(_EdgeList):
    """C-SWM GNN from ``nn.Linear`` on ``[B, K, D]`` latents; returns the residual."""

    def __init__(self, latent_dim: int, n_objects: int, hidden: int, action_dim: int = 4):
        super().__init__()
        self.latent_dim, self.action_dim = latent_dim, action_dim

        def mlp(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(i, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, o))

        self.edge_mlp = mlp(2 * latent_dim, hidden)
        self.node_mlp = mlp(hidden + latent_dim + action_dim, latent_dim)

    def forward(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        b, k = z.shape[:2]
        nodes = z.reshape(-1, self.latent_dim)
        row, col = self.edges(b, k, z.device)
        edge_attr = self.edge_mlp(torch.cat([nodes[row], nodes[col]], dim=1))
        act = one_hot(actions, self.action_dim * k).view(-1, self.action_dim)
        nodes = torch.cat([nodes, act], dim=-1)
        agg = segment_sum(edge_attr, row, nodes.shape[0])
        return self.node_mlp(torch.cat([nodes, agg], dim=1)).view(b, k, -1)


# ------------------------------------------------------------------------------------------------
# Reacher
# ------------------------------------------------------------------------------------------------


class PlainReacherSEN(nn.Module):
    """The release's ``ReacherEmbedding`` (NCHW): a stride-2 3x3 conv, dilated 3x3 convs, a 3x3 conv to 8 maps
    with stride 2 at 128x128 (BN + ReLU after every hidden conv). ``strided=False``: our older pooled
    form (average pool to 32x32, the dilations, a 1x1 conv), kept for presets that ask for it."""

    def __init__(self, factor: int, in_channels: int, channels: int, dilations: tuple[int, ...], out_channels: int = 8,
                 strided: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        if strided:  # factor 4: 128 -> 64 -> (dilated) -> 32; factor 2: 64 -> 32 -> (dilated) -> 32
            first, last = {1: (1, 1), 2: (2, 1), 4: (2, 2)}[factor]
            layers += [nn.Conv2d(c, channels, 3, stride=first, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
            c = channels
        elif factor > 1:
            layers.append(nn.AvgPool2d(factor))
        for d in dilations:
            layers += [nn.Conv2d(c, channels, 3, padding=d, dilation=d), nn.BatchNorm2d(channels), nn.ReLU()]
            c = channels
        layers.append(nn.Conv2d(c, out_channels, 3, stride=last, padding=1) if strided else nn.Conv2d(c, out_channels, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # [B, 8, 32, 32]


def _dilated_basis(d: int) -> dict[str, Any]:
    """Basis arguments giving a dilated 3x3 R2Conv the undilated 3x3 basis (as our preset does)."""
    return {"rings": [0.0, float(d)], "sigma": [0.005 * d, 0.4 * d], "frequencies_cutoff": lambda r: 0.0 if r == 0.0 else 2.0}


class EscnnReacherSEN(nn.Module):
    """``full``'s Reacher SEN from D4 R2Conv (trivial in, regular hidden, trivial out), un-exported."""

    def __init__(self, factor: int, in_channels: int, fields: int, dilations: tuple[int, ...], initialize: bool):
        super().__init__()
        self.factor = factor
        gs = gspaces.flipRot2dOnR2(4)
        t = self.in_type = enn.FieldType(gs, [gs.trivial_repr] * in_channels)
        hid = enn.FieldType(gs, [gs.regular_repr] * fields)
        layers: list[enn.EquivariantModule] = []
        for d in dilations:
            basis = _dilated_basis(d) if d > 1 else {}
            layers += [enn.R2Conv(t, hid, 3, padding=d, dilation=d, initialize=initialize, **basis), enn.InnerBatchNorm(hid), enn.ReLU(hid)]
            t = hid
        layers.append(enn.R2Conv(t, enn.FieldType(gs, [gs.trivial_repr] * 8), 1, initialize=initialize))
        self.net = enn.SequentialModule(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor > 1:
            x = F.avg_pool2d(x, self.factor)
        return self.net(enn.GeometricTensor(x, self.in_type)).tensor


class EscnnReacherEncoder(nn.Module):
    """Our D4 encoder's layer stack from R2Conv, un-exported: ``[B, 8, 32, 32]`` -> ``[B, 4, 8]``."""

    def __init__(self, fields: int, initialize: bool):
        super().__init__()
        gs = gspaces.flipRot2dOnR2(4)
        self.in_type = enn.FieldType(gs, [gs.trivial_repr] * 8)
        hid = enn.FieldType(gs, [gs.regular_repr] * fields)
        out = enn.FieldType(gs, [gs.regular_repr] * 4)

        def block(t: enn.FieldType, k: int) -> list[enn.EquivariantModule]:
            return [enn.R2Conv(t, hid, k, padding=k // 2, initialize=initialize), enn.InnerBatchNorm(hid), enn.ReLU(hid)]

        self.net = enn.SequentialModule(
            *block(self.in_type, 3), enn.PointwiseMaxPool2D(hid, 2),
            *block(hid, 3), enn.PointwiseMaxPool2D(hid, 2),
            *block(hid, 3), enn.PointwiseAdaptiveAvgPool2D(hid, 1),
            *block(hid, 1),
            enn.R2Conv(hid, out, 1, initialize=initialize),
        )

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        y = self.net(enn.GeometricTensor(v, self.in_type)).tensor  # [B, 32, 1, 1]
        return y.flatten(1).unflatten(1, (4, 8))  # [B, 4, 8]


class PlainReacherEncoder(nn.Module):
    """``none``'s encoder: our plain conv stack, ``[B, 8, 32, 32]`` -> ``[B, 32]``."""

    def __init__(self, channels: int):
        super().__init__()

        def block(c_in: int, k: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, channels, k, padding=k // 2), nn.BatchNorm2d(channels), nn.ReLU()]

        self.net = nn.Sequential(
            *block(8, 3), nn.MaxPool2d(2), *block(channels, 3), nn.MaxPool2d(2),
            *block(channels, 3), nn.AdaptiveAvgPool2d(1), *block(channels, 1), nn.Conv2d(channels, 32, 1),
        )

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.net(v).flatten(1)


class EscnnReacherTransition(nn.Module):
    """Three 1x1 D4 R2Conv on ``[z, (a, -a)]`` as ``[B, C, 1, 1]`` maps; returns the residual ``[B, 4, 8]``."""

    def __init__(self, fields: int, initialize: bool, action_dim: int = 2):
        super().__init__()
        gs = gspaces.flipRot2dOnR2(4)
        self.action_dim = action_dim
        self.z_type = enn.FieldType(gs, [gs.regular_repr] * 4)
        self.a_type = enn.FieldType(gs, [gs.quotient_repr((None, 4))] * action_dim)
        hid = enn.FieldType(gs, [gs.regular_repr] * fields)
        self.net = enn.SequentialModule(
            enn.R2Conv(self.z_type + self.a_type, hid, 1, initialize=initialize), enn.ReLU(hid),
            enn.R2Conv(hid, hid, 1, initialize=initialize), enn.ReLU(hid),
            enn.R2Conv(hid, self.z_type, 1, initialize=initialize),
        )

    def forward(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        zt = enn.GeometricTensor(z.reshape(b, -1, 1, 1), self.z_type)
        a = torch.stack([actions, -actions], dim=-1).view(b, 2 * self.action_dim, 1, 1).to(z.dtype)
        out = self.net(enn.tensor_directsum([zt, enn.GeometricTensor(a, self.a_type)]))
        return out.tensor.flatten(1).unflatten(1, (4, 8))


class PlainReacherTransition(nn.Module):
    """``none``'s transition: MLP on ``[z, a]``, returns the residual ``[B, 32]``."""

    def __init__(self, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(34, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 32))

    def forward(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z.flatten(1), actions.to(z.dtype)], dim=1))


# ------------------------------------------------------------------------------------------------
# The model and its training step
# ------------------------------------------------------------------------------------------------


class AuthorsModel(nn.Module):
    """embedding -> encoder -> transition, each image batch through the SEN separately (the release's forward)."""

    def __init__(self, embedding: nn.Module, encoder: nn.Module, transition: nn.Module, has_objects: bool, hinge: float = 1.0, sigma: float = 0.5):
        super().__init__()
        self.embedding, self.encoder, self.transition = embedding, encoder, transition
        self.has_objects, self.hinge, self.sigma = has_objects, hinge, sigma

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor):
        """``(z, T(z, a), z')`` for float NCHW images."""
        state = self.encoder(self.embedding(obs))
        next_state = self.encoder(self.embedding(next_obs))
        return state, self.transition(state, actions), next_state

    def energy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``0.5 / sigma^2 * sum (x - y)^2``, mean over objects first: ``[B]``."""
        diff = (x - y).pow(2)
        if self.has_objects:
            diff = diff.mean(1)
        return diff.sum(tuple(range(1, diff.dim()))) * (0.5 / self.sigma**2)

    def contrastive_loss(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The release's loss (residual prediction, one negative by permutation) and the latent norm."""
        state, delta, next_state = self(obs, actions, next_obs)
        pos = self.energy(state + delta, next_state)
        perm = torch.randperm(state.shape[0])
        neg = torch.clamp(self.hinge - self.energy(state, state[perm]), min=0.0)
        loss = pos.mean() + neg.mean()
        with torch.no_grad():
            z_norm = torch.linalg.vector_norm(state.mean(1).mean(0) if self.has_objects else state.mean(0))
        return loss, z_norm


def build_authors_model(spec: ModelSpec, initialize: bool = False) -> AuthorsModel:
    """The release's way of computing ``spec``'s architecture (our preset's widths); escnn init skipped by default."""
    if not has_authors_model(spec):
        raise ValueError(f"the authors released no model for {spec.env_id} (only grid worlds and Reacher)")
    p = preset(spec)
    env = make_env(spec)
    h, _, c = env.observation_space.shape
    env.close()
    if domain_of(spec.env_id) == "grid":
        k = int(env.n_objects)
        if env.symmetry.planar.reflections:
            raise ValueError("the release's C4 layers cover C4 grid worlds only (symmetry='C4')")
        pool = int(p["sen_pool"])
        size = h // pool
        if spec.variant == "full":
            from symwm.world_models.components.sen import matching_sen_fields

            gs = gspaces.rot2dOnR2(4)
            n = p.get("sen_fields") or matching_sen_fields(gs, c, k, int(p["sen_channels"]), int(p["sen_layers"]))
            sen: nn.Module = EscnnGridSEN(gs, c, k, int(n), int(p["sen_layers"]), pool, initialize)
        else:
            sen = PlainGridSEN(c, k, int(p["sen_channels"]), int(p["sen_layers"]), pool)
        if spec.variant == "none":
            d = int(p["latent_dim"])  # C-SWM's plain latent per object (2, as in the release)
            return AuthorsModel(sen, MLPObjectEncoder(size * size, int(p["encoder_hidden"]), d), PlainGNN(d, k, int(p["transition_hidden"])), True)
        fields = int(p["latent_fields"])  # the latent: F copies of C4's regular representation per object
        enc = C4OrbitEncoder(size, int(p["encoder_hidden"]), fields)
        return AuthorsModel(sen, enc, C4GNN(fields, k, int(p["transition_hidden"])), True)
    # Reacher
    factor = h // 32
    dil = tuple(int(d) for d in p["sen_dilations"])
    if spec.variant == "full":
        sen = EscnnReacherSEN(factor, c, int(p["sen_fields"]), dil, initialize)
    else:
        sen = PlainReacherSEN(factor, c, int(p["sen_channels"]), dil, strided=p.get("sen_downsample", "pool") == "stride")
    if spec.variant == "none":
        return AuthorsModel(sen, PlainReacherEncoder(int(p["enc_channels"])), PlainReacherTransition(int(p["trans_hidden"])), False)
    return AuthorsModel(sen, EscnnReacherEncoder(int(p["enc_fields"]), initialize), EscnnReacherTransition(int(p["trans_fields"]), initialize), False)


def num_parameters(model: nn.Module) -> int:
    """Trainable parameter count."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def authors_step(
    model: AuthorsModel, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
    obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor, amp: bool,
) -> float:
    """One training step the release's way, from uint8 ``[B, H, W, C]`` batches; returns the loss."""
    device_type = obs.device.type
    x, x_next = preprocess_nchw(obs), preprocess_nchw(next_obs)
    optimizer.zero_grad(set_to_none=False)
    with torch.autocast(device_type, enabled=amp):
        loss, z_norm = model.contrastive_loss(x, actions, x_next)
    value = loss.item()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    z_norm.item()
    return value
