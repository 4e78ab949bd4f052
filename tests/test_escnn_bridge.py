"""symwm's planar group elements act on escnn feature maps exactly as on images."""

import pytest
import torch
from escnn import gspaces
from escnn import nn as enn

from symwm.envs.groups import Dihedral, transform_grid
from symwm.world_models.escnn_bridge import PlainIO, to_escnn


@pytest.mark.parametrize("reflections", [False, True])
def test_to_escnn_matches_pixel_transform_and_is_a_homomorphism(reflections):
    gs = gspaces.flipRot2dOnR2(4) if reflections else gspaces.rot2dOnR2(4)
    G, ours = gs.fibergroup, Dihedral(4, reflections)
    x = enn.FieldType(gs, [gs.trivial_repr] * 2)(torch.randn(3, 2, 7, 7))
    for g in ours:
        assert torch.equal(x.transform(to_escnn(g, G)).tensor, transform_grid(g, x.tensor, axes=(-2, -1)))
        for h in ours:
            assert to_escnn(ours.compose(g, h), G) == to_escnn(g, G) @ to_escnn(h, G)


def test_plain_io_round_trip_and_export():
    gs = gspaces.rot2dOnR2(4)
    t_in = enn.FieldType(gs, [gs.trivial_repr] * 3)
    t_out = enn.FieldType(gs, [gs.regular_repr] * 2)
    module = PlainIO(enn.SequentialModule(enn.R2Conv(t_in, t_out, 3, padding=1), enn.ReLU(t_out)))
    x = torch.randn(2, 3, 9, 9)
    module.eval()
    y = module(x)
    exported = module.export()
    assert not any("escnn" in type(m).__module__ for m in exported.modules())
    assert torch.allclose(exported(x), y, atol=1e-5)
