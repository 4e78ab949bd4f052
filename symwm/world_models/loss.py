"""The contrastive hinge loss of C-SWM as used by the paper.

``L = mean[ energy(z + T(z, a), z') ] + mean[ max(0, hinge - energy(z, z_neg)) ]`` where
``z_neg`` is the latent of another sample of the batch (a random permutation of ``z``, as in the
authors' release: a sample can be paired with itself, which then only costs the hinge),
``hinge = 1`` and ``energy`` uses ``sigma = 0.5`` (:func:`symwm.world_models.model.energy`).
"""

from __future__ import annotations

import torch

from symwm.world_models.model import SIGMA, energy

HINGE = 1.0


def contrastive_loss(
    z: torch.Tensor,
    z_pred: torch.Tensor,
    z_next: torch.Tensor,
    generator: torch.Generator | None = None,
    hinge: float = HINGE,
    sigma: float = SIGMA,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss and its two terms for latents ``[B, K, D]``; ``generator`` draws the negatives."""
    if not (z.shape == z_pred.shape == z_next.shape) or z.dim() != 3:
        raise ValueError(
            f"latents must share a shape [B, K, D], got {tuple(z.shape)}, {tuple(z_pred.shape)}, {tuple(z_next.shape)}"
        )
    perm = torch.randperm(z.shape[0], generator=generator).to(z.device)
    positive = energy(z_pred, z_next, sigma).mean()
    negative = torch.clamp(hinge - energy(z, z[perm], sigma), min=0.0).mean()
    loss = positive + negative
    return loss, {"loss": float(loss.detach()), "positive": float(positive.detach()), "negative": float(negative.detach())}
