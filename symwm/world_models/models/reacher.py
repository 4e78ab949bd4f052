"""World models for ``symwm/Reacher-v0``: D4 acting on a two-link arm seen in two stacked RGB frames.

Spaces and how D4 acts on them
    * observations: uint8 ``[B, R, R, 6]`` (R a multiple of 32; 64 or 128); D4 acts on them in a
      way the model does not know (the default oblique camera is not pixel-symmetric).
    * V (SEN output): ``[B, 8, 32, 32]``, eight scalar maps that rotate and flip with the grid
      (:func:`symwm.envs.groups.transform_grid` on the last two axes).
    * Z (latent): ``[B, 1, 32]``, four regular D4 fields (escnn's ``flipRot2dOnR2(4)`` regular
      representation, 8 channels each, in escnn's channel order), acted on through
      :func:`symwm.world_models.escnn_bridge.to_escnn`.
    * actions: two torques, ``rho_flip``: unchanged by rotations, negated by reflections; that is
      two copies of escnn's D4 irrep ``irrep_1,0`` (``G.irrep(1, 0)``: trivial on rotations, -1 on
      every reflection).

Networks (``PRESETS[size][variant]`` holds the widths)
    * SEN, ``ours`` / ``none`` (``sen_downsample="stride"``, the release's form): a 3x3
      convolution with stride 2 on the frames, five 3x3 convolutions with dilations 2, 4, 8, 16, 32
      ("padding = dilation"), BatchNorm + ReLU after each, and a 3x3 convolution to the 8 output
      maps (no output activation) with stride 2 at R = 128 (the release: 128 -> 64 -> 32) and 1 at
      R = 64 (64 -> 32, the dilated layers then run at 32x32, where only the centre tap of the
      dilation-32 kernel meets the grid: 8/9 of that layer's weights get no gradient; we keep the
      release's schedule). The learned strided convolution sees
      every pixel; the older form (``sen_downsample="pool"``, still buildable through overrides) first
      average-pools the frames by ``R/32`` and then uses dilations 1..32 and a 1x1 convolution.
    * SEN, ``full``: the pooled form built from escnn ``R2Conv`` on ``flipRot2dOnR2(4)``
      (6 trivial fields in, ``sen_fields`` regular fields hidden, InnerBatchNorm + ReLU, 8 trivial
      fields out), i.e. it wrongly assumes D4 acts on the pixels. It always average-pools: blocks
      that tile the image make pooling exactly D4-equivariant, where a stride-2 3x3 convolution on an
      even grid is not (its sampling grid does not map to itself under a reflection). Dilated
      steerable kernels use the undilated 3x3
      basis stretched by the dilation (escnn's default basis for a dilated kernel is over-complete,
      120 instead of 48 weights per pair of regular fields, and vanishes at the corners).
    * encoder, ``ours`` / ``full``: a D4 steerable CNN ``8 trivial -> H regular`` (3x3, 32x32)
      -> 2x2 max pool -> ``H -> H`` (3x3, 16x16) -> 2x2 max pool -> ``H -> H`` (3x3, 8x8) ->
      global average pool -> ``H -> H`` (1x1) -> ``4 regular`` (1x1); InnerBatchNorm + ReLU after
      each hidden layer. Pooling windows tile the even-sized grids and every kernel is odd with
      "same" padding, so the encoder is exactly equivariant (tested for all 8 elements).
    * encoder, ``none``: the same shape with plain convolutions of ``enc_channels`` channels.
    * transition, ``ours`` / ``full``: three 1x1 D4 layers (escnn ``Linear`` on
      ``no_base_space(D4)``): ``[z, a]`` = ``4 regular + 2 x irrep_1,0`` -> ``T`` regular -> ``T``
      regular -> 4 regular, ReLU between, residual ``z' = z + T(z, a)``.
    * transition, ``none``: an MLP ``34 -> trans_hidden -> trans_hidden -> 32``, ReLU, residual.

Paper-size widths (nothing depends on R)
    The release's script (``scripts/reacher.sl``): a 32-channel SEN, 181 regular fields in the D4
    encoder and transition. A 1x1 D4 layer between 181 regular fields has ``181^2 * 8 = 262k``
    weights, as many as a plain 512 -> 512 layer (``181 * sqrt(8) = 512``), so ``none`` uses 512
    channels / hidden units wherever ``ours`` uses 181 regular fields. A 3x3 D4 kernel between two
    regular fields has 48 free weights (a plain one 72), so the two 3x3 hidden-to-hidden layers hold
    3.15M weights in ``ours`` and 4.72M in ``none``. Totals: ours 3.75M (SEN 0.05M, encoder 3.42M,
    transition 0.27M), none 5.39M (0.05M, 5.04M, 0.30M); the paper's table says 4.0M / 5.6M. ``full``
    uses 35 regular fields in its pooled SEN (0.30M): 3.99M. ``build(..., initialize=False)`` takes
    about 1 s at paper size; escnn's generalised He initialisation (``initialize=True``) about 14 s.

CPU widths (table 2 at cpu scale, 64x64 frames)
    ``ours``: the release's 32-channel strided SEN (51k), 4 regular fields in the encoder's 3x3
    layers (2k; they run on the 32x32 grid, and 8 fields made a step 1.6x slower), 128 regular fields in the
    transition (140k): 193k parameters. ``none``: the same SEN, 16 channels in the encoder, 362
    hidden units in the transition (``128 * sqrt(8)``): 213k. ``full``: 1 regular field in its SEN,
    2 in the encoder, 16 in the transition: 4k. Measured on a shared 2-core machine (1 thread), a
    training step on 256 transitions (512 images, contrastive loss, backward, Adam) takes 3.2 s for
    ``ours`` and 2.9 s for ``none`` (0.17 s for the planar family's ``ours`` on the same frames).
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import torch
from escnn import gspaces
from escnn import nn as enn
from torch import nn
from torch.nn import functional as F

from symwm.envs.groups import DihedralElement, transform_grid
from symwm.world_models.components.sen import ChannelsLast
from symwm.world_models.escnn_bridge import PlainIO, representation_matrix, to_escnn
from symwm.world_models.model import LatentSymmetry, ModelSpec, WorldModel

NAME = "reacher"
VARIANTS = ("ours", "none", "full")

#: the SEN's output: EMBED_CHANNELS scalar maps on a GRID x GRID grid
EMBED_CHANNELS = 8
GRID = 32
#: the latent: LATENT_FIELDS regular D4 fields of 8 channels each, as one object [B, 1, 32]
LATENT_FIELDS = 4
D4_ORDER = 8
LATENT_DIM = LATENT_FIELDS * D4_ORDER
ACTION_DIM = 2
DILATIONS = (1, 2, 4, 8, 16, 32)

#: the release's SEN: a stride-2 3x3 convolution, these dilations, a 3x3 convolution (stride 2 at R = 128)
STRIDED_DILATIONS = (2, 4, 8, 16, 32)
_STRIDED = {"sen_dilations": STRIDED_DILATIONS, "sen_downsample": "stride", "batch_norm": True}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "ours": {"sen_channels": 32, **_STRIDED, "enc_fields": 181, "trans_fields": 181},
        "none": {"sen_channels": 32, **_STRIDED, "enc_channels": 512, "trans_hidden": 512},
        "full": {"sen_fields": 35, "sen_dilations": DILATIONS, "enc_fields": 181, "trans_fields": 181, "batch_norm": True},
    },
    "cpu": {
        "ours": {"sen_channels": 32, **_STRIDED, "enc_fields": 4, "trans_fields": 128},
        "none": {"sen_channels": 32, **_STRIDED, "enc_channels": 16, "trans_hidden": 362},
        "full": {"sen_fields": 1, "sen_dilations": DILATIONS, "enc_fields": 2, "trans_fields": 16, "batch_norm": True},
    },
}


# ----------------------------------------------------------------------------------------------
# The group on V and Z
# ----------------------------------------------------------------------------------------------


def d4_gspace() -> gspaces.GSpace2D:
    """escnn's D4 acting on the plane (reflection across the vertical axis; see escnn_bridge)."""
    return gspaces.flipRot2dOnR2(4)


