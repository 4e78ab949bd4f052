"""Discrete-action planners: batched beam search and breadth-first search over a :class:`Dynamics`.

Both grow a search tree level by level; every expansion of a level (all actions of all kept
nodes) is one batched ``dynamics.step`` call. The score of an action sequence is its distance to
the goal at the best step along it, so the planner returns the path to the best node of the whole
tree; nodes whose distance is within ``tie_tolerance`` of the best count as ties, and the shallowest
of them wins (short solutions first).

* :class:`BeamSearch` keeps the ``width`` nodes nearest the goal at each level.
* :class:`BreadthFirstSearch` keeps every node (exhaustive: ``A^depth`` sequences, e.g. 8000 for
  20 actions and depth 3).

With ``dedupe=True`` a node whose features lie within ``dynamics.dedupe_tolerance`` (squared
distance) of a node met earlier (an ancestor level or a better node of the same level) is dropped:
exact duplicate removal for the simulator (graph search instead of tree search), approximate
for latents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from symwm.agents.dynamics import Dynamics


@dataclass
class Plan:
    """A planner's answer: the action sequence, its score and how much was searched."""

    actions: np.ndarray
    """int64 ``[h]`` (discrete) or float32 ``[h, A]`` (continuous)"""
    score: float
    """distance to the goal at the best step (search) or the sequence cost (sampling planners)"""
    evaluated: int
    """number of dynamics steps evaluated"""
    info: dict[str, Any] = field(default_factory=dict)


def novel_mask(candidates: torch.Tensor, seen: torch.Tensor | None, tolerance: float, chunk: int = 2048) -> torch.Tensor:
    """Which rows of ``candidates`` ``[N, F]`` (best first) are no duplicate of ``seen`` ``[M, F]`` or an earlier row.

    ``tolerance == 0``: exact duplicates only (hashing); otherwise squared Euclidean distance at or
    below ``tolerance``, computed in chunks. Returns bool ``[N]``.
    """
    n = candidates.shape[0]
    if tolerance <= 0.0:
        keep = torch.ones(n, dtype=torch.bool)
        known: set[bytes] = set() if seen is None else {row.tobytes() for row in seen.numpy()}
        for i, row in enumerate(candidates.numpy()):
            key = row.tobytes()
            if key in known:
                keep[i] = False
            else:
                known.add(key)
        return keep
    keep = torch.ones(n, dtype=torch.bool)
    for start in range(0, n, chunk):
        block = candidates[start : start + chunk]  # [C, F]
        d_self = torch.cdist(block, candidates[: start + block.shape[0]]).pow_(2)  # [C, start + C]
        earlier = torch.ones_like(d_self, dtype=torch.bool).tril_(start - 1)  # column j < row index
        dup = ((d_self <= tolerance) & earlier).any(1)
        if seen is not None and seen.shape[0]:
            for s0 in range(0, seen.shape[0], chunk):
                dup |= (torch.cdist(block, seen[s0 : s0 + chunk]).pow_(2) <= tolerance).any(1)
        keep[start : start + block.shape[0]] = ~dup
    return keep


@dataclass
class BeamSearch:
    """Batched beam search: ``width`` nodes per level, ``depth`` levels."""

    width: int | None = 32
    """nodes kept per level (None: all, i.e. breadth-first search)"""
    depth: int = 4
    """levels (sequence length)"""
    dedupe: bool = True
    """drop nodes that duplicate one met before (see module docstring)"""
    tie_tolerance: float = 0.0
    """distances within this of the best count as ties; the shortest sequence wins"""
    max_nodes: int = 200_000
    """refuse searches that would expand more nodes in one level"""

    def __post_init__(self) -> None:
        if self.width is not None and (not isinstance(self.width, int) or self.width < 1):
            raise ValueError(f"width must be a positive int or None, got {self.width!r}")
        if not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"depth must be a positive int, got {self.depth!r}")
        if self.tie_tolerance < 0:
            raise ValueError(f"tie_tolerance must be >= 0, got {self.tie_tolerance!r}")

    def plan(
        self, dynamics: Dynamics, root: Any, goal: Any, init: Any = None, exclude_first: Sequence[int] = ()
    ) -> Plan:
        """The best action sequence from ``root`` towards ``goal`` (``init`` is ignored).

        ``exclude_first``: actions not to start with (e.g. seen to do nothing from this observation).
        """
        if not dynamics.discrete:
            raise ValueError(f"{type(self).__name__} needs a discrete action space, got {dynamics.action_space}")
        all_actions = dynamics.action_ids()  # [A]
        first = all_actions[~torch.isin(all_actions, torch.as_tensor(list(exclude_first), dtype=torch.int64))]
        if first.numel() == 0:
            first = all_actions
        states, seqs = root, torch.zeros(1, 0, dtype=torch.int64)  # seqs: [N, t]
        seen = dynamics.features(root) if self.dedupe else None
        level_best: list[tuple[float, torch.Tensor]] = []
        evaluated = 0
        for level in range(self.depth):
            actions = first if level == 0 else all_actions
            n_actions = actions.shape[0]
            n = seqs.shape[0]
            if n * n_actions > self.max_nodes:
                raise ValueError(
                    f"{type(self).__name__} would expand {n * n_actions} nodes in one level (max_nodes={self.max_nodes}); "
                    "lower depth or set a width"
                )
            parent = torch.arange(n).repeat_interleave(n_actions)  # [N*A]
            acts = actions.repeat(n)  # [N*A]
            children = dynamics.step(dynamics.take(states, parent), acts)
            evaluated += int(parent.shape[0])
            dist = dynamics.distance(children, goal)  # [N*A] float64
            order = torch.argsort(dist, stable=True)
            if self.dedupe:
                feats = dynamics.features(children)[order]
                keep = novel_mask(feats, seen, dynamics.dedupe_tolerance)
                order = order[keep]
                if order.numel() == 0:
                    break
            if self.width is not None:
                order = order[: self.width]
            new_seqs = torch.cat([seqs[parent], acts[:, None]], dim=1)[order]  # [N', t+1]
            level_best.append((float(dist[order[0]]), new_seqs[0]))
            states, seqs = dynamics.take(children, order), new_seqs
            if self.dedupe:
                seen = torch.cat([seen, dynamics.features(states)])
            if level_best[-1][0] <= 0.0:  # at the goal: nothing deeper can be shorter
                break
        if not level_best:  # every child duplicates the root (no action changes anything)
            return Plan(first[:1].numpy().copy(), float(dynamics.distance(root, goal)[0]), evaluated, {"depth": 1})
        best = min(score for score, _ in level_best)
        level = next(i for i, (score, _) in enumerate(level_best) if score <= best + self.tie_tolerance)
        score, seq = level_best[level]
        return Plan(seq.numpy().copy(), score, evaluated, {"depth": level + 1})


@dataclass
class BreadthFirstSearch(BeamSearch):
    """Exhaustive batched search to ``depth`` (a beam without a width limit)."""

    width: int | None = None
    depth: int = 3
    dedupe: bool = False
