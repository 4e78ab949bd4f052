"""Fast numpy renderer for the 3D Blocks domain: shaded unit cubes on a board, perspective camera.

The paper draws each frame with matplotlib's ``ax.voxels`` (tens of milliseconds per frame). Here
the camera is fixed and positions are discrete, so everything expensive happens once per
``(grid_size, resolution, camera)`` and is cached at module level:

* the board background, ray cast with supersampling;
* for every cell, the sprite of a cube standing on it (anti-aliased coverage and a per-pixel
  shading factor, cropped to its bounding box) and the sprite of its ground shadow.

A frame is then a copy of the background, the shadows multiplied in, and the cube sprites
composited back to front (painter's algorithm) with the shading multiplied by each object's
colour: a few dozen small numpy operations (tens of microseconds at 50x50).

World and camera
----------------
World coordinates are x to the right, y away from the viewer, z up, in units of one cell. The
board's top face is the square ``[-G/2, G/2]^2`` at ``z = 0`` (``G = grid_size``) on a slab
``BOARD_THICKNESS`` deep. Cell ``(row, col)`` is the unit square centred at
``x = col - (G - 1) / 2``, ``y = (G - 1) / 2 - row``, so row 0 is the far edge of the board (the
top of the top-down view, as in :mod:`symwm.envs.groups`), and the grid rotation
``(r, c) -> (G - 1 - c, r)`` is the counter-clockwise quarter turn ``(x, y) -> (-y, x)``.
An object is the unit cube standing on its cell (``0 <= z <= 1``).

The default camera is a pinhole at distance ``CAMERA_DISTANCE * G`` from the board centre
``(0, 0, 0)``, looking at it with elevation ``CAMERA_ELEVATION`` (55 degrees above the board) from
the front (the ``-y`` side, i.e. below row ``G - 1``), turned ``CAMERA_AZIMUTH`` (20 degrees)
towards ``+x``: it stands in front of the board and somewhat to the right, so the image has no
mirror symmetry, near cells look bigger than far ones, and cubes show their top, front and (mostly)
left faces. The image-plane window is fitted so that the whole board and a cube on any cell are in
frame with a small margin. Because of the perspective, rotating the grid by 90 degrees is *not* a
rotation of the image: the group acts on the state, not on the pixels.

Lighting: one directional light from the upper left front (``LIGHT_DIRECTION``) plus ambient;
top faces get shade 1 (they show the pure object colour), front faces about 0.74, left faces about
0.56, right faces 0.3 (ambient only); face edges are slightly darkened. Cubes cast soft-edged
(anti-aliased) shadows onto the board towards the back right.

Depth order: rays from the camera all travel towards ``+y`` (the camera is in front of the board),
so a cube can only hide cubes in farther rows; within a row, rays travel away from the camera's x,
so a cube can only hide cubes farther from it in x. Drawing rows far to near, and within a row the
cubes farther (in x) from the camera first, is therefore an exact painter's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = [
    "CUBE_COLOURS",
    "CAMERA_ELEVATION",
    "CAMERA_AZIMUTH",
    "CAMERA_DISTANCE",
    "LIGHT_DIRECTION",
    "CubesRenderer",
]

#: Ten clearly distinct object colours (RGB in [0, 1]); object ``i`` is drawn in colour ``i``.
CUBE_COLOURS = np.array(
    [
        [0.90, 0.10, 0.10],  # red
        [0.10, 0.70, 0.15],  # green
        [0.15, 0.35, 0.95],  # blue
        [1.00, 0.85, 0.05],  # yellow
        [0.90, 0.20, 0.85],  # magenta
        [0.10, 0.85, 0.90],  # cyan
        [1.00, 0.50, 0.00],  # orange
        [0.45, 0.15, 0.70],  # purple
        [0.50, 0.28, 0.08],  # brown
        [1.00, 0.65, 0.75],  # pink
    ],
    dtype=np.float64,
)

CAMERA_ELEVATION = 55.0  # degrees above the board plane
CAMERA_AZIMUTH = 20.0  # degrees from straight-in-front (-y) towards +x
CAMERA_DISTANCE = 1.6  # distance to the board centre, in units of grid_size
FIT_MARGIN = 0.03  # fraction of the image left empty on each side of the fitted scene
BOARD_THICKNESS = 0.25
LIGHT_DIRECTION = np.array([-0.3, -0.5, 0.8])  # towards the light (upper left front)
AMBIENT = 0.3
EDGE_WIDTH = 0.05  # darkened band along cube edges, in cell units
EDGE_DARKEN = 0.3
SHADOW_STRENGTH = 0.3

BACKGROUND_RGB = (0.93, 0.94, 0.96)
BOARD_LIGHT_RGB = (0.80, 0.78, 0.74)
BOARD_DARK_RGB = (0.72, 0.70, 0.66)
GRID_LINE_RGB = (0.52, 0.50, 0.47)
GRID_LINE_WIDTH = 0.05
BOARD_SIDE_RGB = (0.55, 0.50, 0.44)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera with its image-plane window fitted to a resolution.

    A point ``p`` maps to pixel coordinates ``(u, v)`` (``u`` along columns, ``v`` along rows, pixel
    ``(i, j)`` covers ``[j, j + 1] x [i, i + 1]``) by ``a = (p - eye).right / (p - eye).forward``,
    ``b = (p - eye).up / (p - eye).forward``, ``u = R / 2 + (a - a0) * scale``,
    ``v = R / 2 - (b - b0) * scale``.
    """

    eye: np.ndarray
    forward: np.ndarray
    right: np.ndarray
    up: np.ndarray
    a0: float
    b0: float
    scale: float
    resolution: int

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates ``(..., 2)`` = ``(u, v)`` (column, row) of world points ``(..., 3)``."""
        q = np.asarray(points, dtype=np.float64) - self.eye
        depth = q @ self.forward
        a = (q @ self.right) / depth
        b = (q @ self.up) / depth
        half = self.resolution / 2.0
        return np.stack([half + (a - self.a0) * self.scale, half - (b - self.b0) * self.scale], -1)

    def rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Unnormalised ray directions ``(..., 3)`` through pixel coordinates ``(u, v)``."""
        half = self.resolution / 2.0
        a = self.a0 + (np.asarray(u) - half) / self.scale
        b = self.b0 - (np.asarray(v) - half) / self.scale
        return self.forward + a[..., None] * self.right + b[..., None] * self.up


