"""Encoders E: SEN outputs V -> latents Z ``[B, K, D]``, per object or for the whole scene."""

from __future__ import annotations

import torch
from torch import nn

from symwm.world_models.components.mlp import export_sequential
from symwm.world_models.escnn_bridge import EscnnModule


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


class VectorEncoder(EscnnModule):
    """``[B, V] -> [B, 1, D]`` through an MLP (escnn or plain)."""

    def __init__(self, mlp: nn.Sequential):
        super().__init__()
        self.mlp = mlp

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.mlp(v)[:, None]

    def export(self) -> "VectorEncoder":
        """The same encoder in plain torch (eval mode)."""
        self.eval()
        return VectorEncoder(export_sequential(self.mlp)).eval()
