"""Is a world model equivariant to its environment's group? The check every model family is tested with.

For group elements ``g`` of the environment's action group (all of a small finite group, else a
sample), the largest relative errors

* encoder:    ``||E(rho_V(g) v) - rho_Z(g) E(v)|| / ||rho_Z(g) E(v)||``
* transition: ``||T(rho_Z(g) z, rho_A(g) a) - rho_Z(g) T(z, a)|| / ||rho_Z(g) T(z, a)||``

with ``rho_V``, ``rho_Z`` from ``model.symmetry`` and ``rho_A`` from the environment's own
``symmetry.act_on_action`` (the same contract the data were collected under), norms over the whole
batch. Like escnn's ``check_equivariance``, but for the model's plain-tensor interface and the
environment's group elements. An exactly equivariant model gives float rounding (about 1e-6); a
latent without a group action (``none``) gives ``None``.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch

from symwm.world_models.model import WorldModel


def actions_to_tensor(space: gym.Space, actions: Sequence[Any]) -> torch.Tensor:
    """Raw actions as the models take them: ``int64 [B]`` for ``Discrete``, ``float32 [B, dim]`` for ``Box``."""
    if isinstance(space, gym.spaces.Discrete):
        return torch.as_tensor(np.asarray([int(a) for a in actions]), dtype=torch.int64)
    return torch.as_tensor(np.stack([np.asarray(a, dtype=np.float32) for a in actions]), dtype=torch.float32)


def group_elements(group: Any, n: int, rng: np.random.Generator) -> list[Any]:
    """Every element of a finite group of at most ``n`` elements, else ``n`` random ones."""
    order = group.order
    if order is not None and order <= n:
        return list(group.elements())
    return [group.sample(rng) for _ in range(n)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).double().norm() / b.double().norm().clamp_min(1e-30))


@torch.no_grad()
def check_model_equivariance(
    model: WorldModel,
    env: gym.Env,
    v: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    actions: Sequence[Any] | None = None,
    elements: Sequence[Any] | None = None,
    n_elements: int = 16,
    batch: int = 4,
    seed: int = 0,
) -> dict[str, float | None]:
    """Largest relative encoder and transition equivariance errors of ``model`` (in its current mode).

    ``v`` (SEN outputs), ``z`` (latents) and ``actions`` default to the model's own outputs on
    random observations and actions sampled from ``env``'s action space; ``elements`` to
    :func:`group_elements` of the action group. Returns ``{"encoder": e, "transition": t}``.
    """
    base = env.unwrapped
    sym, space = base.symmetry, base.action_space
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    if v is None:
        obs = torch.randint(0, 256, (batch, *base.observation_space.shape), dtype=torch.uint8, generator=gen)
        v = model.embed(obs)
    if z is None:
        z = model.encoder(v)
    if actions is None:
        space.seed(seed)
        actions = [space.sample() for _ in range(z.shape[0])]
    a = actions_to_tensor(space, actions)
    if elements is None:
        elements = group_elements(sym.action_group, n_elements, rng)
    ev, tz = model.encoder(v), model.transition(z, a)
    worst: dict[str, float | None] = {"encoder": 0.0, "transition": 0.0}
    for g in elements:
        try:
            rho_ev = model.symmetry.act_on_latent(g, ev)
        except ValueError:  # the latent carries no group action (a non-equivariant baseline)
            return {"encoder": None, "transition": None}
        ga = actions_to_tensor(space, [sym.act_on_action(g, x) for x in actions])
        worst["encoder"] = max(worst["encoder"], _rel(model.encoder(model.symmetry.act_on_embedding(g, v)), rho_ev))
        worst["transition"] = max(
            worst["transition"], _rel(model.transition(model.symmetry.act_on_latent(g, z), ga), model.symmetry.act_on_latent(g, tz))
        )
    return worst
