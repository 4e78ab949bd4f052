"""The world model: ``z = E(S(x))``, ``z' = T(z, a)``, and the group's action on its spaces.

* ``S`` (``sen``): the symmetric embedding network, images -> a space V on which the group acts in
  a chosen, known way (``symmetry.act_on_embedding``). A plain CNN for ``ours`` and ``none``; an
  equivariant CNN for ``full`` (which wrongly assumes the group acts on pixels).
* ``E`` (``encoder``): V -> Z, equivariant for ``ours`` and ``full``.
* ``T`` (``transition``): (Z, raw actions) -> next Z; it encodes raw environment actions itself
  (one-hot per object, torques, rotation vectors) and adds the residual where the design has one.

Shapes: observations are the environment's uint8 images ``[B, H, W, C]``; latents are always
``[B, K, D]`` (K objects for the grid worlds, K = 1 otherwise); raw actions are ``[B]`` int64 for
discrete action spaces and ``[B, A]`` float32 for continuous ones.

All three parts are ordinary ``nn.Module`` s that take and return plain tensors (escnn parts wrap
``GeometricTensor`` s internally), so :meth:`WorldModel.export` can swap escnn modules for their
exported plain-torch equivalents.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from symwm.envs.groups import Group

#: the paper's energy temperature (energy = sum of squares / (2 sigma^2))
SIGMA = 0.5


@dataclass
class ModelSpec:
    """Everything needed to rebuild a model: stored in every checkpoint."""

    env_id: str
    variant: str = "ours"  # "ours" | "none" | "full" (rotating object: "ours" | "matmul" | "none")
    size: str = "cpu"  # "cpu" | "paper"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)  # preset fields changed by the user
    family: str | None = None  # model family (symwm.world_models.families); None: the first that supports the env

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (without ``family`` when unset, so specs from before the field read the same)."""
        d = asdict(self)
        if d["family"] is None:
            del d["family"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        unknown = set(d) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown ModelSpec field(s) {sorted(unknown)}")
        return cls(**d)


class LatentSymmetry(ABC):
    """How the environment's group acts on a model's embedding space V and latent space Z.

    Group elements are the environment's (``symwm.envs.groups``), so twins made with
    ``env.symmetry`` and model-side transforms use the same ``g``.
    """

    group: Group
    #: whether SEN outputs are themselves group elements (SO(3): rotation matrices), read by :meth:`pose`
    has_pose: bool = False

    #: whether :meth:`stabiliser_elements` is offered (``TrainConfig.stabiliser_negatives``)
    has_stabiliser: bool = False

    def stabiliser_elements(self, z: torch.Tensor, rng: Any) -> list[Any]:
        """Per latent ``[B, K, D]``, a group element that fixes it where it has collapsed (:mod:`symwm.world_models.stabiliser`)."""
        raise NotImplementedError(f"{type(self).__name__} offers no stabiliser elements (has_stabiliser is False)")

    def pose(self, v: torch.Tensor) -> torch.Tensor:
        """The group elements that SEN outputs ``v`` stand for, compared with the env's ``pose_key`` state
        (:func:`symwm.world_models.metrics.pose_error`); only where ``has_pose``."""
        raise NotImplementedError(f"{type(self).__name__}: SEN outputs are not group elements (has_pose is False)")

    @abstractmethod
    def act_on_embedding(self, g: Any, v: torch.Tensor) -> torch.Tensor:
        """``rho_V(g) v`` for a batch of SEN outputs."""

    @abstractmethod
    def act_on_latent(self, g: Any, z: torch.Tensor) -> torch.Tensor:
        """``rho_Z(g) z`` for a batch of latents ``[B, K, D]``."""


class WorldModel(nn.Module):
    """SEN + encoder + transition, with the group's action on V and Z (``symmetry``)."""

    def __init__(
        self,
        spec: ModelSpec,
        sen: nn.Module,
        encoder: nn.Module,
        transition: nn.Module,
        symmetry: LatentSymmetry,
        latent_shape: tuple[int, int],
    ):
        super().__init__()
        self.spec = spec
        self.sen = sen
        self.encoder = encoder
        self.transition = transition
        self.symmetry = symmetry
        self.latent_shape = tuple(latent_shape)  # (K, D)
        self.family: str | None = spec.family  # the model family that built it (set by build_model)

    @staticmethod
    def preprocess(obs: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, H, W, C]`` -> float ``[B, C, H, W]`` in [0, 1]."""
        if obs.dtype != torch.uint8:
            raise TypeError(f"observations must be uint8 images [B, H, W, C], got dtype {obs.dtype}")
        if obs.dim() != 4:
            raise ValueError(f"observations must have shape [B, H, W, C], got {tuple(obs.shape)}")
        return obs.permute(0, 3, 1, 2).float().div_(255.0)

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        """S(x): the SEN's output for uint8 observations ``[B, H, W, C]``."""
        return self.sen(self.preprocess(obs))

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """E(S(x)): latents ``[B, K, D]``."""
        return self.encoder(self.embed(obs))

    def predict(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """One step of the latent dynamics: ``[B, K, D]`` -> ``[B, K, D]``."""
        return self.transition(z, actions)

    def rollout(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``h`` steps, ``actions`` ``[B, h]`` or ``[B, h, A]``; returns the latent after the last."""
        for t in range(actions.shape[1]):
            z = self.predict(z, actions[:, t])
        return z

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor, extra_obs: torch.Tensor | None = None):
        """``(z, z_pred, z_next)`` for a batch of transitions (what the loss needs); with ``extra_obs`` ``[B, H, W, C]``
        (stabiliser negatives) also their latents, all encoded in one pass: ``(z, z_pred, z_next, z_extra)``."""
        if extra_obs is None:
            z, z_next = self.encode(torch.cat([obs, next_obs], dim=0)).chunk(2, dim=0)
            return z, self.predict(z, actions), z_next
        z, z_next, z_extra = self.encode(torch.cat([obs, next_obs, extra_obs], dim=0)).split(obs.shape[0], dim=0)
        return z, self.predict(z, actions), z_next, z_extra

    def export(self) -> "WorldModel":
        """A copy whose escnn parts are exported to plain torch (inference only, eval mode)."""
        with torch.no_grad():  # escnn's eval-mode caches are graph tensors that deepcopy refuses
            self.eval()
            out = copy.deepcopy(self)
        for name in ("sen", "encoder", "transition"):
            part = getattr(out, name)
            if hasattr(part, "export"):
                setattr(out, name, part.export())
        return out.eval()

    def num_parameters(self) -> dict[str, int]:
        """Trainable parameter counts per part and in total."""
        counts = {n: sum(p.numel() for p in getattr(self, n).parameters()) for n in ("sen", "encoder", "transition")}
        counts["total"] = sum(counts.values())
        return counts


def energy(a: torch.Tensor, b: torch.Tensor, sigma: float = SIGMA, per_object: bool = False) -> torch.Tensor:
    """C-SWM energy ``sum_D (a - b)^2 / (2 sigma^2)``, averaged over the K objects: ``[B]`` (``per_object``: ``[B, K]``)."""
    sq = (a - b).pow(2).sum(-1)  # [B, K]
    return sq / (2.0 * sigma * sigma) if per_object else sq.mean(-1) / (2.0 * sigma * sigma)
