"""Symmetric embedding networks S: pixels -> a space V on which the group acts in a known way.

Plain CNNs (``ours`` and ``none``: the group's action on V is imposed by training, not by the
architecture) and escnn CNNs (``full``: assumes the group rotates pixels).
"""

from __future__ import annotations

from typing import Any

import torch
from escnn import gspaces
from escnn import nn as enn
from torch import nn
from torch.nn import functional as F

from symwm.world_models.escnn_bridge import EscnnModule, PlainIO


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


class ChannelsLast(nn.Sequential):
    """An ``nn.Sequential`` of plain convolutions fed in channels-last memory layout (same function).

    Thin convolutions on large maps run about twice as fast forward on CPU this way (measured for the
    grid SEN and for Reacher's strided, dilated SEN; ``benchmarks/results/train_profile_cpu.md``).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.contiguous(memory_format=torch.channels_last))


class PlainSEN(ChannelsLast):
    """The SEN of ``ours``/``none``: ``hidden_layers`` x (3x3 conv, BatchNorm, ReLU), 3x3 conv to K maps, sigmoid.

    Runs in channels-last memory layout (:class:`ChannelsLast`). The first convolution pads its RGB
    input to 8 channels on CUDA (:class:`PaddedInputConv2d`). ``pool`` averages the input over
    ``pool x pool`` blocks, ``out_pool`` the maps over ``out_pool x out_pool`` blocks (a coarser V:
    one value per grid cell when it is the cell's side).
    """

    def __init__(self, in_channels: int, n_objects: int, channels: int, hidden_layers: int = 3, pool: int = 1, out_pool: int = 1):
        layers: list[nn.Module] = [BlockMean(pool)] if pool > 1 else []
        c = in_channels
        for i in range(hidden_layers):
            conv = PaddedInputConv2d if i == 0 else nn.Conv2d
            layers += [conv(c, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
            c = channels
        layers += [nn.Conv2d(c, n_objects, 3, padding=1), nn.Sigmoid()]
        layers += [BlockMean(out_pool)] if out_pool > 1 else []
        super().__init__(*layers)  # [B, C, H, W] -> [B, K, H / (pool out_pool), W / (pool out_pool)]


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
        out_pool: int = 1,
    ):
        super().__init__()
        self.pool = pool  # average pooling of whole pool x pool blocks commutes with the grid's symmetries
        self.out_pool = out_pool  # so does that of the maps (PlainSEN's out_pool)
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
        y = torch.sigmoid(self.net(x))  # sigmoid on trivial fields: equivariant; [B, K, H, W]
        return block_mean(y, self.out_pool) if self.out_pool > 1 else y  # [B, K, H / out_pool, W / out_pool]

    def export(self) -> nn.Sequential:
        """Plain-torch convolutions computing the same maps (eval mode)."""
        self.eval()
        pool = [BlockMean(self.pool)] if self.pool > 1 else []
        out_pool = [BlockMean(self.out_pool)] if self.out_pool > 1 else []
        return nn.Sequential(*pool, self.net.export(), nn.Sigmoid(), *out_pool).eval()


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


class FibreSEN(nn.Module):
    """Plain CNN: images ``[B, C, H, W]`` -> ``[B, fibres * |G|]`` (stride-2 convolutions, then a linear layer).

    The linear layer reads the whole last feature map (not its average), so positions stay readable:
    with global average pooling the planar examples' SEN could not locate a disc (10-step Hits@1 at
    chance on the hexagonal board, benchmarks/results/examples).
    """

    def __init__(self, in_channels: int, channels: int, layers: int, out_dim: int, image_size: tuple[int, int]):
        super().__init__()
        convs: list[nn.Module] = []
        c, (h, w) = in_channels, image_size
        for _ in range(layers):
            convs += [nn.Conv2d(c, channels, 3, stride=2, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
            c, h, w = channels, (h + 1) // 2, (w + 1) // 2
        self.convs = nn.Sequential(*convs)
        self.out = nn.Linear(channels * h * w, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.convs(x).flatten(1))  # [B, C, h, w] -> [B, C h w] -> [B, fibres * |G|]
