"""The bridge between symwm's group elements and escnn: element conversion and plain-tensor modules.

escnn's ``flipRot2dOnR2(N)`` reflects across the vertical axis; symwm's reflection is across the
horizontal axis (see :mod:`symwm.envs.groups`), so ``r^k s`` (symwm) is escnn's ``(flip, k + N/2)``.
This is checked against pixel transforms in ``tests/test_escnn_bridge.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from escnn import group as egroup
from escnn import nn as enn
from torch import nn

from symwm.envs.groups import DihedralElement


def to_escnn(g: DihedralElement, G: egroup.Group) -> Any:
    """The escnn element of the cyclic or dihedral group ``G`` that acts like ``g`` on feature maps."""
    if not isinstance(g, DihedralElement):
        raise TypeError(f"expected a DihedralElement, got {type(g).__name__}")
    if isinstance(G, egroup.CyclicGroup):
        if g.reflection:
            raise ValueError(f"{g!r} has a reflection but {G} has none")
        return G.element(g.rotation % G.order())
    if isinstance(G, egroup.DihedralGroup):
        n = G.rotation_order
        if g.reflection:
            return G.element((1, (g.rotation + n // 2) % n))
        return G.element((0, g.rotation % n))
    raise TypeError(f"no conversion from planar elements to {G}")


def representation_matrix(rep: egroup.Representation, element: Any) -> torch.Tensor:
    """``rep(element)`` as a float32 tensor."""
    return torch.as_tensor(np.asarray(rep(element)), dtype=torch.float32)


class EscnnModule(nn.Module):
    """Base of modules holding escnn children: their eval-mode caches are built without autograd.

    escnn's ``Linear`` / ``R2Conv`` expand their filters from the parameters when switched to eval
    mode, with gradient tracking on; the cached buffers then keep the last graph alive, a second
    backward through an eval-mode output fails, and ``copy.deepcopy`` (``WorldModel.export``)
    refuses them. Switching modes under ``no_grad`` avoids all three.
    """

    def train(self, mode: bool = True) -> "EscnnModule":
        with torch.no_grad():
            return super().train(mode)


class PlainIO(EscnnModule):
    """An escnn module that takes and returns plain tensors; ``export()`` gives plain torch.

    ``net`` maps ``in_type`` to its ``out_type``; the input's trailing layout must match
    ``in_type`` (channels in dim 1).
    """

    def __init__(self, net: enn.EquivariantModule):
        super().__init__()
        self.net = net
        self.in_type = net.in_type
        self.out_type = net.out_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_cuda:
            # escnn's wide convolutions run 1.4x faster on CPU in plain NCHW than in the channels-last
            # layout that the uint8 NHWC observations (and the plain SENs) hand on (measured)
            x = x.contiguous()
        return self.net(enn.GeometricTensor(x, self.in_type)).tensor

    def export(self) -> nn.Module:
        """The plain-torch module computing the same function (escnn's ``export``), in eval mode."""
        self.net.eval()
        return self.net.export().eval()
