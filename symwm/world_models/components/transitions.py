"""Latent transitions T: ``z' = z + T(z, a)``, a GNN over objects (C-SWM) or an MLP on ``[z, a]``."""

from __future__ import annotations

import torch
from torch import nn

from symwm.world_models.components.mlp import export_sequential
from symwm.world_models.escnn_bridge import EscnnModule

#: motions per object in the object grid worlds' actions (``a = 4 * object + motion``)
N_MOTIONS = 4


class GNNTransition(EscnnModule):
    """Fully connected GNN over objects (C-SWM): ``z' = z + node(z_i, a_i, sum_j edge(z_i, z_j))``.

    Raw actions ``a`` in ``[0, M K)`` (object ``a // M``, motion ``a % M``; ``M = n_motions``, 4 in the
    grid worlds) become one M-dim one-hot per object (zeros for objects not acted on), with motion
    ``m`` at position ``motion_slot[m]``.
    """

    def __init__(
        self, edge_mlp: nn.Module, node_mlp: nn.Module, n_objects: int, edge_dim: int, motion_slot: torch.Tensor | None = None,
        n_motions: int = N_MOTIONS,
    ):
        super().__init__()
        self.edge_mlp, self.node_mlp = edge_mlp, node_mlp
        self.n_objects, self.edge_dim, self.n_motions = n_objects, edge_dim, int(n_motions)
        if motion_slot is None:
            motion_slot = torch.arange(self.n_motions)
        self.register_buffer("motion_slot", motion_slot.long(), persistent=False)
        src = [(i, j) for i in range(n_objects) for j in range(n_objects) if i != j]  # grouped by receiver i
        self.register_buffer("receivers", torch.tensor([i for i, _ in src], dtype=torch.long), persistent=False)
        self.register_buffer("senders", torch.tensor([j for _, j in src], dtype=torch.long), persistent=False)

    def encode_actions(self, actions: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Raw actions ``[B]`` -> per-object motion one-hots ``[B, K, M]``."""
        if actions.dim() == 2 and actions.shape[1] == 1:
            actions = actions[:, 0]
        actions = actions.long()
        b, k, m = actions.shape[0], self.n_objects, self.n_motions
        if ((actions < 0) | (actions >= m * k)).any():
            raise ValueError(f"actions must lie in [0, {m * k})")
        flat = (actions // m) * m + self.motion_slot[actions % m]
        onehot = torch.zeros(b, k * m, dtype=like.dtype, device=like.device)
        onehot[torch.arange(b, device=like.device), flat] = 1.0
        return onehot.view(b, k, m)

    def forward(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        b, k, d = z.shape
        act = self.encode_actions(actions, z)  # [B, K, M]
        if k > 1:
            pairs = torch.cat([z[:, self.receivers], z[:, self.senders]], dim=-1)  # [B, K(K-1), 2D]
            agg = self._edge_sum(pairs.reshape(-1, 2 * d)).view(b, k, -1)  # [B, K, hidden]
        else:
            agg = z.new_zeros(b, k, self.edge_dim)  # a single object has no neighbours
        node_in = torch.cat([z, act, agg], dim=-1).reshape(b * k, -1)
        return z + self.node_mlp(node_in).view(b, k, d)

    def _edge_sum(self, pairs: torch.Tensor) -> torch.Tensor:
        """``sum_j edge(z_i, z_j)`` for pairs ``[B*K*(K-1), 2D]`` grouped by receiver -> ``[B*K, hidden]``.

        The edge MLP ends in an affine layer ``f``, and ``sum_j f(h_ij) = f(sum_j h_ij) + (K-2) f(0)``:
        summing before that layer computes the same function with K-1 times fewer rows for it (the
        largest matmul of a grid-world training step after the encoder's first layer).
        """
        *body, last = self.edge_mlp
        h = pairs
        for layer in body:
            h = layer(h)
        k = self.n_objects
        h = h.view(-1, k - 1, h.shape[-1]).sum(1)  # [B*K, hidden']
        out = last(h)
        if k > 2:
            out = out + (k - 2) * last(h.new_zeros(1, h.shape[-1]))  # the bias of the K-2 further terms
        return out

    def export(self) -> "GNNTransition":
        """The same transition with plain-torch layers (eval mode)."""
        self.eval()
        return GNNTransition(
            export_sequential(self.edge_mlp), export_sequential(self.node_mlp), self.n_objects, self.edge_dim, self.motion_slot,
            self.n_motions,
        ).eval()


class ResidualTransition(EscnnModule):
    """``z' = z + T([z, a])`` with one-hot (Discrete, at ``slots``) or raw (Box) actions."""

    def __init__(self, mlp: nn.Sequential, n_actions: int | None, slots: torch.Tensor | None):
        super().__init__()
        self.mlp, self.n_actions = mlp, n_actions
        self.register_buffer("slots", slots, persistent=False)

    def encode_actions(self, actions: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Raw actions -> the transition's action input ``[B, A]``."""
        if self.n_actions is None:
            return actions.reshape(actions.shape[0], -1).to(like.dtype)
        idx = actions.reshape(-1).long()
        if ((idx < 0) | (idx >= self.n_actions)).any():
            raise ValueError(f"actions must lie in [0, {self.n_actions})")
        onehot = torch.zeros(idx.shape[0], self.n_actions, dtype=like.dtype, device=like.device)
        onehot[torch.arange(idx.shape[0], device=like.device), self.slots[idx]] = 1.0
        return onehot

    def forward(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        x = torch.cat([z[:, 0], self.encode_actions(actions, z)], dim=-1)  # [B, D + A]
        return z + self.mlp(x)[:, None]

    def export(self) -> "ResidualTransition":
        """The same transition in plain torch (eval mode)."""
        self.eval()
        return ResidualTransition(export_sequential(self.mlp), self.n_actions, self.slots).eval()