class ReacherLatentSymmetry(LatentSymmetry):
    """D4 on V (grid transforms of 8 scalar maps) and on Z (4 regular fields, [B, 1, 32])."""

    def __init__(self, group: Any, G: Any):
        self.group = group  # the environment's D4; G is escnn's
        # one [32, 32] block-diagonal matrix per element; plain tensors keep the object deep-copyable
        self._latent = {
            g: torch.block_diag(*[representation_matrix(G.regular_representation, to_escnn(g, G))] * LATENT_FIELDS)
            for g in group.elements()
        }

    def act_on_embedding(self, g: DihedralElement, v: torch.Tensor) -> torch.Tensor:
        """Rotate/flip the SEN's maps ``[B, 8, 32, 32]`` like images."""
        return transform_grid(g, v, axes=(-2, -1))

    def act_on_latent(self, g: DihedralElement, z: torch.Tensor) -> torch.Tensor:
        """The regular representation on each of the 4 fields of ``z`` ``[B, 1, 32]``."""
        if g not in self._latent:
            raise ValueError(f"{g!r} is not an element of {self.group}")
        m = self._latent[g].to(device=z.device, dtype=z.dtype)
        return z @ m.T  # [B, 1, 32]

    def act_on_action(self, g: DihedralElement, a: torch.Tensor) -> torch.Tensor:
        """``rho_flip``: torques ``[B, 2]`` negated by reflections (env.symmetry.act_on_action for tensors)."""
        return -a if g.reflection else a


