"""MLPs of the encoders and transitions: escnn-equivariant on regular fields, or plain (C-SWM's)."""

from __future__ import annotations

import copy

import torch
from escnn import nn as enn
from torch import nn
from torch.nn import functional as F

from symwm.world_models.escnn_bridge import PlainIO


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