def _make_camera(
    grid_size: int, resolution: int, elevation: float, azimuth: float, distance: float
) -> Camera:
    el, az = np.deg2rad(elevation), np.deg2rad(azimuth)
    back = np.array([np.cos(el) * np.sin(az), -np.cos(el) * np.cos(az), np.sin(el)])
    eye = distance * grid_size * back
    forward = -back
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    # fit the window to the board slab and to cubes on the corner cells
    h = grid_size / 2.0
    corners = np.array([[sx * h, sy * h, z] for sx in (-1, 1) for sy in (-1, 1)
                        for z in (-BOARD_THICKNESS, 0.0, 1.0)])
    q = corners - eye
    depth = q @ forward
    if np.any(depth <= 0.0):
        raise ValueError("camera too close: part of the scene is behind it")
    a, b = (q @ right) / depth, (q @ up) / depth
    span = max(a.max() - a.min(), b.max() - b.min())
    scale = resolution * (1.0 - 2.0 * FIT_MARGIN) / span
    return Camera(eye, forward, right, up, 0.5 * (a.max() + a.min()), 0.5 * (b.max() + b.min()),
                  float(scale), int(resolution))


def _ray_box(eye: np.ndarray, dirs: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Slab test of rays ``eye + t * dirs`` against the box ``[lo, hi]``.

    Returns ``hit`` (bool), entry ``t`` and the entry axis (0, 1, 2) for each ray.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dirs
        t1 = (lo - eye) * inv
        t2 = (hi - eye) * inv
    tmin = np.where(np.isnan(t1), -np.inf, np.minimum(t1, t2))
    tmax = np.where(np.isnan(t1), np.inf, np.maximum(t1, t2))
    t_near = tmin.max(axis=-1)
    t_far = tmax.min(axis=-1)
    hit = (t_near <= t_far) & (t_far > 0.0) & (t_near > 0.0)
    return hit, t_near, tmin.argmax(axis=-1)


def _supersample_grid(r0: int, r1: int, c0: int, c1: int, ss: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample coordinates ``(u, v)`` of shape ``(rows, cols, ss * ss)`` for pixels in a box."""
    offs = (np.arange(ss) + 0.5) / ss
    v = (np.arange(r0, r1)[:, None] + offs[None, :])  # (rows, ss)
    u = (np.arange(c0, c1)[:, None] + offs[None, :])  # (cols, ss)
    vv = np.broadcast_to(v[:, None, :, None], (r1 - r0, c1 - c0, ss, ss))
    uu = np.broadcast_to(u[None, :, None, :], (r1 - r0, c1 - c0, ss, ss))
    shape = (r1 - r0, c1 - c0, ss * ss)
    return uu.reshape(shape), vv.reshape(shape)


def _bbox(pixels: np.ndarray, resolution: int) -> tuple[int, int, int, int]:
    """Pixel box ``(r0, r1, c0, c1)`` covering projected points, one pixel of padding, clipped."""
    c0 = max(int(np.floor(pixels[:, 0].min())) - 1, 0)
    c1 = min(int(np.ceil(pixels[:, 0].max())) + 1, resolution)
    r0 = max(int(np.floor(pixels[:, 1].min())) - 1, 0)
    r1 = min(int(np.ceil(pixels[:, 1].max())) + 1, resolution)
    return r0, r1, c0, c1


def _face_shades() -> np.ndarray:
    """Shade of the faces with outward normals -x, +x, -y, +y, -z, +z (top face = 1)."""
    light = LIGHT_DIRECTION / np.linalg.norm(LIGHT_DIRECTION)
    normals = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], float)
    lambert = np.clip(normals @ light, 0.0, None) / light[2]
    return np.clip(AMBIENT + (1.0 - AMBIENT) * lambert, 0.0, 1.0)


@dataclass
class _Tables:
    camera: Camera
    background: np.ndarray  # (R, R, 3) float32 in [0, 255]
    # per flat cell index: (row slice, col slice, keep = 1 - alpha, alpha * shade)
    sprites: list
    # per flat cell index: (row slice, col slice, multiplicative shadow factor)
    shadows: list
    rank: list  # painter's rank per flat cell index (lower = drawn first)


_CACHE: dict[tuple, _Tables] = {}


def _supersampling(resolution: int) -> int:
    return 8 if resolution <= 64 else (6 if resolution <= 128 else 4)


def _build_tables(grid_size: int, resolution: int, elevation: float, azimuth: float,
                  distance: float) -> _Tables:
    G, R = grid_size, resolution
    cam = _make_camera(G, R, elevation, azimuth, distance)
    eye = cam.eye
    h = G / 2.0
    if not eye[1] < -h or not eye[2] > 1.0:
        raise ValueError("the camera must be in front of the board (y < -G/2) and above the cubes")
    ss = _supersampling(R)
    light = LIGHT_DIRECTION / np.linalg.norm(LIGHT_DIRECTION)
    shades = _face_shades()

    # ---- background: board slab (checker + grid lines on top, shaded sides) on a plain backdrop
    u, v = _supersample_grid(0, R, 0, R, ss)
    dirs = cam.rays(u, v)
    hit, t, axis = _ray_box(eye, dirs, np.array([-h, -h, -BOARD_THICKNESS]), np.array([h, h, 0.0]))
    p = eye + t[..., None] * dirs
    top = hit & (axis == 2)
    colour = np.empty(u.shape + (3,))
    colour[:] = BACKGROUND_RGB
    # sides: the face with outward normal opposite to the ray along the entry axis
    side = hit & ~top
    face = 2 * axis + (np.take_along_axis(dirs, axis[..., None], -1)[..., 0] < 0)
    colour[side] = np.asarray(BOARD_SIDE_RGB) * shades[face[side]][:, None]
    col = np.clip(np.floor(p[..., 0] + h), 0, G - 1)
    row = np.clip(np.floor(h - p[..., 1]), 0, G - 1)
    checker = ((col + row) % 2 == 0)[..., None]
    board = np.where(checker, BOARD_LIGHT_RGB, BOARD_DARK_RGB)
    fx = p[..., 0] + h
    fy = p[..., 1] + h
    line_dist = np.minimum(np.abs(fx - np.round(fx)), np.abs(fy - np.round(fy)))
    on_line = (line_dist < GRID_LINE_WIDTH / 2.0)[..., None]
    board = np.where(on_line, GRID_LINE_RGB, board)
    colour[top] = board[top]
    background = (colour.mean(axis=2) * 255.0).astype(np.float32)

    # ---- per cell: cube sprite and shadow sprite
    sprites, shadows, keys = [], [], []
    unit = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
    for r in range(G):
        for c in range(G):
            lo = np.array([c - h, h - r - 1.0, 0.0])
            hi = lo + 1.0
            keys.append((r, -abs(lo[0] + 0.5 - eye[0])))
            # cube: ray cast the box, shade the entry face, darken near its edges
            r0, r1, c0, c1 = _bbox(cam.project(lo + unit), R)
            u, v = _supersample_grid(r0, r1, c0, c1, ss)
            dirs = cam.rays(u, v)
            hit, t, axis = _ray_box(eye, dirs, lo, hi)
            p = eye + t[..., None] * dirs
            face = 2 * axis + (np.take_along_axis(dirs, axis[..., None], -1)[..., 0] < 0)
            shade = shades[face]
            # distance to the nearest edge of the entry face (the two in-plane coordinates)
            d_edge = np.minimum(p - lo, hi - p)
            np.put_along_axis(d_edge, axis[..., None], np.inf, -1)
            edge = d_edge.min(axis=-1) < EDGE_WIDTH
            shade = shade * np.where(edge, 1.0 - EDGE_DARKEN, 1.0)
            alpha = hit.mean(axis=-1)
            premult = np.where(hit, shade, 0.0).mean(axis=-1)
            sl = (slice(r0, r1), slice(c0, c1))
            sprites.append((sl[0], sl[1], (1.0 - alpha)[..., None].astype(np.float32),
                            premult[..., None].astype(np.float32)))
            # shadow: board-top points from which a ray towards the light hits the cube
            foot = lo + unit
            cast = foot - (foot[:, 2:3] / light[2]) * light  # top corners projected to z = 0
            r0, r1, c0, c1 = _bbox(cam.project(np.concatenate([foot, cast])), R)
            u, v = _supersample_grid(r0, r1, c0, c1, ss)
            dirs = cam.rays(u, v)
            tg = -eye[2] / dirs[..., 2]
            g = eye + tg[..., None] * dirs
            on_board = (np.abs(g[..., 0]) <= h) & (np.abs(g[..., 1]) <= h)
            shit, _, _ = _ray_box(g - 1e-9 * light, np.broadcast_to(light, g.shape), lo, hi)
            cover = (shit & on_board).mean(axis=-1)
            factor = 1.0 - SHADOW_STRENGTH * cover
            shadows.append((slice(r0, r1), slice(c0, c1), factor[..., None].astype(np.float32)))
    order = sorted(range(G * G), key=lambda i: keys[i])
    rank = [0] * (G * G)
    for k, i in enumerate(order):
        rank[i] = k
    return _Tables(cam, background, sprites, shadows, rank)


def _tables(grid_size: int, resolution: int, elevation: float, azimuth: float,
            distance: float) -> _Tables:
    key = (grid_size, resolution, float(elevation), float(azimuth), float(distance))
    tables = _CACHE.get(key)
    if tables is None:
        tables = _CACHE[key] = _build_tables(*key)
    return tables


class CubesRenderer:
    """Renders object positions on a ``grid_size`` board as ``resolution``-square RGB images.

    Args:
        grid_size: board side in cells (3..10 tested; any size >= 1 works).
        resolution: image side in pixels.
        colours: ``(n, 3)`` float RGB in [0, 1], the colour table (default :data:`CUBE_COLOURS`).
        elevation, azimuth, distance: camera (see the module docstring); the defaults are the
            domain's camera. Precomputed tables are shared by all renderers with equal arguments.

    ``render(cells)`` draws object ``i`` (a unit cube) on cell ``cells[i] = (row, col)`` in colour
    ``colours[colour_ids[i]]`` (``colour_ids`` defaults to ``0..n-1``).
    """

    def __init__(
        self,
        grid_size: int = 5,
        resolution: int = 50,
        colours: np.ndarray | Sequence[Sequence[float]] | None = None,
        elevation: float = CAMERA_ELEVATION,
        azimuth: float = CAMERA_AZIMUTH,
        distance: float = CAMERA_DISTANCE,
    ):
        if grid_size < 1 or resolution < 1:
            raise ValueError(f"need grid_size >= 1 and resolution >= 1, got {grid_size}, {resolution}")
        self.grid_size = int(grid_size)
        self.resolution = int(resolution)
        colours = CUBE_COLOURS if colours is None else np.asarray(colours, dtype=np.float64)
        if colours.ndim != 2 or colours.shape[1] != 3:
            raise ValueError(f"colours must have shape (n, 3), got {colours.shape}")
        self.colours = colours.copy()
        self._colours255 = [np.asarray(c * 255.0, dtype=np.float32) for c in np.clip(colours, 0, 1)]
        self._t = _tables(self.grid_size, self.resolution, elevation, azimuth, distance)
        self.camera = self._t.camera

    @property
    def background(self) -> np.ndarray:
        """The empty board as a ``(R, R, 3)`` uint8 image."""
        return (self._t.background + 0.5).astype(np.uint8)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates ``(..., 2)`` = (column, row) of world points ``(..., 3)``."""
        return self.camera.project(points)

    def cell_centres(self, cells: np.ndarray, height: float = 0.0) -> np.ndarray:
        """World coordinates ``(n, 3)`` of the centres of cells ``(n, 2)`` at height ``height``."""
        cells = np.asarray(cells, dtype=np.float64).reshape(-1, 2)
        off = (self.grid_size - 1) / 2.0
        return np.stack([cells[:, 1] - off, off - cells[:, 0], np.full(len(cells), height)], -1)

    def render(self, cells: np.ndarray, colour_ids: np.ndarray | Sequence[int] | None = None) -> np.ndarray:
        """The ``(resolution, resolution, 3)`` uint8 image of objects on ``cells`` (``(n, 2)`` ints)."""
        G = self.grid_size
        cl = np.asarray(cells).reshape(-1, 2).tolist()
        n = len(cl)
        ids = list(range(n)) if colour_ids is None else [int(i) for i in np.asarray(colour_ids).ravel()]
        if len(ids) != n:
            raise ValueError(f"got {len(ids)} colour ids for {n} objects")
        flat = []
        for r, c in cl:
            if not (0 <= r < G and 0 <= c < G):
                raise ValueError(f"cell {(r, c)} is outside the {G}x{G} grid")
            flat.append(int(r) * G + int(c))
        t = self._t
        rank = t.rank
        order = sorted(range(n), key=lambda i: rank[flat[i]])
        img = t.background.copy()
        shadows, sprites, palette = t.shadows, t.sprites, self._colours255
        for i in order:
            rs, cs, factor = shadows[flat[i]]
            img[rs, cs] *= factor
        for i in order:
            rs, cs, keep, premult = sprites[flat[i]]
            sub = img[rs, cs]
            sub *= keep
            sub += premult * palette[ids[i]]
        img += 0.5
        return img.astype(np.uint8)