# ----------------------------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------------------------


class SEN(nn.Module):
    """Images ``[B, 6, R, R]`` -> average pooling by ``factor`` (1 for the strided form) -> ``body`` -> V ``[B, 8, 32, 32]``."""

    def __init__(self, factor: int, body: nn.Module):
        super().__init__()
        self.factor = factor
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor > 1:
            x = F.avg_pool2d(x, self.factor)  # [B, 6, R, R] -> [B, 6, 32, 32]
        return self.body(x)  # [B, 8, 32, 32]

    def export(self) -> "SEN":
        """Plain-torch copy (escnn parts exported), eval mode."""
        return SEN(self.factor, _export(self.body)).eval()


class Encoder(nn.Module):
    """A network ending in 1x1 maps ``[B, 32, 1, 1]``, flattened to one latent object ``[B, 1, 32]``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.net(v).flatten(1).unsqueeze(1)  # [B, D, 1, 1] -> [B, 1, D]

    def export(self) -> "Encoder":
        """Plain-torch copy (escnn parts exported), eval mode."""
        return Encoder(_export(self.net)).eval()


class Transition(nn.Module):
    """Residual dynamics ``z' = z + f([z, a])`` on latents ``[B, 1, 32]`` and torques ``[B, 2]``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        x = torch.cat([z.flatten(1), actions.to(z.dtype)], dim=1)  # [B, 32 + 2]
        return z + self.net(x).view_as(z)

    def export(self) -> "Transition":
        """Plain-torch copy (escnn parts exported), eval mode."""
        return Transition(_export(self.net)).eval()


def _export(net: nn.Module) -> nn.Module:
    """``net.export()`` for escnn-backed modules, a copy of plain ones."""
    net.eval()
    return net.export() if hasattr(net, "export") else copy.deepcopy(net)


def _pool_factor(resolution: int) -> int:
    if resolution % GRID:
        raise ValueError(f"Reacher models need an image resolution that is a multiple of {GRID}, got {resolution}")
    return resolution // GRID


