"""Stabiliser negatives: next states turned by group elements that a collapsed latent cannot see, rendered by the env.

The contrastive loss of the paper is satisfied by a SEN that keeps only part of what the group acts
on: on the rotating object, one body axis ``R c`` (a rank-one output ``M = R c e^T``) predicts every
transition under ``z' = A(a) z`` as well as the whole pose does, and random negatives almost never
share that axis (``benchmarks/results/tables/rotation_sen_output.md``). Such a latent is fixed by
every turn ``g`` about its axis: ``g M = M``. A stabiliser negative is the true next state turned by
such a ``g`` (``env.symmetry.act_on_state``), rendered (``env.observation_of``) and pushed away from
the next state's latent by the hinge (:func:`symwm.world_models.loss.contrastive_loss`'s ``turned``).
A latent that carries the whole pose tells them apart at no cost.

Not the release's loss: it needs the environment's renderer and ground-truth states while training
(``TrainConfig.stabiliser_negatives``). A model family offers it by giving its
:class:`~symwm.world_models.model.LatentSymmetry` ``has_stabiliser = True`` and
``stabiliser_elements(z, rng)``: one group element per latent ``[B, K, D]`` that fixes the latent's
degenerate part.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from symwm.world_models.datasets import open_dataset
from symwm.world_models.model import WorldModel


class StabiliserNegatives:
    """Renders, for a batch of next states, their twins turned by the model's stabiliser elements."""

    def __init__(self, model: WorldModel, dataset: str) -> None:
        if not getattr(model.symmetry, "has_stabiliser", False):
            raise ValueError(
                f"stabiliser_negatives: the {model.family or type(model).__name__} family's latent symmetry "
                f"({type(model.symmetry).__name__}) offers no stabiliser elements (has_stabiliser is False)"
            )
        with open_dataset(dataset) as f:
            if not f.has_states:
                raise ValueError(f"stabiliser_negatives needs ground-truth states in the training data; {dataset} has none")
            self.env = f.make_env()
        self.model = model

    def observations(self, z_next: torch.Tensor, next_states: dict[str, torch.Tensor], rng: np.random.Generator) -> torch.Tensor:
        """uint8 ``[B, H, W, C]``: each next state ``s'`` turned by an element fixing its latent ``z_next`` ``[B, K, D]``."""
        elements = self.model.symmetry.stabiliser_elements(z_next, rng)
        sym, frames = self.env.symmetry, []
        for i, g in enumerate(elements):
            state: dict[str, Any] = {k: v[i].numpy() for k, v in next_states.items()}
            frames.append(self.env.observation_of(sym.act_on_state(g, state)))
        return torch.from_numpy(np.stack(frames))

    def close(self) -> None:
        """Close the renderer."""
        self.env.close()
