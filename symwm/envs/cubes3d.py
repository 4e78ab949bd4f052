"""``symwm/Cubes3D-v0``: the paper's 3D Blocks domain.

Same dynamics and symmetry as :mod:`symwm.envs.shapes2d`, but each object is a shaded unit cube
seen by a fixed oblique perspective camera (:mod:`symwm.envs.cubes_renderer`). A quarter turn of
the grid is therefore *not* a rotation of the image: the action of the group on pixels is unknown
to the model, which is exactly the setting a symmetric embedding network is for.
"""

from __future__ import annotations

import numpy as np

from symwm.envs.cubes_renderer import CubesRenderer
from symwm.envs.grid_world import GridWorldEnv


class Cubes3DEnv(GridWorldEnv):
    """3D Blocks: coloured cubes on a board, oblique perspective view, one cube per grid cell."""

    def __init__(self, render_mode: str | None = None, **kwargs):
        super().__init__(render_mode=render_mode, **kwargs)
        self.renderer = CubesRenderer(grid_size=self.grid_size, resolution=self.resolution)

    def _render(self, positions: np.ndarray, orientations: np.ndarray | None) -> np.ndarray:
        return self.renderer.render(positions)
