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

``moved`` (``TrainConfig.temporal_negatives``; not in the release) adds *temporal negatives*: for
every transition whose frames differ, the latents before and after must differ too,
``mean over moving samples of max(0, hinge / K - energy(z, z_next))``: the state's energy is the
mean of K object energies, so this asks the moved object's slot alone to move by the hinge. Why: a
release's negative is another random state, which differs from ``z`` in several objects at once
and is already separated by the slots that do encode their objects; the positive term then makes
the remaining slot constant, and nothing in the loss notices. A transition moves one object, so
the slot that failed to encode it is the only one that can pay this term. Measured on the SEN of
``ours`` seed 3 of table 1 (``benchmarks/sen_object_response.py``): at initialisation the lost
cube drives the hidden channels as strongly as the others, after training with the release's loss
no channel responds to it: the SEN loses the object in training, the loss lets it. A version with
the full hinge instead of ``hinge / K`` asked every slot of a moving sample to move and hurt
(1-step validation Hits@1 74 -> 49 % over 2 epochs, an ad-hoc run). Results per seed in
``benchmarks/results/tables/README.md``.
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
    moved: torch.Tensor | None = None,
    turned: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss and its terms for latents ``[B, K, D]``; ``generator`` draws the negatives, ``moved`` ``[B]`` bool adds temporal
    ones, ``turned`` ``[B, K, D]`` (latents of the next states turned by a stabiliser element) stabiliser ones."""
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
    stats = {"positive": float(positive.detach()), "negative": float(negative.detach())}
    if moved is not None:
        if moved.shape != (z.shape[0],):
            raise ValueError(f"moved must be a [B] mask with B = {z.shape[0]}, got shape {tuple(moved.shape)}")
        gap = torch.clamp(hinge / z.shape[1] - energy(z, z_next, sigma), min=0.0)  # [B]
        temporal = (gap * moved).sum() / moved.sum().clamp(min=1)  # mean over the samples whose frames changed
        loss = loss + temporal
        stats["temporal"] = float(temporal.detach())
    if turned is not None:  # symwm.world_models.stabiliser: the next state against itself turned where a collapsed latent cannot see
        if turned.shape != z_next.shape:
            raise ValueError(f"turned latents must have the shape of z_next {tuple(z_next.shape)}, got {tuple(turned.shape)}")
        stabiliser = torch.clamp(hinge - energy(z_next, turned, sigma), min=0.0).mean()
        loss = loss + stabiliser
        stats["stabiliser"] = float(stabiliser.detach())
    return loss, {"loss": float(loss.detach()), **stats}


def frames_differ(obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: whether a transition changed its observation ``[B, ...]`` at all (something moved)."""
    if obs.shape != next_obs.shape or obs.dim() < 2:
        raise ValueError(f"observations must share a shape [B, ...], got {tuple(obs.shape)} and {tuple(next_obs.shape)}")
    return (obs != next_obs).flatten(1).any(1)
