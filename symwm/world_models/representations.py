"""Representations of an environment's group read off the environment, as escnn representations.

The models never hard-code how the group acts on actions or on pixel positions: they read it
off the environment and turn it into escnn field types here.

* A permutation action (pixels of a map under quarter turns, discrete actions under
  ``act_on_action``) splits into orbits; each orbit becomes one field (:func:`permutation_fields`).
* A linear action on ``Box`` actions is recovered from ``act_on_action`` on the basis vectors and
  checked to be linear and orthogonal (:func:`linear_action_representation`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from escnn import group as egroup


def _digest(mats: dict[Any, np.ndarray], G: egroup.Group) -> str:
    return hashlib.sha1(b"".join(np.ascontiguousarray(mats[h], dtype=np.float64).round(9).tobytes() for h in G.elements)).hexdigest()[:12]


def escnn_representation(G: egroup.Group, mats: dict[Any, np.ndarray], prefix: str) -> egroup.Representation:
    """The escnn representation of the finite group ``G`` with exactly the matrices ``mats`` (escnn element -> matrix)."""
    name = f"{prefix}{next(iter(mats.values())).shape[0]}_{_digest(mats, G)}"
    if name in G.representations:
        return G.representations[name]
    rep = egroup.representation.build_from_discrete_group_representation(
        {h: np.asarray(m, dtype=np.float64) for h, m in mats.items()}, name, G, ["pointwise"]
    )
    assert all(np.allclose(rep(h), m, atol=1e-9) for h, m in mats.items())
    return rep


def _orbit_representation(G: egroup.Group, mats: dict[Any, np.ndarray]) -> egroup.Representation:
    """The escnn representation with exactly the permutation matrices ``mats`` (element -> matrix)."""
    size = next(iter(mats.values())).shape[0]
    if size == 1:
        return G.trivial_representation
    reg = G.regular_representation
    if size == G.order() and all(np.allclose(m, reg(h), atol=1e-9) for h, m in mats.items()):
        return reg
    return escnn_representation(G, mats, "symwm_perm")


def permutation_fields(
    G: egroup.Group, maps: dict[Any, np.ndarray]
) -> tuple[np.ndarray, list[egroup.Representation]]:
    """Split a permutation action into orbits: ``(order, reps)``.

    ``order`` lists the points orbit by orbit (points ``h . p0`` in escnn element order, first
    occurrences), so that ``x[order]`` is a vector of fields of types ``reps``; a free orbit is
    escnn's regular representation, a fixed point the trivial one, others are built numerically.
    """
    n = len(next(iter(maps.values())))
    seen = np.zeros(n, dtype=bool)
    order: list[int] = []
    reps: list[egroup.Representation] = []
    cache: dict[bytes, egroup.Representation] = {}
    for p0 in range(n):
        if seen[p0]:
            continue
        orbit: list[int] = []
        for h in G.elements:
            q = int(maps[h][p0])
            if q not in orbit:
                orbit.append(q)
        slot = {q: k for k, q in enumerate(orbit)}
        mats = {}
        for h in G.elements:
            m = np.zeros((len(orbit), len(orbit)), dtype=np.int64)
            for k, q in enumerate(orbit):
                m[slot[int(maps[h][q])], k] = 1  # point q moves to maps[h][q]
            mats[h] = m
        key = b"".join(mats[h].tobytes() for h in G.elements)
        if key not in cache:
            cache[key] = _orbit_representation(G, mats)
        reps.append(cache[key])
        order.extend(orbit)
        seen[orbit] = True
    return np.asarray(order, dtype=np.int64), reps


def discrete_action_maps(act_on_action: Any, elements: dict[Any, Any], n_actions: int) -> dict[Any, np.ndarray]:
    """For every escnn element ``h`` (mapped to the env's element ``elements[h]``): ``p[a]`` = the action ``a`` becomes.

    Checked to be a permutation of ``range(n_actions)``, with a clear error otherwise.
    """
    maps = {}
    for h, g in elements.items():
        p = np.array([int(act_on_action(g, a)) for a in range(n_actions)])
        if sorted(p.tolist()) != list(range(n_actions)):
            raise ValueError(f"act_on_action({g!r}, .) does not permute the {n_actions} actions: {p.tolist()}")
        maps[h] = p
    return maps


def object_motion_maps(
    act_on_action: Any, planar: Any, elements: dict[Any, Any], permutations: Any, n_actions: int
) -> dict[Any, np.ndarray]:
    """Object-factored actions ``a = M * object + motion`` (``M = n_actions / K``): for every escnn element
    ``h`` (the planar element ``elements[h]``), ``p[j]`` = the motion that motion ``j`` becomes.

    Read off ``act_on_action`` on ``(planar element, permutation)`` pairs and checked, with a clear
    error naming the element that breaks the layout: a planar element keeps every action with its
    object and moves the motions of every object alike; a permutation (checked on the adjacent
    transpositions, which generate S_K) moves object ``i``'s actions to object ``perm[i]``'s, motions
    unchanged.
    """
    k = int(permutations.n)
    if n_actions % k:
        raise ValueError(f"{n_actions} actions do not split into equal blocks for {k} objects (a = M * object + motion)")
    m = n_actions // k
    actions = np.arange(n_actions)
    ident = permutations.identity()
    maps = {}
    for h, s in elements.items():
        p = np.array([int(act_on_action((s, ident), int(a))) for a in actions])
        if not (p // m == actions // m).all():
            raise ValueError(f"act_on_action(({s!r}, identity), .) moves actions between objects: not a = {m} * object + motion")
        motions = p.reshape(k, m) % m
        if not (motions == motions[0]).all() or sorted(motions[0].tolist()) != list(range(m)):
            raise ValueError(f"act_on_action(({s!r}, identity), .) does not permute every object's {m} motions alike: {motions.tolist()}")
        maps[h] = motions[0]
    for i in range(k - 1):
        swap = list(range(k))
        swap[i], swap[i + 1] = i + 1, i
        perm = type(ident)(tuple(swap))
        p = np.array([int(act_on_action((planar.identity(), perm), int(a))) for a in actions])
        want = np.array(swap)[actions // m] * m + actions % m
        if not (p == want).all():
            raise ValueError(f"act_on_action((identity, {perm!r}), .) does not move object i's actions to object perm[i]'s: {p.tolist()}")
    return maps


def linear_action_representation(
    act_on_action: Any, elements: dict[Any, Any], dim: int, G: egroup.Group, scale: float = 1.0, seed: int = 0, tol: float = 1e-6
) -> egroup.Representation:
    """The linear representation ``A(g)`` with ``act_on_action(g, x) = A(g) x`` on ``Box`` actions, as escnn's.

    ``A(g)``'s columns are the images of ``scale`` times the basis vectors (``scale`` keeps them
    inside the action box); linearity is checked on random actions, and ``A`` must be orthogonal
    (escnn's fields are orthogonal representations). Raises ``ValueError`` naming the first failure.
    """
    rng = np.random.default_rng(seed)
    mats = {}
    for h, g in elements.items():
        a = np.stack([np.asarray(act_on_action(g, scale * e), dtype=np.float64) for e in np.eye(dim)], axis=1) / scale
        for _ in range(3):
            x = rng.uniform(-scale, scale, dim) / dim
            got = np.asarray(act_on_action(g, x), dtype=np.float64)
            if not np.allclose(got, a @ x, atol=tol):
                raise ValueError(f"act_on_action({g!r}, .) is not linear on the actions: {x.tolist()} -> {got.tolist()}, A x = {(a @ x).tolist()}")
        if not np.allclose(a @ a.T, np.eye(dim), atol=tol):
            raise ValueError(f"act_on_action({g!r}, .) is linear but not orthogonal ({a.round(6).tolist()}); express the actions in an orthonormal basis")
        mats[h] = a
    for h1 in G.elements:  # a representation: A(g1 g2) = A(g1) A(g2)
        for h2 in G.elements:
            if not np.allclose(mats[h1 @ h2], mats[h1] @ mats[h2], atol=tol):
                raise ValueError("act_on_action is not a group action on the actions: A(g h) != A(g) A(h)")
    return escnn_representation(G, mats, "symwm_linear")
