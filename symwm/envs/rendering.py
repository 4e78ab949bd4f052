"""Small numpy rasterisation helpers shared by the environment renderers.

Images are drawn from signed distance functions (SDFs) evaluated at pixel centres, which gives
anti-aliased edges and, because pixel centres are symmetric about the image centre, renderings
that are exactly symmetric under the grid's rotations and reflections whenever the scene is.
"""

from __future__ import annotations

import numpy as np


def pixel_centres(resolution: int, extent: float) -> tuple[np.ndarray, np.ndarray]:
    """World coordinates ``(x, y)`` of the pixel centres of a ``resolution``-square image.

    The image spans ``[-extent, extent]`` on both axes, x to the right and y up (row 0 at the top).
    Both arrays have shape ``(resolution, resolution)``; the grid is exactly symmetric under
    negation and transposition of the coordinates.
    """
    # integer offsets first, scaled once: (2j + 1 - R) is exactly antisymmetric about the centre
    idx = 2.0 * np.arange(resolution) + 1.0 - resolution
    coords = idx * (extent / resolution)
    x = np.broadcast_to(coords[None, :], (resolution, resolution))
    y = np.broadcast_to(-coords[:, None], (resolution, resolution))
    return x, y


def coverage(sdf: np.ndarray, pixel_size: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] from a signed distance (negative inside), one pixel wide."""
    return np.clip(0.5 - sdf / pixel_size, 0.0, 1.0)


def segment_distance(
    px: np.ndarray, py: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Distance from points ``(px, py)`` to the segment from ``a`` to ``b`` (2-vectors)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = np.clip(((px - a[0]) * dx + (py - a[1]) * dy) / max(length2, 1e-12), 0.0, 1.0)
    ex, ey = px - (a[0] + t * dx), py - (a[1] + t * dy)
    return np.sqrt(ex * ex + ey * ey)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] to uint8 [0, 255] with rounding (not truncation)."""
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
