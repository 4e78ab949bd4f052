"""Tests of the numpy 3D Blocks renderer (symwm.envs.cubes_renderer)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from symwm.envs.cubes_renderer import CUBE_COLOURS, CubesRenderer, _face_shades


def random_cells(rng: np.random.Generator, grid_size: int, n: int) -> np.ndarray:
    flat = rng.choice(grid_size * grid_size, n, replace=False)
    return np.stack(np.divmod(flat, grid_size), axis=1)


def rotate_cells(cells: np.ndarray, grid_size: int) -> np.ndarray:
    """The grid's counter-clockwise quarter turn (r, c) -> (G - 1 - c, r)."""
    return np.stack([grid_size - 1 - cells[:, 1], cells[:, 0]], axis=1)


def colour_pixel_counts(image: np.ndarray, n: int, renderer: CubesRenderer) -> np.ndarray:
    """Pixels whose nearest reference colour is a shade of object colour ``i``, for ``i < n``.

    References: every palette colour under every face shade, plus the empty board's colours; a
    pixel counts for object ``i`` when its nearest reference is a shade of colour ``i`` and lies
    within 20 grey levels.
    """
    shades = np.unique(_face_shades())
    refs = [(CUBE_COLOURS[j] * s * 255.0, j) for j in range(len(CUBE_COLOURS)) for s in shades]
    board = np.unique(renderer.background.reshape(-1, 3), axis=0)
    refs += [(b.astype(float), -1) for b in board]
    ref = np.stack([r for r, _ in refs])
    label = np.array([j for _, j in refs])
    px = image.reshape(-1, 3).astype(float)
    dist = np.linalg.norm(px[:, None, :] - ref[None, :, :], axis=-1)
    nearest = dist.argmin(axis=1)
    close = dist[np.arange(len(px)), nearest] < 20.0
    return np.array([np.sum(close & (label[nearest] == i)) for i in range(n)])


@pytest.fixture(scope="module")
def renderer() -> CubesRenderer:
    return CubesRenderer(grid_size=5, resolution=50)


def test_shape_dtype_and_determinism(renderer):
    cells = np.array([[0, 0], [1, 2], [4, 4], [3, 1], [2, 3]])
    image = renderer.render(cells)
    assert image.shape == (50, 50, 3) and image.dtype == np.uint8
    assert np.array_equal(image, renderer.render(cells))
    assert np.array_equal(image, CubesRenderer(5, 50).render(cells))
    assert renderer.background.shape == (50, 50, 3)
    assert not np.array_equal(image, renderer.background)


def test_tables_are_cached():
    assert CubesRenderer(5, 50)._t is CubesRenderer(5, 50)._t
    assert CubesRenderer(5, 50)._t is not CubesRenderer(5, 64)._t


def test_different_states_give_different_images(renderer):
    rng = np.random.default_rng(0)
    images = []
    for _ in range(20):
        images.append(renderer.render(random_cells(rng, 5, 5)))
    for i in range(len(images)):
        for j in range(i):
            assert not np.array_equal(images[i], images[j])
    # object identity matters: swapping two objects' cells changes the image
    cells = random_cells(rng, 5, 5)
    swapped = cells[[1, 0, 2, 3, 4]]
    assert not np.array_equal(renderer.render(cells), renderer.render(swapped))


def test_every_object_colour_is_visible(renderer):
    rng = np.random.default_rng(1)
    for _ in range(30):
        cells = random_cells(rng, 5, 5)
        counts = colour_pixel_counts(renderer.render(cells), 5, renderer)
        assert np.all(counts >= 3), (cells.tolist(), counts)
    # worst case for occlusion: a whole column and a whole row filled
    for cells in ([[r, 2] for r in range(5)], [[2, c] for c in range(5)]):
        counts = colour_pixel_counts(renderer.render(np.array(cells)), 5, renderer)
        assert np.all(counts >= 3), (cells, counts)


