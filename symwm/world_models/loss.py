"""The contrastive hinge loss of C-SWM as used by the paper.

``L = mean[ energy(z + T(z, a), z') ] + mean[ max(0, hinge - energy(z, z_neg)) ]`` where
``z_neg`` is the latent of another sample of the batch (a random permutation of ``z``, as in the
authors' release: a sample can be paired with itself, which then only costs the hinge),
``hinge = 1`` and ``energy`` uses ``sigma = 0.5`` (:func:`symwm.world_models.model.energy`).

``hinge_on="object"`` (not in the release; experimental) applies the hinge to each object's energy
instead of their mean: ``mean_k max(0, hinge - energy_k(z, z_neg))``. Why: with the release's
whole-state hinge, once some object slots separate the states of a batch by the margin, nothing
asks the other slots to encode anything, and a slot whose SEN map missed its object stays unused.
On 3D Blocks (table 1, ``cpu`` scale) that is how runs fail: ``ours`` seed 3 (one of five slots
constant, 10-step Hits@1 87.0 %) and ``full`` on four seeds of five
(:func:`symwm.world_models.metrics.slot_usage` 0.03-0.08). With one hinge per object, seed 3 finds
its lost object (99.8 % in 16 epochs), but three other seeds get worse (seed 1: 63.0 %, slots
mixing several objects; mean over 5 seeds 85.0 against 97.3): a pair in which an object sits at
the same place still costs its slot the hinge, which the slot can only pay by encoding other
objects. Per-seed results in
``benchmarks/results/tables/README.md``. A hinge on each slot's *mean* energy over the batch was
tried too: the unused slot copied another object (seed 3: 76.8 %).
"""

from __future__ import annotations

import torch

from symwm.world_models.model import SIGMA, energy

HINGE = 1.0
HINGE_ON = ("state", "object")


def contrastive_loss(
    z: torch.Tensor,
    z_pred: torch.Tensor,
    z_next: torch.Tensor,
    generator: torch.Generator | None = None,
    hinge: float = HINGE,
    sigma: float = SIGMA,
    hinge_on: str = "state",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss and its two terms for latents ``[B, K, D]``; ``generator`` draws the negatives."""
    if hinge_on not in HINGE_ON:
        raise ValueError(f"hinge_on must be one of {list(HINGE_ON)}, got {hinge_on!r}")
    if not (z.shape == z_pred.shape == z_next.shape) or z.dim() != 3:
        raise ValueError(
            f"latents must share a shape [B, K, D], got {tuple(z.shape)}, {tuple(z_pred.shape)}, {tuple(z_next.shape)}"
        )
    perm = torch.randperm(z.shape[0], generator=generator).to(z.device)
    positive = energy(z_pred, z_next, sigma).mean()
    if hinge_on == "state":
        negative = torch.clamp(hinge - energy(z, z[perm], sigma), min=0.0).mean()
    else:
        negative = torch.clamp(hinge - energy(z, z[perm], sigma, per_object=True), min=0.0).mean()  # [B, K] -> scalar
    loss = positive + negative
    return loss, {"loss": float(loss.detach()), "positive": float(positive.detach()), "negative": float(negative.detach())}
