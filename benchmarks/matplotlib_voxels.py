"""Reference renderer for the 3D Blocks domain in the style of the paper's code: matplotlib voxels.

The authors rendered every observation by creating a new matplotlib figure with a 3D axes, drawing
the objects with ``ax.voxels`` (one coloured unit voxel per object), drawing the canvas and reading
its pixels back, then closing the figure. That costs tens of milliseconds per frame; this module
reproduces it as the baseline for the speed comparison with :class:`symwm.envs.cubes_renderer.
CubesRenderer` (run this file to print both frame rates and their ratio).

Per call (the authors' way) a new figure is created; pass ``fig=make_figure(resolution)`` to reuse
one figure across calls (its contents are cleared and redrawn, which saves the figure setup only).
We use the object-oriented ``Figure`` + Agg canvas instead of ``pyplot`` (no global figure
registry), which if anything makes the baseline a little faster.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from symwm.envs.cubes_renderer import (
    BOARD_DARK_RGB,
    BOARD_LIGHT_RGB,
    BOARD_THICKNESS,
    CAMERA_AZIMUTH,
    CAMERA_ELEVATION,
    CUBE_COLOURS,
)

BOARD_COLOURS = (BOARD_LIGHT_RGB, BOARD_DARK_RGB)
ZOOM = 1.0  # matplotlib's 3D box zoom, chosen so that the board fills the frame like CubesRenderer


def make_figure(resolution: int = 50) -> Figure:
    """A ``resolution x resolution``-pixel figure with an Agg canvas."""
    fig = Figure(figsize=(1.0, 1.0), dpi=resolution)
    FigureCanvasAgg(fig)
    return fig


def render_voxels_matplotlib(
    cells: np.ndarray,
    grid_size: int = 5,
    resolution: int = 50,
    colours: np.ndarray = CUBE_COLOURS,
    fig: Figure | None = None,
    board: bool = True,
) -> np.ndarray:
    """Draw objects on ``cells`` (``(n, 2)`` (row, col)) with ``ax.voxels``; ``(R, R, 3)`` uint8.

    Row 0 is the far side of the board, as in ``CubesRenderer``; the camera has the same elevation
    and azimuth (matplotlib ``azim = -90 + CAMERA_AZIMUTH``: in front of the board, turned towards
    +x) with a perspective projection. With ``board`` (default) the board is drawn with the same
    ``ax.voxels`` call as a thin checkered slab of ``G x G`` voxels under the objects (the same scene
    as ``CubesRenderer``); ``board=False`` draws the cubes only (less work for matplotlib).
    """
    cells = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
    G = grid_size
    if fig is None:
        fig = make_figure(resolution)
    else:
        fig.clear()
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0), projection="3d")
    # voxel index (x, y, z): x = col, y = G - 1 - row (row 0 at the back); layer 0 is the board
    # (a thin checkered slab, only when ``board``), layer 1 holds the objects
    filled = np.zeros((G, G, 2), dtype=bool)
    facecolors = np.zeros((G, G, 2, 4))
    if board:
        filled[:, :, 0] = True
        xs, ys = np.meshgrid(np.arange(G), np.arange(G), indexing="ij")
        checker = ((xs + (G - 1 - ys)) % 2).astype(int)  # same parity as (row + col)
        facecolors[:, :, 0, :3] = np.asarray(BOARD_COLOURS)[checker]
        facecolors[:, :, 0, 3] = 1.0
    for i, (r, c) in enumerate(cells):
        filled[c, G - 1 - r, 1] = True
        facecolors[c, G - 1 - r, 1, :3] = colours[i]
        facecolors[c, G - 1 - r, 1, 3] = 1.0
    corners = np.meshgrid(np.arange(G + 1.0), np.arange(G + 1.0), [-BOARD_THICKNESS, 0.0, 1.0],
                          indexing="ij")
    ax.voxels(*corners, filled, facecolors=facecolors, edgecolors=(0.0, 0.0, 0.0, 0.25),
              linewidths=0.3, shade=True)
    ax.set_xlim(0, G)
    ax.set_ylim(0, G)
    ax.set_zlim(-BOARD_THICKNESS, 1.0 + BOARD_THICKNESS)
    ax.set_box_aspect((G, G, 1.0 + 2 * BOARD_THICKNESS), zoom=ZOOM)
    ax.view_init(elev=CAMERA_ELEVATION, azim=-90.0 + CAMERA_AZIMUTH)
    ax.set_proj_type("persp", focal_length=0.6)
    ax.set_axis_off()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _frames_per_second(fn, states, min_time: float = 1.0) -> float:
    fn(states[0])
    done, t0 = 0, time.perf_counter()
    while True:
        fn(states[done % len(states)])
        done += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time and done >= 3:
            return done / elapsed


def main() -> None:
    from symwm.envs.cubes_renderer import CubesRenderer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid-size", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=50)
    parser.add_argument("--objects", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    G = args.grid_size
    rng = np.random.default_rng(0)
    states = [np.stack(divmod(rng.choice(G * G, args.objects, replace=False), G), 1)
              for _ in range(1000)]
    renderer = CubesRenderer(G, args.resolution)
    fast = _frames_per_second(renderer.render, states, args.seconds)
    slow = _frames_per_second(
        lambda s: render_voxels_matplotlib(s, G, args.resolution), states, args.seconds)
    fig = make_figure(args.resolution)
    reuse = _frames_per_second(
        lambda s: render_voxels_matplotlib(s, G, args.resolution, fig=fig), states, args.seconds)
    bare = _frames_per_second(
        lambda s: render_voxels_matplotlib(s, G, args.resolution, board=False), states, args.seconds)
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"CubesRenderer.render           : {fast:10.1f} frames/s")
    print(f"matplotlib voxels (new figure) : {slow:10.1f} frames/s  -> speed-up {fast / slow:.0f}x")
    print(f"matplotlib voxels (reused fig) : {reuse:10.1f} frames/s  -> speed-up {fast / reuse:.0f}x")
    print(f"matplotlib voxels (cubes only) : {bare:10.1f} frames/s  -> speed-up {fast / bare:.0f}x")


if __name__ == "__main__":
    main()
