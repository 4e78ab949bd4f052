"""``symwm/Shapes2D-v0``: the paper's 2D Shapes domain, objects seen top-down as coloured shapes.

Each object is drawn in its own colour and shape inside its grid cell. Shapes are rendered from
signed distance functions at pixel centres (:mod:`symwm.envs.rendering`), so a shape that is
symmetric under the grid's rotations (square, circle, cross, diamond, ring) is drawn exactly
symmetrically, pixel for pixel. The default shape list includes a triangle, which is not
rotation-symmetric: a rotated scene is then not the rotated image of the scene.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from symwm.envs.grid_world import GridWorldEnv
from symwm.envs.rendering import coverage, pixel_centres, to_uint8

#: ten clearly distinct colours (RGB in [0, 1]); object i gets colour i
PALETTE = np.array(
    [
        [0.90, 0.10, 0.10],  # red
        [0.10, 0.60, 0.95],  # blue
        [0.15, 0.80, 0.20],  # green
        [0.95, 0.80, 0.10],  # yellow
        [0.75, 0.25, 0.90],  # purple
        [0.95, 0.50, 0.05],  # orange
        [0.10, 0.85, 0.80],  # cyan
        [0.95, 0.45, 0.70],  # pink
        [0.55, 0.35, 0.15],  # brown
        [0.85, 0.85, 0.85],  # light grey
    ]
)


def _shape_sdf(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) of a shape in the cell's unit square [-1, 1]^2."""
    ax, ay = np.abs(x), np.abs(y)
    if name == "square":
        return np.maximum(ax, ay) - 0.7
    if name == "circle":
        return np.sqrt(x * x + y * y) - 0.8
    if name == "diamond":
        return (ax + ay - 0.95) / np.sqrt(2.0)
    if name == "cross":
        return np.minimum(np.maximum(ax - 0.9, ay - 0.32), np.maximum(ax - 0.32, ay - 0.9))
    if name == "ring":
        return np.abs(np.sqrt(x * x + y * y) - 0.62) - 0.24
    if name == "triangle":  # apex up: symmetric under left-right mirroring only
        slanted = (1.5 * ax + 0.8 * (y - 0.8)) / 1.7
        return np.maximum(-0.7 - y, slanted)
    raise ValueError(f"unknown shape {name!r}; known: {list(SHAPES)}")


SHAPES = ("triangle", "square", "circle", "cross", "diamond", "ring")
#: shapes whose drawing is invariant under every element of D4 (used by pixel-symmetry tests)
SYMMETRIC_SHAPES = ("square", "circle", "cross", "diamond", "ring")


@lru_cache(maxsize=64)
def shape_sprite(name: str, colour: tuple[float, float, float], cell: int) -> np.ndarray:
    """A ``cell x cell x 3`` uint8 sprite of a shape in a colour on black."""
    x, y = pixel_centres(cell, 1.0)
    alpha = coverage(_shape_sdf(name, x, y), 2.0 / cell)
    sprite = to_uint8(alpha[..., None] * np.asarray(colour))
    sprite.setflags(write=False)
    return sprite


def paste_sprites(resolution: int, cell: int, positions: np.ndarray, sprites: Sequence[np.ndarray]) -> np.ndarray:
    """Black canvas with ``sprites[i]`` in the cell ``positions[i]`` (cells never overlap)."""
    canvas = np.zeros((resolution, resolution, 3), dtype=np.uint8)
    offset = (resolution - cell * (resolution // cell)) // 2
    for (r, c), sprite in zip(positions.tolist(), sprites):
        r0, c0 = offset + r * cell, offset + c * cell
        canvas[r0 : r0 + cell, c0 : c0 + cell] = sprite
    return canvas


class Shapes2DEnv(GridWorldEnv):
    """2D Shapes: objects drawn top-down as distinct coloured shapes, one per grid cell.

    ``shapes``: shape names cycled over the objects (default starts with the asymmetric triangle);
    pass ``SYMMETRIC_SHAPES`` for a scene whose images rotate exactly with the grid.
    """

    def __init__(self, render_mode: str | None = None, shapes: Sequence[str] = SHAPES, **kwargs):
        super().__init__(render_mode=render_mode, **kwargs)
        if isinstance(shapes, str) or not len(shapes):
            raise ValueError(f"shapes must be a non-empty sequence of names from {list(SHAPES)}, got {shapes!r}")
        unknown = [s for s in shapes if s not in SHAPES]
        if unknown:
            raise ValueError(f"unknown shape(s) {unknown}; known: {list(SHAPES)}")
        if self.resolution % self.grid_size:
            raise ValueError(
                f"resolution ({self.resolution}) must be a multiple of grid_size ({self.grid_size}) so that cells are whole pixels"
            )
        self.shapes = tuple(shapes[i % len(shapes)] for i in range(self.n_objects))
        self.cell = self.resolution // self.grid_size
        self._sprites = [
            shape_sprite(s, tuple(PALETTE[i % len(PALETTE)]), self.cell) for i, s in enumerate(self.shapes)
        ]

    def _render(self, positions: np.ndarray, orientations: np.ndarray | None) -> np.ndarray:
        return paste_sprites(self.resolution, self.cell, positions, self._sprites)