def sen_strides(resolution: int) -> tuple[int, int]:
    """Strides of the strided SEN's first and last 3x3 convolutions that take ``R x R`` frames to the 32x32 grid.

    The release's form at R = 128: both stride by 2 (128 -> 64, dilated convolutions at 64x64, -> 32);
    at R = 64 only the first does (the dilated convolutions run at 32x32); at R = 32 neither.
    """
    strides = {GRID: (1, 1), 2 * GRID: (2, 1), 4 * GRID: (2, 2)}
    if resolution not in strides:
        raise ValueError(f"the strided Reacher SEN takes {sorted(strides)}-pixel frames, got {resolution}; use sen_downsample='pool'")
    return strides[resolution]


# -- plain networks (ours' and none's SEN, none's encoder and transition) -----------------------


def plain_sen(
    in_channels: int, channels: int, dilations: Sequence[int], batch_norm: bool, strides: tuple[int, int] | None = None
) -> nn.Sequential:
    """``ours``'/``none``'s SEN body: dilated 3x3 convolutions to ``[B, 8, 32, 32]``.

    ``strides=None``: the input is already 32x32 (pooled); the last layer is a 1x1 convolution.
    ``strides=(s0, s1)`` (the release's form, :func:`sen_strides`): a 3x3 convolution with stride
    ``s0`` on the full frames first, the dilated layers, and a 3x3 convolution with stride ``s1`` last.
    """

    def block(c_in: int, stride: int, dilation: int) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(c_in, channels, 3, stride=stride, padding=dilation, dilation=dilation)]
        return layers + ([nn.BatchNorm2d(channels)] if batch_norm else []) + [nn.ReLU()]

    layers: list[nn.Module] = [] if strides is None else block(in_channels, strides[0], 1)
    c_in = in_channels if strides is None else channels
    for d in dilations:
        layers += block(c_in, 1, int(d))
        c_in = channels
    if strides is None:
        layers.append(nn.Conv2d(c_in, EMBED_CHANNELS, 1))
    else:
        layers.append(nn.Conv2d(c_in, EMBED_CHANNELS, 3, stride=strides[1], padding=1))
    return ChannelsLast(*layers)


