"""``symwm/RushHour-v0``: objects with an orientation that move relative to it.

Each object is a car seen from above, drawn as a coloured body with a pointed nose and a white
windshield towards the front. Actions per object: forward, backward (one cell along or against the
heading; blocked moves are no-ops), turn left, turn right (a quarter turn in place). Rotations of
the grid leave the relative actions unchanged; the reflection swaps turning left and right.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from symwm.envs.grid_world import GridWorldEnv
from symwm.envs.rendering import coverage, pixel_centres, to_uint8
from symwm.envs.shapes2d import PALETTE, paste_sprites


@lru_cache(maxsize=64)
def car_sprites(colour: tuple[float, float, float], cell: int) -> tuple[np.ndarray, ...]:
    """Four ``cell x cell x 3`` uint8 sprites of a car heading up, right, down, left."""
    x, y = pixel_centres(cell, 1.0)
    ax = np.abs(x)
    body = np.maximum(ax - 0.55, np.maximum(-0.85 - y, y - 0.35))
    nose = np.maximum((1.4 * ax + 0.7 * (y - 0.9)) / 1.565, 0.2 - y)
    shape = np.minimum(body, nose)
    windshield = np.maximum(ax - 0.38, np.abs(y - 0.12) - 0.12)
    px = 2.0 / cell
    alpha = coverage(shape, px)[..., None]
    glass = coverage(windshield, px)[..., None]
    up = to_uint8(alpha * ((1.0 - glass) * np.asarray(colour) + glass * 0.95))
    # heading d is the up-sprite turned clockwise d quarter turns
    sprites = tuple(np.ascontiguousarray(np.rot90(up, -d)) for d in range(4))
    for s in sprites:
        s.setflags(write=False)
    return sprites


class RushHourEnv(GridWorldEnv):
    """Rush Hour: oriented cars on a grid, moving forward/backward and turning in place."""

    oriented = True

    def __init__(self, render_mode: str | None = None, **kwargs):
        super().__init__(render_mode=render_mode, **kwargs)
        if self.resolution % self.grid_size:
            raise ValueError(
                f"resolution ({self.resolution}) must be a multiple of grid_size ({self.grid_size}) so that cells are whole pixels"
            )
        self.cell = self.resolution // self.grid_size
        self._sprites = [car_sprites(tuple(PALETTE[i % len(PALETTE)]), self.cell) for i in range(self.n_objects)]

    def _render(self, positions: np.ndarray, orientations: np.ndarray | None) -> np.ndarray:
        sprites = [self._sprites[i][int(o)] for i, o in enumerate(orientations)]
        return paste_sprites(self.resolution, self.cell, positions, sprites)
