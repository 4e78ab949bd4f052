"""Symmetry groups as first-class objects, shared by the environments, the models and the metrics.

Pure numpy (``symwm.envs`` never imports torch). Each group knows how to list or sample its
elements, compose and invert them; the *actions* of a group on states, actions and images are
defined next to the environments (``symwm.envs.symmetry``) and, for images and feature maps, by
:func:`transform_grid` below, which works on numpy arrays and torch tensors alike.

Conventions (used everywhere in symwm):

* ``compose(g, h)`` is ``g . h``: apply ``h`` first, then ``g``.
* Planar rotations are counter-clockwise quarter turns *as seen in an image whose first axis
  points down* (``np.rot90`` with ``k=1``), i.e. counter-clockwise in a world with y pointing up.
* The planar reflection is the mirror across the horizontal axis (world ``y -> -y``, image
  ``flipud``). A dihedral element ``(rotation=k, reflection=m)`` reflects first (if ``m``),
  then rotates by ``k`` quarter turns.
* A permutation ``p`` sends object ``i`` to slot ``p[i]``.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, Iterator, Sequence, TypeVar

import numpy as np

E = TypeVar("E")


class Group(ABC, Generic[E]):
    """A group: identity, composition, inverse, and (for finite groups) its list of elements."""

    name: str = "group"

    @property
    @abstractmethod
    def order(self) -> int | None:
        """Number of elements, or ``None`` for an infinite (Lie) group."""

    @property
    def is_finite(self) -> bool:
        """Whether :meth:`elements` can enumerate the group."""
        return self.order is not None

    @abstractmethod
    def identity(self) -> E:
        """The neutral element."""

    @abstractmethod
    def compose(self, g: E, h: E) -> E:
        """``g . h``: the element that applies ``h`` first, then ``g``."""

    @abstractmethod
    def inverse(self, g: E) -> E:
        """The element ``g^-1`` with ``g . g^-1 = identity``."""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> E:
        """One element drawn uniformly (Haar measure for Lie groups) from ``rng``."""

    @abstractmethod
    def contains(self, g: Any) -> bool:
        """Whether ``g`` is an element of this group (in this group's element type)."""

    def elements(self) -> list[E]:
        """Every element, identity first (finite groups only)."""
        raise TypeError(f"{self.name} is infinite; use sample() instead of elements()")

    def equal(self, g: E, h: E) -> bool:
        """Whether two elements are the same (within float tolerance for Lie groups)."""
        return g == h

    def is_identity(self, g: E) -> bool:
        """Whether ``g`` is the identity."""
        return self.equal(g, self.identity())

    def __iter__(self) -> Iterator[E]:
        return iter(self.elements())

    def __len__(self) -> int:
        if self.order is None:
            raise TypeError(f"{self.name} is infinite and has no len()")
        return self.order

    def __repr__(self) -> str:
        return self.name


# ----------------------------------------------------------------------------------------------
# Planar point groups: C_n and D_n acting on a square grid (n = 4 for the grid's symmetries)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DihedralElement:
    """``rotation`` quarter turns (mod n) counter-clockwise after an optional ``reflection``."""

    rotation: int = 0
    reflection: bool = False

    def __repr__(self) -> str:
        return f"{'s' if self.reflection else ''}r{self.rotation}"


class Dihedral(Group[DihedralElement]):
    """The cyclic group C_n (``reflections=False``) or the dihedral group D_n (``True``)."""

    def __init__(self, n: int = 4, reflections: bool = False):
        if n < 1:
            raise ValueError(f"Dihedral group needs n >= 1, got {n}")
        self.n = int(n)
        self.reflections = bool(reflections)
        self.name = f"{'D' if reflections else 'C'}{n}"

    @property
    def order(self) -> int:
        return self.n * (2 if self.reflections else 1)

    def identity(self) -> DihedralElement:
        return DihedralElement(0, False)

    def compose(self, g: DihedralElement, h: DihedralElement) -> DihedralElement:
        # r^a s^m r^b s^q = r^(a + (-1)^m b) s^(m + q), since s r^b = r^-b s
        sign = -1 if g.reflection else 1
        return DihedralElement((g.rotation + sign * h.rotation) % self.n, g.reflection != h.reflection)

    def inverse(self, g: DihedralElement) -> DihedralElement:
        if g.reflection:  # reflections are involutions: (r^a s)^2 = e
            return g
        return DihedralElement((-g.rotation) % self.n, False)

    def elements(self) -> list[DihedralElement]:
        flips = (False, True) if self.reflections else (False,)
        return [DihedralElement(k, m) for m in flips for k in range(self.n)]

    def sample(self, rng: np.random.Generator) -> DihedralElement:
        k = int(rng.integers(self.n))
        m = bool(rng.integers(2)) if self.reflections else False
        return DihedralElement(k, m)

    def contains(self, g: Any) -> bool:
        return (
            isinstance(g, DihedralElement)
            and 0 <= g.rotation < self.n
            and (self.reflections or not g.reflection)
        )

    def angle(self, g: DihedralElement) -> float:
        """Rotation angle of ``g`` in radians (counter-clockwise)."""
        return 2.0 * np.pi * g.rotation / self.n

    def matrix(self, g: DihedralElement) -> np.ndarray:
        """2x2 orthogonal matrix of ``g`` acting on world coordinates (x right, y up)."""
        c, s = np.cos(self.angle(g)), np.sin(self.angle(g))
        if self.n == 4:  # exact entries for quarter turns
            c, s = float(round(c)), float(round(s))
        rot = np.array([[c, -s], [s, c]])
        return rot @ np.diag([1.0, -1.0]) if g.reflection else rot


# ----------------------------------------------------------------------------------------------
# Permutations of objects
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Permutation:
    """Sends object ``i`` to slot ``perm[i]``."""

    perm: tuple[int, ...]

    def __repr__(self) -> str:
        return f"P{list(self.perm)}"


class Symmetric(Group[Permutation]):
    """The symmetric group S_n of permutations of ``n`` objects."""

    def __init__(self, n: int):
        if n < 1:
            raise ValueError(f"Symmetric group needs n >= 1, got {n}")
        self.n = int(n)
        self.name = f"S{n}"

    @property
    def order(self) -> int:
        return int(np.prod(np.arange(1, self.n + 1)))

    def identity(self) -> Permutation:
        return Permutation(tuple(range(self.n)))

    def compose(self, g: Permutation, h: Permutation) -> Permutation:
        return Permutation(tuple(g.perm[h.perm[i]] for i in range(self.n)))

    def inverse(self, g: Permutation) -> Permutation:
        inv = [0] * self.n
        for i, j in enumerate(g.perm):
            inv[j] = i
        return Permutation(tuple(inv))

    def elements(self) -> list[Permutation]:
        return [Permutation(p) for p in itertools.permutations(range(self.n))]

    def sample(self, rng: np.random.Generator) -> Permutation:
        return Permutation(tuple(int(i) for i in rng.permutation(self.n)))

    def contains(self, g: Any) -> bool:
        return isinstance(g, Permutation) and sorted(g.perm) == list(range(self.n))

    def permute(self, g: Permutation, x: np.ndarray, axis: int = 0) -> np.ndarray:
        """Move entry ``i`` of ``x`` along ``axis`` to position ``g.perm[i]``."""
        return np.take(x, self.inverse(g).perm, axis=axis)


# ----------------------------------------------------------------------------------------------
# Direct products (C4 x S5, D4 x S5)
# ----------------------------------------------------------------------------------------------


class DirectProduct(Group[tuple]):
    """The direct product of groups; elements are tuples with one element per factor."""

    def __init__(self, *factors: Group):
        if len(factors) < 2:
            raise ValueError("DirectProduct needs at least two factors")
        self.factors = tuple(factors)
        self.name = " x ".join(f.name for f in factors)

    @property
    def order(self) -> int | None:
        orders = [f.order for f in self.factors]
        return None if any(o is None for o in orders) else int(np.prod(orders))

    def identity(self) -> tuple:
        return tuple(f.identity() for f in self.factors)

    def compose(self, g: tuple, h: tuple) -> tuple:
        return tuple(f.compose(a, b) for f, a, b in zip(self.factors, g, h))

    def inverse(self, g: tuple) -> tuple:
        return tuple(f.inverse(a) for f, a in zip(self.factors, g))

    def elements(self) -> list[tuple]:
        return [tuple(p) for p in itertools.product(*(f.elements() for f in self.factors))]

    def sample(self, rng: np.random.Generator) -> tuple:
        return tuple(f.sample(rng) for f in self.factors)

    def contains(self, g: Any) -> bool:
        return (
            isinstance(g, tuple)
            and len(g) == len(self.factors)
            and all(f.contains(a) for f, a in zip(self.factors, g))
        )

    def equal(self, g: tuple, h: tuple) -> bool:
        return all(f.equal(a, b) for f, a, b in zip(self.factors, g, h))


# ----------------------------------------------------------------------------------------------
# 3D rotations
# ----------------------------------------------------------------------------------------------


def rotation_from_vector(v: np.ndarray) -> np.ndarray:
    """Rodrigues' formula: the 3x3 rotation by angle ``|v|`` about axis ``v / |v|``."""
    v = np.asarray(v, dtype=np.float64)
    theta = float(np.linalg.norm(v))
    if theta < 1e-12:
        return np.eye(3)
    k = v / theta
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(theta) * kx + (1.0 - np.cos(theta)) * (kx @ kx)


def rotation_to_vector(r: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rotation_from_vector` (angle in [0, pi])."""
    r = np.asarray(r, dtype=np.float64)
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    theta = float(np.arccos(cos))
    if theta < 1e-12:
        return np.zeros(3)
    if np.pi - theta < 1e-6:  # near pi the antisymmetric part vanishes; use the symmetric part
        m = (r + np.eye(3)) / 2.0
        axis = m[int(np.argmax(np.diag(m)))]
        axis = axis / np.linalg.norm(axis)
        return axis * theta
    w = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    return w / (2.0 * np.sin(theta)) * theta


def geodesic_distances(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Angles in radians of the rotations ``r1^T r2``, batched over leading axes ``[..., 3, 3]`` (bi-invariant metric on SO(3))."""
    r = np.swapaxes(np.asarray(r1, dtype=np.float64), -1, -2) @ np.asarray(r2, dtype=np.float64)
    # atan2 of (sin, cos) stays accurate near 0 and pi, where arccos loses half the digits
    w = np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], axis=-1)
    return np.arctan2(np.linalg.norm(w, axis=-1) / 2.0, (np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0)


def geodesic_distance(r1: np.ndarray, r2: np.ndarray) -> float:
    """Angle in radians of the rotation ``r1^T r2`` (the bi-invariant metric on SO(3))."""
    return float(geodesic_distances(r1, r2))


def nearest_rotation(m: np.ndarray) -> np.ndarray:
    """The rotation (det +1) nearest to the 3x3 matrix ``m`` in Frobenius norm (orthogonal Procrustes).

    ``U diag(1, 1, det(U V^T)) V^T`` from ``m = U S V^T``: the sign fix keeps reflections out.
    """
    u, _, vt = np.linalg.svd(np.asarray(m, dtype=np.float64))
    u[:, -1] *= np.sign(np.linalg.det(u @ vt)) or 1.0
    return u @ vt


def is_rotation_matrix(r: Any, atol: float = 1e-6) -> bool:
    """Whether ``r`` is a finite 3x3 orthogonal matrix with determinant +1."""
    r = np.asarray(r)
    return (
        r.shape == (3, 3)
        and np.issubdtype(r.dtype, np.floating)
        and bool(np.all(np.isfinite(r)))
        and np.allclose(r.T @ r, np.eye(3), atol=atol)
        and abs(np.linalg.det(r) - 1.0) < atol
    )


class SO3(Group[np.ndarray]):
    """The rotation group SO(3); elements are 3x3 float64 rotation matrices."""

    name = "SO(3)"

    def __init__(self, atol: float = 1e-9):
        self.atol = atol

    @property
    def order(self) -> None:
        return None

    def identity(self) -> np.ndarray:
        return np.eye(3)

    def compose(self, g: np.ndarray, h: np.ndarray) -> np.ndarray:
        return g @ h

    def inverse(self, g: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(g.T)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        # Haar measure: normalised Gaussian quaternion
        q = rng.standard_normal(4)
        q /= np.linalg.norm(q)
        return quaternion_to_matrix(q)

    def contains(self, g: Any) -> bool:
        return is_rotation_matrix(g)

    def equal(self, g: np.ndarray, h: np.ndarray) -> bool:
        return bool(np.allclose(g, h, atol=self.atol))


class Octahedral(SO3):
    """The 24 rotations of a cube: the finite subgroup of SO(3) that permutes the axes +-x, +-y, +-z."""

    name = "O"

    def __init__(self, atol: float = 1e-9):
        super().__init__(atol)
        mats = []
        for perm in itertools.permutations(range(3)):
            for signs in itertools.product((1.0, -1.0), repeat=3):
                m = np.zeros((3, 3))
                m[list(range(3)), list(perm)] = signs
                if np.linalg.det(m) > 0:
                    mats.append(m)
        mats.sort(key=lambda m: -np.trace(m))  # identity (trace 3) first
        self._elements = mats

    @property
    def order(self) -> int:
        return 24

    def elements(self) -> list[np.ndarray]:
        return [m.copy() for m in self._elements]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self._elements[int(rng.integers(24))].copy()

    def contains(self, g: Any) -> bool:
        return is_rotation_matrix(g) and any(np.allclose(g, m, atol=1e-6) for m in self._elements)


def quaternion_to_matrix(q: Sequence[float]) -> np.ndarray:
    """Rotation matrix of a unit quaternion ``(w, x, y, z)``."""
    w, x, y, z = (float(c) for c in q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


# ----------------------------------------------------------------------------------------------
# The planar action on images and feature maps
# ----------------------------------------------------------------------------------------------


def transform_grid(g: DihedralElement, x: Any, axes: tuple[int, int] = (0, 1)) -> Any:
    """Apply a planar rotation/reflection to an image or feature map.

    ``axes`` are the (row, column) axes of ``x``; works for numpy arrays and torch tensors (the
    positional calls of ``rot90`` and ``flip`` agree). For channel-first batches use ``axes=(-2, -1)``,
    for HWC images the default.
    """
    if g.reflection:
        x = _flip(x, axes[0])
    if g.rotation % 4:
        x = _rot90(x, g.rotation % 4, axes)
    return x


def _flip(x: Any, axis: int) -> Any:
    if isinstance(x, np.ndarray):
        return np.flip(x, axis)
    return x.flip((axis,))  # torch


def _rot90(x: Any, k: int, axes: tuple[int, int]) -> Any:
    if isinstance(x, np.ndarray):
        return np.rot90(x, k, axes)
    return x.rot90(k, axes)  # torch


def grid_cell_transform(g: DihedralElement, cells: np.ndarray, size: int) -> np.ndarray:
    """Move integer (row, col) cells of a ``size x size`` grid as :func:`transform_grid` moves pixels."""
    rc = np.asarray(cells).copy()
    r, c = rc[..., 0].copy(), rc[..., 1].copy()
    if g.reflection:  # flipud: row -> size-1-row
        r = size - 1 - r
    for _ in range(g.rotation % 4):  # np.rot90 k=1: (r, c) -> (size-1-c, r)
        r, c = size - 1 - c, r
    rc[..., 0], rc[..., 1] = r, c
    return rc


def direction_transform(g: DihedralElement, d: np.ndarray | int) -> np.ndarray | int:
    """Map grid directions (0 up, 1 right, 2 down, 3 left) as the grid is transformed by ``g``.

    The reflection across the horizontal axis swaps up and down; a counter-clockwise quarter turn
    maps ``d`` to ``(d - 1) mod 4``.
    """
    d = (2 - d) % 4 if g.reflection else d
    return (d - g.rotation) % 4