def plain_encoder(channels: int, batch_norm: bool) -> Encoder:
    """V ``[B, 8, 32, 32]`` -> Z ``[B, 1, 32]`` with plain convolutions (shape of the D4 encoder)."""

    def block(c_in: int, k: int) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(c_in, channels, k, padding=k // 2)]
        return layers + ([nn.BatchNorm2d(channels)] if batch_norm else []) + [nn.ReLU()]

    net = nn.Sequential(
        *block(EMBED_CHANNELS, 3), nn.MaxPool2d(2),  # 32 -> 16
        *block(channels, 3), nn.MaxPool2d(2),  # 16 -> 8
        *block(channels, 3), nn.AdaptiveAvgPool2d(1),  # 8 -> 1
        *block(channels, 1),
        nn.Conv2d(channels, LATENT_DIM, 1),
    )
    return Encoder(net)


def plain_transition(hidden: int) -> Transition:
    """MLP on ``[z, a]`` (34 -> hidden -> hidden -> 32), residual."""
    net = nn.Sequential(
        nn.Linear(LATENT_DIM + ACTION_DIM, hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, LATENT_DIM),
    )
    return Transition(net)


# -- D4 steerable networks (full's SEN, ours' and full's encoder and transition) ----------------


def _dilated_basis(dilation: int) -> dict[str, Any]:
    """R2Conv basis arguments that give a dilated 3x3 kernel escnn's undilated 3x3 basis, stretched.

    escnn's default for ``kernel_size=3`` is rings (0, 1), sigmas (0.005, 0.4) and frequencies up to
    2 on the outer ring; scaling rings and sigmas by the dilation samples the same 48 functions per
    pair of regular fields at the dilated taps (tested).
    """
    return {"rings": [0.0, float(dilation)], "sigma": [0.005 * dilation, 0.4 * dilation], "frequencies_cutoff": _cutoff_3x3}


def _cutoff_3x3(r: float) -> float:
    """escnn's default frequency cut-off of a 3x3 kernel: 0 at the centre, 2 on the outer ring."""
    return 0.0 if r == 0.0 else 2.0


def _steerable_block(
    in_type: enn.FieldType, out_type: enn.FieldType, k: int, batch_norm: bool, initialize: bool, dilation: int = 1
) -> list[enn.EquivariantModule]:
    basis = _dilated_basis(dilation) if dilation > 1 else {}
    pad = dilation * (k // 2)
    layers = [enn.R2Conv(in_type, out_type, k, padding=pad, dilation=dilation, initialize=initialize, **basis)]
    if batch_norm:
        layers.append(enn.InnerBatchNorm(out_type))
    return layers + [enn.ReLU(out_type, inplace=True)]


def steerable_sen(
    gs: gspaces.GSpace2D, in_channels: int, fields: int, dilations: Sequence[int], batch_norm: bool, initialize: bool
) -> PlainIO:
    """``full``'s SEN body: :func:`plain_sen` built from D4 steerable convolutions (trivial fields in and out)."""
    t_in = enn.FieldType(gs, [gs.trivial_repr] * in_channels)
    hidden = enn.FieldType(gs, [gs.regular_repr] * fields)
    t_out = enn.FieldType(gs, [gs.trivial_repr] * EMBED_CHANNELS)
    layers: list[enn.EquivariantModule] = []
    t = t_in
    for d in dilations:
        layers += _steerable_block(t, hidden, 3, batch_norm, initialize, dilation=int(d))
        t = hidden
    layers.append(enn.R2Conv(t, t_out, 1, initialize=initialize))
    return PlainIO(enn.SequentialModule(*layers))


def steerable_encoder(gs: gspaces.GSpace2D, fields: int, batch_norm: bool, initialize: bool) -> Encoder:
    """V ``[B, 8, 32, 32]`` (8 trivial fields) -> Z ``[B, 1, 32]`` (4 regular fields), D4-equivariant."""
    t_in = enn.FieldType(gs, [gs.trivial_repr] * EMBED_CHANNELS)
    hidden = enn.FieldType(gs, [gs.regular_repr] * fields)
    t_out = enn.FieldType(gs, [gs.regular_repr] * LATENT_FIELDS)
    net = enn.SequentialModule(
        *_steerable_block(t_in, hidden, 3, batch_norm, initialize), enn.PointwiseMaxPool2D(hidden, 2),  # 32 -> 16
        *_steerable_block(hidden, hidden, 3, batch_norm, initialize), enn.PointwiseMaxPool2D(hidden, 2),  # 16 -> 8
        *_steerable_block(hidden, hidden, 3, batch_norm, initialize), enn.PointwiseAdaptiveAvgPool2D(hidden, 1),  # 8 -> 1
        *_steerable_block(hidden, hidden, 1, batch_norm, initialize),
        enn.R2Conv(hidden, t_out, 1, initialize=initialize),
    )
    return Encoder(PlainIO(net))


def steerable_transition(gs: gspaces.GSpace2D, fields: int, initialize: bool) -> Transition:
    """Three 1x1 D4 layers on ``[z, a]`` (4 regular + 2 x rho_flip) -> 4 regular, residual."""
    G = gs.fibergroup
    gs = gspaces.no_base_space(G)  # the same group acting on vectors, no plane
    t_in = enn.FieldType(gs, [G.regular_representation] * LATENT_FIELDS + [flip_irrep(G)] * ACTION_DIM)
    hidden = enn.FieldType(gs, [G.regular_representation] * fields)
    t_out = enn.FieldType(gs, [G.regular_representation] * LATENT_FIELDS)
    net = enn.SequentialModule(
        enn.Linear(t_in, hidden, initialize=initialize), enn.ReLU(hidden, inplace=True),
        enn.Linear(hidden, hidden, initialize=initialize), enn.ReLU(hidden, inplace=True),
        enn.Linear(hidden, t_out, initialize=initialize),
    )
    return Transition(PlainIO(net))


def flip_irrep(G: Any) -> Any:
    """``rho_flip``: escnn's D4 irrep ``irrep_1,0``, trivial on rotations and -1 on reflections."""
    return G.irrep(1, 0)


# ----------------------------------------------------------------------------------------------
# Build
# ----------------------------------------------------------------------------------------------


def supports(env: Any) -> str | None:
    """``None`` if this family models ``env``, else why not: D4 acting on two torques by ``rho_flip``, square frames.

    The action representation is read off ``env.symmetry.act_on_action`` on the basis torques:
    rotations must keep them, reflections negate them.
    """
    from gymnasium import spaces

    from symwm.envs.groups import Dihedral

    sym = getattr(env, "symmetry", None)
    group = getattr(sym, "action_group", None)
    if not isinstance(group, Dihedral) or group.n != 4 or not group.reflections:
        return "needs D4 (rotations and reflections of the plane) acting on actions"
    space = env.action_space
    if not isinstance(space, spaces.Box) or space.shape != (ACTION_DIM,):
        return f"needs Box actions of shape ({ACTION_DIM},), got {space}"
    for g in group.elements():
        for e in np.eye(ACTION_DIM):
            want = -e if g.reflection else e
            if not np.allclose(np.asarray(sym.act_on_action(g, e), dtype=np.float64), want, atol=1e-9):
                return f"needs rotations to keep the torques and reflections to negate them (rho_flip); {g!r} maps {e} elsewhere"
    shape = env.observation_space.shape
    if shape is None or len(shape) != 3:
        return f"needs image observations [H, W, C], got shape {shape}"
    return None  # image sizes the family cannot take are build errors, not another family's case


def build(spec: ModelSpec, env: Any, params: dict[str, Any], initialize: bool = True) -> WorldModel:
    """The ``spec.variant`` Reacher model for ``env`` (unwrapped); ``initialize=False`` skips escnn init."""
    if spec.variant not in VARIANTS:
        raise ValueError(f"unknown Reacher variant {spec.variant!r}; known: {list(VARIANTS)}")
    height, width, in_channels = env.observation_space.shape
    if height != width:
        raise ValueError(f"Reacher models need square images, got {height}x{width}")
    if env.action_space.shape != (ACTION_DIM,):
        raise ValueError(f"Reacher models need {ACTION_DIM} torques, got action shape {env.action_space.shape}")
    p = params
    gs = d4_gspace()  # one gspace for every escnn part
    dilations = tuple(int(d) for d in p["sen_dilations"])
    downsample = p.get("sen_downsample", "pool")
    if downsample not in ("pool", "stride"):
        raise ValueError(f"sen_downsample must be 'pool' or 'stride', got {downsample!r}")
    if spec.variant == "full":  # stride-2 3x3 convolutions on even grids are not D4-equivariant: full always pools
        body: nn.Module = steerable_sen(gs, in_channels, p["sen_fields"], dilations, p["batch_norm"], initialize)
        sen = SEN(_pool_factor(height), body)
    elif downsample == "stride":
        _pool_factor(height)  # frames that are not a multiple of 32: the same error as the pooled form
        sen = SEN(1, plain_sen(in_channels, p["sen_channels"], dilations, p["batch_norm"], sen_strides(height)))
    else:
        sen = SEN(_pool_factor(height), plain_sen(in_channels, p["sen_channels"], dilations, p["batch_norm"]))
    if spec.variant == "none":
        encoder, transition = plain_encoder(p["enc_channels"], p["batch_norm"]), plain_transition(p["trans_hidden"])
    else:
        encoder = steerable_encoder(gs, p["enc_fields"], p["batch_norm"], initialize)
        transition = steerable_transition(gs, p["trans_fields"], initialize)
    symmetry = ReacherLatentSymmetry(env.symmetry.group, gs.fibergroup)
    return WorldModel(spec, sen, encoder, transition, symmetry=symmetry, latent_shape=(1, LATENT_DIM))