def test_colour_ids_select_palette_entries(renderer):
    cells = np.array([[0, 1], [2, 2], [4, 3]])
    perm = np.array([2, 0, 1])
    # object i (on cells[i]) in colour perm[i]  ==  object perm[i] on cells[i]
    reordered = np.empty_like(cells)
    reordered[perm] = cells
    assert np.array_equal(renderer.render(cells, perm), renderer.render(reordered))
    custom = CubesRenderer(5, 50, colours=[[1.0, 1.0, 1.0]])
    top = custom.project(custom.cell_centres([[2, 2]], height=1.0))[0]
    image = custom.render(np.array([[2, 2]]), colour_ids=[0])
    assert np.all(image[int(top[1]), int(top[0])] == 255)


def test_moving_an_object_changes_old_and_new_places(renderer):
    rng = np.random.default_rng(2)
    for _ in range(20):
        cells = random_cells(rng, 5, 5)
        free = sorted(set(range(25)) - set((cells[:, 0] * 5 + cells[:, 1]).tolist()))
        new = int(rng.choice(free))
        moved = cells.copy()
        moved[0] = divmod(new, 5)
        before, after = renderer.render(cells), renderer.render(moved)
        diff = np.abs(before.astype(int) - after.astype(int)).sum(axis=-1)
        # top faces are never hidden (the camera is above the cubes): check at their centres
        for cell in (cells[0], moved[0]):
            u, v = renderer.project(renderer.cell_centres([cell], height=1.0))[0]
            assert diff[int(v), int(u)] > 60
        # ... and the change is local: most of the image is untouched
        assert np.mean(diff > 0) < 0.35


def test_quarter_turn_of_the_grid_is_not_a_rotation_of_the_image(renderer):
    rng = np.random.default_rng(3)
    gaps, baseline = [], []
    for _ in range(20):
        cells = random_cells(rng, 5, 5)
        image = renderer.render(cells).astype(float)
        rotated = renderer.render(rotate_cells(cells, 5)).astype(float)
        gaps.append(np.abs(rotated - np.rot90(image)).mean())
        baseline.append(np.abs(rotated - image).mean())  # two different states, same view
    # rot90 of the image (tilted board, upside-down shading) is further from the rendering of the
    # rotated state than a different state is
    assert np.mean(gaps) > 25.0, gaps
    assert min(gaps) > 18.0, gaps
    assert np.mean(gaps) > np.mean(baseline)
    # the rendering itself is rotation-sensitive even on the empty board
    board = renderer.background.astype(float)
    assert np.abs(board - np.rot90(board)).mean() > 10.0


def test_scene_is_in_frame():
    for grid_size, resolution in [(3, 32), (5, 50), (10, 64), (7, 128)]:
        r = CubesRenderer(grid_size, resolution)
        h = grid_size / 2.0
        corners = np.array([[x, y, z] for x in (-h, h) for y in (-h, h) for z in (0.0, 1.0)])
        uv = r.project(corners)
        assert np.all(uv >= 0.0) and np.all(uv <= resolution)


def test_other_sizes():
    small = CubesRenderer(grid_size=3, resolution=64)
    cells = np.array([[0, 0], [1, 1], [2, 2]])
    image = small.render(cells)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert np.all(colour_pixel_counts(image, 3, small) >= 3)

    rng = np.random.default_rng(4)
    big = CubesRenderer(grid_size=6, resolution=64)
    for _ in range(5):
        cells = random_cells(rng, 6, 10)
        image = big.render(cells)
        assert image.shape == (64, 64, 3)
        counts = colour_pixel_counts(image, 10, big)
        assert np.all(counts >= 3), (cells.tolist(), counts)


def test_invalid_input(renderer):
    with pytest.raises(ValueError):
        renderer.render(np.array([[0, 5]]))
    with pytest.raises(ValueError):
        renderer.render(np.array([[-1, 0]]))
    with pytest.raises(ValueError):
        renderer.render(np.array([[0, 0], [1, 1]]), colour_ids=[0])
    with pytest.raises(ValueError):
        CubesRenderer(5, 50, colours=np.zeros((3, 4)))
    assert np.array_equal(renderer.render(np.zeros((0, 2), int)), renderer.background)


def test_matplotlib_reference_renders():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "matplotlib_voxels.py"
    spec = importlib.util.spec_from_file_location("matplotlib_voxels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    image = module.render_voxels_matplotlib(np.array([[0, 0], [2, 3], [4, 4]]))
    assert image.shape == (50, 50, 3) and image.dtype == np.uint8
    assert image.std() > 10.0
