"""Group axioms and the planar action on grids, images and directions."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from symwm.envs.groups import (
    SO3,
    Dihedral,
    DihedralElement,
    DirectProduct,
    Octahedral,
    Symmetric,
    direction_transform,
    geodesic_distance,
    geodesic_distances,
    nearest_rotation,
    grid_cell_transform,
    rotation_from_vector,
    rotation_to_vector,
    transform_grid,
)
from symwm.envs.grid_world import DELTAS

FINITE_GROUPS = [
    Dihedral(4, reflections=False),
    Dihedral(4, reflections=True),
    Dihedral(6, reflections=True),
    Symmetric(4),
    DirectProduct(Dihedral(4, True), Symmetric(3)),
    Octahedral(),
]


@pytest.mark.parametrize("group", FINITE_GROUPS, ids=lambda g: g.name)
def test_finite_group_axioms(group):
    elements = group.elements()
    assert len(elements) == group.order == len(group)
    assert group.is_identity(elements[0])
    for g in elements:
        assert group.contains(g)
        assert group.equal(group.compose(g, group.identity()), g)
        assert group.equal(group.compose(group.identity(), g), g)
        assert group.is_identity(group.compose(g, group.inverse(g)))
    rng = np.random.default_rng(0)
    for _ in range(50):  # associativity and closure on random triples
        a, b, c = (elements[i] for i in rng.integers(len(elements), size=3))
        ab_c = group.compose(group.compose(a, b), c)
        a_bc = group.compose(a, group.compose(b, c))
        assert group.equal(ab_c, a_bc)
        assert any(group.equal(group.compose(a, b), e) for e in elements)


def test_group_orders():
    assert Dihedral(4).order == 4 and Dihedral(4, True).order == 8
    assert DirectProduct(Dihedral(4), Symmetric(5)).order == 480
    assert DirectProduct(Dihedral(4, True), Symmetric(5)).order == 960
    assert Octahedral().order == 24


def test_so3_axioms_and_sampling():
    group, rng = SO3(), np.random.default_rng(1)
    for _ in range(20):
        g, h, k = group.sample(rng), group.sample(rng), group.sample(rng)
        assert group.contains(g)
        assert group.is_identity(group.compose(g, group.inverse(g)))
        assert group.equal(group.compose(group.compose(g, h), k), group.compose(g, group.compose(h, k)))
    with pytest.raises(TypeError, match="infinite"):
        group.elements()
    assert not group.contains(np.diag([1.0, 1.0, -1.0]))  # a reflection, det -1


def test_so3_haar_sampling_is_uniform():
    # the rotated z axis of Haar-random rotations is uniform on the sphere: mean ~ 0, E[z^2] = 1/3
    rng = np.random.default_rng(2)
    axes = np.array([SO3().sample(rng)[:, 2] for _ in range(4000)])
    assert np.abs(axes.mean(0)).max() < 0.05
    assert abs((axes[:, 2] ** 2).mean() - 1 / 3) < 0.03


@given(st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3))
@settings(max_examples=100, deadline=None)
def test_rotation_vector_round_trip(v):
    v = np.array(v)
    r = rotation_from_vector(v)
    assert SO3().contains(r)
    back = rotation_from_vector(rotation_to_vector(r))
    assert np.allclose(back, r, atol=1e-6)
    angle = np.linalg.norm(v)  # < 2 pi here
    expected = angle if angle <= np.pi else 2 * np.pi - angle
    assert geodesic_distance(np.eye(3), r) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("g", Dihedral(4, True).elements(), ids=repr)
def test_pixel_cell_and_direction_actions_agree(g):
    size = 5
    for r in range(size):
        for c in range(size):
            image = np.zeros((size, size), dtype=int)
            image[r, c] = 1
            moved = transform_grid(g, image)
            assert tuple(np.argwhere(moved)[0]) == tuple(grid_cell_transform(g, np.array([r, c]), size))
    # a move in direction d, transformed, is a move in direction g(d)
    start = np.array([2, 2])
    for d in range(4):
        end = start + DELTAS[d]
        moved = grid_cell_transform(g, end, size) - grid_cell_transform(g, start, size)
        assert np.array_equal(moved, DELTAS[direction_transform(g, d)])


def test_planar_action_is_a_group_action_and_matches_matrices():
    group = Dihedral(4, True)
    image = np.random.default_rng(3).integers(0, 255, size=(7, 7, 3))
    for g in group:
        for h in group:
            lhs = transform_grid(g, transform_grid(h, image))
            assert np.array_equal(lhs, transform_grid(group.compose(g, h), image))
            assert np.allclose(group.matrix(g) @ group.matrix(h), group.matrix(group.compose(g, h)))
    # the paper's convention: a counter-clockwise quarter turn maps up to left
    assert direction_transform(DihedralElement(1, False), 0) == 3


def test_transform_grid_torch_matches_numpy():
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 6)).astype(np.float32)
    for g in Dihedral(4, True):
        expected = transform_grid(g, x, axes=(-2, -1))
        got = transform_grid(g, torch.from_numpy(x), axes=(-2, -1)).numpy()
        assert np.array_equal(expected, got)


def test_permutation_moves_entries_to_their_slots():
    s = Symmetric(4)
    p = s.elements()[7]
    x = np.arange(4) * 10
    y = s.permute(p, x)
    for i in range(4):
        assert y[p.perm[i]] == x[i]
    q = s.elements()[13]
    assert np.array_equal(s.permute(p, s.permute(q, x)), s.permute(s.compose(p, q), x))


def test_batched_geodesic_distances_and_the_nearest_rotation():
    rng = np.random.default_rng(1)
    a = np.stack([SO3().sample(rng) for _ in range(5)])
    b = np.stack([SO3().sample(rng) for _ in range(5)])
    assert np.allclose(geodesic_distances(a, b), [geodesic_distance(x, y) for x, y in zip(a, b)])
    assert np.allclose(nearest_rotation(a[0]), a[0])
    near = nearest_rotation(a[0] + 0.01 * rng.standard_normal((3, 3)))
    assert SO3().contains(near) and geodesic_distance(near, a[0]) < 0.05
    flipped = nearest_rotation(a[0] @ np.diag([1.0, 1.0, -1.0]))  # a reflection: the nearest rotation, never itself
    assert np.linalg.det(flipped) == pytest.approx(1.0)
