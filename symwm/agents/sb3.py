"""stable-baselines3 integration: symwm latents as features, as observations, and goal-conditioned views.

Two ways to give an SB3 agent a trained world model's latent ``z = E(S(x))`` instead of pixels:

* :class:`SENFeaturesExtractor`, a ``BaseFeaturesExtractor`` inside the policy. SB3 builds
  extractors itself, so the world model arrives as a checkpoint path::

      PPO("CnnPolicy", env, policy_kwargs=dict(
          features_extractor_class=SENFeaturesExtractor,
          features_extractor_kwargs=dict(checkpoint="runs/demo/ours/best.pt")))

  Frozen by default (the model's escnn parts exported to plain torch, always in eval mode);
  ``freeze=False`` fine-tunes the SEN and encoder, keeping the escnn layers so that the encoder
  stays equivariant. The policy's ``state_dict`` is the same in train and eval mode either way, so
  ``model.save`` / ``PPO.load`` round-trip (the checkpoint must exist at load time too; pass
  ``custom_objects={"policy_kwargs": ...}`` to ``PPO.load`` to point at a moved one). The
  extractor shields the loaded weights from the orthogonal re-initialisation that PPO and A2C
  apply to their extractors (``ortho_init``).
* :class:`LatentObservation` (a gymnasium ``ObservationWrapper``) and :class:`VecLatentObservation`
  (an SB3 ``VecEnvWrapper`` that encodes all sub-environments in one batch) replace pixels by
  flat float32 latents, for any SB3 algorithm with an ``MlpPolicy``. Cheaper than the extractor:
  each observation is encoded once, not again in every gradient step. Latents are not centred
  (grid-world coordinates vary by ~0.3 around offsets of ~-1.5), so standardise them for MLP
  policies, e.g. ``VecNormalize(VecLatentObservation(venv, ckpt), norm_reward=False)``
  (``benchmarks/rl.py`` does).

Goal tasks: :class:`GoalImageObservation` stacks ``info["goal_image"]`` behind the observation as
extra channels (``[H, W, 2C]`` uint8), so a pixel agent (``CnnPolicy``) sees the goal. All latent
paths above accept images with a multiple ``n * C`` of the model's channels: each ``C``-channel
block is encoded separately and the latents are concatenated, so ``LatentObservation(
GoalImageObservation(env), ckpt)`` observes ``concat(z(obs), z(goal))`` — the same information as
the pixel agent.

Shapes: images ``[H, W, n*C]`` uint8 (SB3 hands extractors ``[B, n*C, H, W]`` floats in [0, 1]
after ``VecTransposeImage`` and ``normalize_images``); latents ``[n * K * D]`` float32 (K objects of
D dimensions per image; grid worlds at the ``cpu`` size: K = objects, D = 8; Reacher: K = 1, D = 32).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from torch import nn

from symwm.world_models.checkpoint import load_model
from symwm.world_models.compatibility import check_env_matches
from symwm.world_models.model import WorldModel

__all__ = [
    "SENFeaturesExtractor",
    "LatentEncoder",
    "LatentObservation",
    "VecLatentObservation",
    "GoalImageObservation",
    "model_image_shape",
]

ModelSource = str | os.PathLike | WorldModel


def _as_model(source: ModelSource) -> WorldModel:
    """A world model in eval mode from a checkpoint path (or the model itself)."""
    if isinstance(source, WorldModel):
        return source.eval()
    return load_model(source)


def model_image_shape(model: WorldModel) -> tuple[int, int, int]:
    """``(H, W, C)`` of the uint8 observations the model was built for."""
    env = gym.make(model.spec.env_id, **model.spec.env_kwargs)
    try:
        shape = env.observation_space.shape
    finally:
        env.close()
    if shape is None or len(shape) != 3:
        raise ValueError(f"{model.spec.env_id} does not have image observations (shape {shape})")
    return int(shape[0]), int(shape[1]), int(shape[2])


def _blocks(channels: int, model_channels: int, what: str) -> int:
    """How many model images are stacked in ``channels`` channels (an error unless a whole number)."""
    if channels % model_channels or channels == 0:
        raise ValueError(
            f"{what} has {channels} channels; the world model reads {model_channels}-channel images "
            f"(an observation may stack several, e.g. obs + goal = {2 * model_channels})"
        )
    return channels // model_channels


class _Stages(nn.Module):
    """``E(S(x))`` on float images ``[B, C, H, W]`` in [0, 1] -> latents ``[B, K, D]``."""

    def __init__(self, sen: nn.Module, encoder: nn.Module):
        super().__init__()
        self.sen = sen
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, K, D]``."""
        return self.encoder(self.sen(x))


class SENFeaturesExtractor(BaseFeaturesExtractor):
    """SB3 features extractor: a trained symwm model's flattened latent(s) of the image observation.

    :param observation_space: given by SB3: the (usually transposed, ``[n*C, H, W]``) uint8 image space.
    :param checkpoint: path of a symwm checkpoint (``best.pt`` of ``symwm train``).
    :param freeze: keep the world model fixed (exported plain-torch modules, always in eval mode).
        ``False`` fine-tunes SEN and encoder with the policy; the escnn layers are kept (the encoder
        stays equivariant) and their eval-mode caches are left out of the ``state_dict``.
    :param freeze_batchnorm: when fine-tuning, keep batch-norm layers in eval mode (the world
        model's running statistics) instead of using the statistics of PPO minibatches.
    :param normalize_images: must equal the policy's ``normalize_images`` (SB3's default ``True``:
        SB3 has already divided the uint8 pixels by 255; ``False``: this extractor does it).
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        checkpoint: str | os.PathLike,
        freeze: bool = True,
        freeze_batchnorm: bool = True,
        normalize_images: bool = True,
    ):
        model = load_model(checkpoint)
        h, w, c = model_image_shape(model)
        shape = tuple(observation_space.shape or ())
        if len(shape) != 3:
            raise ValueError(f"SENFeaturesExtractor needs an image observation space, got shape {shape}")
        if shape[1:] == (h, w):
            channels_first, channels = True, shape[0]
        elif shape[:2] == (h, w):
            channels_first, channels = False, shape[2]
        else:
            raise ValueError(
                f"observation space {shape} does not hold {h}x{w} images of {model.spec.env_id} (the checkpoint's environment)"
            )
        n_images = _blocks(channels, c, "the observation space")
        k, d = model.latent_shape
        super().__init__(observation_space, features_dim=n_images * k * d)
        self.checkpoint = str(checkpoint)
        self.freeze = bool(freeze)
        self.freeze_batchnorm = bool(freeze_batchnorm)
        self.normalize_images = bool(normalize_images)
        self.channels_first = channels_first
        self.image_shape = (c, h, w)
        self.n_images = n_images
        self.latent_shape = (k, d)
        if self.freeze:
            plain = model.export()
            self.stages = _Stages(plain.sen, plain.encoder)
            self.stages.requires_grad_(False)
            self._cache_keys: frozenset[str] = frozenset()
        else:
            self.stages = _Stages(model.sen, model.encoder)
            self._cache_keys = self._eval_only_keys()
            if self._cache_keys:  # escnn: make the state_dict independent of train/eval mode
                self.register_state_dict_post_hook(_drop_cache_keys)
                self.register_load_state_dict_pre_hook(_before_load)
                self.register_load_state_dict_post_hook(_after_load)
        self.train(False)

    def _eval_only_keys(self) -> frozenset[str]:
        """``state_dict`` keys (relative to ``stages``) that exist only in eval mode (escnn filter caches)."""
        with torch.no_grad():
            self.stages.train(True)
            train_keys = set(self.stages.state_dict())
            self.stages.train(False)
            eval_keys = set(self.stages.state_dict())
        if train_keys - eval_keys:
            raise RuntimeError(f"unexpected train-only state_dict keys {sorted(train_keys - eval_keys)[:5]}")
        return frozenset(f"stages.{key}" for key in eval_keys - train_keys)

    def apply(self, fn: Callable[[nn.Module], None]) -> "SENFeaturesExtractor":
        """``fn`` on this module only: the trained world model is never re-initialised.

        SB3's ``ActorCriticPolicy`` (``ortho_init=True``, the default of PPO and A2C) calls
        ``features_extractor.apply(init_weights)``, which would overwrite every ``Linear`` and
        ``Conv2d`` of the loaded SEN and encoder with random orthogonal weights.
        """
        fn(self)
        return self

    def train(self, mode: bool = True) -> "SENFeaturesExtractor":
        """Frozen: always eval. Fine-tuning: follow ``mode``, batch norm pinned to eval if asked."""
        with torch.no_grad():  # escnn expands (and caches) its filters when switched to eval
            self.training = mode
            if self.freeze:
                self.stages.train(False)
                return self
            self.stages.train(mode)
            if mode and self.freeze_batchnorm:
                for module in self.stages.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
        return self

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """``[B, n*C, H, W]`` (or ``[B, H, W, n*C]``) images -> ``[B, n*K*D]`` features."""
        x = observations.float()
        if not self.channels_first:
            x = x.permute(0, 3, 1, 2)
        if not self.normalize_images:
            x = x / 255.0
        b = x.shape[0]
        c, h, w = self.image_shape
        x = x.reshape(b * self.n_images, c, h, w)  # [B*n, C, H, W]
        if self.freeze:
            with torch.no_grad():
                z = self.stages(x)
        else:
            z = self.stages(x)  # [B*n, K, D]
        return z.reshape(b, -1)  # [B, n*K*D]


def _drop_cache_keys(module: SENFeaturesExtractor, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """state_dict post-hook: leave out escnn's eval-mode filter caches (recomputed from the weights)."""
    for key in module._cache_keys:
        state_dict.pop(prefix + key, None)


def _before_load(
    module: SENFeaturesExtractor,
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: Any,
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """Load pre-hook: escnn in train mode (no cache buffers), ignore caches saved by other code."""
    module._mode_before_load = module.training
    with torch.no_grad():
        module.stages.train(True)
    for key in module._cache_keys:
        state_dict.pop(prefix + key, None)


def _after_load(module: SENFeaturesExtractor, incompatible_keys: Any) -> None:
    """Load post-hook: back to the previous mode (eval mode recomputes escnn's caches from the new weights)."""
    module.train(getattr(module, "_mode_before_load", False))


class LatentEncoder:
    """A frozen, exported world model: uint8 images ``[B, H, W, n*C]`` -> float32 latents ``[B, n*K*D]``.

    Batched, ``no_grad``; an image block equal to the one seen at the same slot in the previous call
    (a goal image, a no-op move) reuses its latent.
    """

    def __init__(self, model: ModelSource, device: str | torch.device = "cpu"):
        source = _as_model(model)
        self.spec = source.spec
        self.model = source.export().to(device).eval()
        self.device = torch.device(device)
        self.image_shape = model_image_shape(source)  # (H, W, C)
        self.latent_shape = tuple(source.latent_shape)  # (K, D)
        self._last: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def n_images(self, obs_shape: tuple[int, ...]) -> int:
        """How many model images an observation of shape ``[H, W, n*C]`` stacks."""
        h, w, c = self.image_shape
        if len(obs_shape) != 3 or tuple(obs_shape[:2]) != (h, w):
            raise ValueError(f"observations of shape {tuple(obs_shape)} are not {h}x{w} images of {self.spec.env_id}")
        return _blocks(int(obs_shape[2]), c, f"an observation of shape {tuple(obs_shape)}")

    def latent_dim(self, obs_shape: tuple[int, ...]) -> int:
        """Length of the flat latent of one observation of shape ``obs_shape``."""
        k, d = self.latent_shape
        return self.n_images(obs_shape) * k * d

    @torch.no_grad()
    def encode(self, images: np.ndarray) -> np.ndarray:
        """Model images ``[B, H, W, C]`` uint8 -> latents ``[B, K*D]`` float32."""
        x = torch.as_tensor(np.ascontiguousarray(images), device=self.device)
        return self.model.encode(x).reshape(len(images), -1).cpu().numpy().astype(np.float32, copy=False)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """``[B, H, W, n*C]`` uint8 -> ``[B, n*K*D]`` float32 (each C-channel block encoded separately)."""
        obs = np.asarray(obs)
        if obs.dtype != np.uint8 or obs.ndim != 4:
            raise ValueError(f"expected uint8 images [B, H, W, n*C], got {obs.dtype} {obs.shape}")
        b, h, w, _ = obs.shape
        n, c = self.n_images(obs.shape[1:]), self.image_shape[2]
        blocks = obs.reshape(b, h, w, n, c).transpose(3, 0, 1, 2, 4)  # [n, B, H, W, C]
        out = []
        for slot in range(n):
            last = self._last.get(slot)
            if last is not None and last[0].shape == blocks[slot].shape and np.array_equal(last[0], blocks[slot]):
                out.append(last[1])
                continue
            z = self.encode(blocks[slot])  # [B, K*D]
            self._last[slot] = (blocks[slot].copy(), z)
            out.append(z)
        return np.concatenate(out, axis=1)  # [B, n*K*D]


def _latent_space(dim: int) -> spaces.Box:
    """Unbounded float32 vectors of length ``dim``."""
    return spaces.Box(-np.inf, np.inf, (dim,), np.float32)


class LatentObservation(gym.ObservationWrapper):
    """Replace image observations ``[H, W, n*C]`` by the world model's flat latents ``[n*K*D]`` float32."""

    def __init__(self, env: gym.Env, model: ModelSource | LatentEncoder, device: str | torch.device = "cpu"):
        super().__init__(env)
        self.encoder = model if isinstance(model, LatentEncoder) else LatentEncoder(model, device)
        check_env_matches(self.encoder.spec, env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or space.dtype != np.uint8:
            raise ValueError(f"LatentObservation needs uint8 image observations, got {space}")
        self.observation_space = _latent_space(self.encoder.latent_dim(space.shape))

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """``[H, W, n*C]`` uint8 -> ``[n*K*D]`` float32."""
        return self.encoder(observation[None])[0]


class VecLatentObservation(VecEnvWrapper):
    """SB3 VecEnv wrapper: encode the images of all sub-environments in one batch (and terminal observations)."""

    def __init__(self, venv: VecEnv, model: ModelSource | LatentEncoder, device: str | torch.device = "cpu"):
        self.encoder = model if isinstance(model, LatentEncoder) else LatentEncoder(model, device)
        space = venv.observation_space
        if not isinstance(space, spaces.Box) or space.dtype != np.uint8:
            raise ValueError(f"VecLatentObservation needs uint8 image observations, got {space}")
        super().__init__(venv, observation_space=_latent_space(self.encoder.latent_dim(space.shape)))

    def reset(self) -> np.ndarray:
        """Reset all sub-environments; latents ``[N, n*K*D]``."""
        return self.encoder(self.venv.reset())

    def step_wait(self):
        """Step; latents ``[N, n*K*D]``, terminal observations encoded too (for bootstrapping)."""
        obs, rewards, dones, infos = self.venv.step_wait()
        ended = [i for i, info in enumerate(infos) if "terminal_observation" in info]
        if ended:
            finals = self.encoder(np.stack([infos[i]["terminal_observation"] for i in ended]))
            for j, i in enumerate(ended):
                infos[i]["terminal_observation"] = finals[j]
        return self.encoder(obs), rewards, dones, infos


class GoalImageObservation(gym.Wrapper):
    """Goal tasks: observation = ``concat(obs, info[goal_key])`` on the channel axis, ``[H, W, 2C]`` uint8."""

    def __init__(self, env: gym.Env, goal_key: str = "goal_image"):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or space.dtype != np.uint8 or len(space.shape) != 3:
            raise ValueError(f"GoalImageObservation needs [H, W, C] uint8 observations, got {space}")
        self.goal_key = goal_key
        h, w, c = space.shape
        self.observation_space = spaces.Box(0, 255, (h, w, 2 * c), np.uint8)

    def _stack(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """``[H, W, C]`` obs and goal -> ``[H, W, 2C]``."""
        if self.goal_key not in info:
            raise KeyError(
                f"info has no {self.goal_key!r}: GoalImageObservation needs an env that puts its goal image there "
                "(symwm's grid worlds with goal_moves=k, examples/hex_env.py, examples/puck_env.py)"
            )
        return np.concatenate([obs, info[self.goal_key]], axis=-1)  # [H, W, 2C]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset; the observation carries the new episode's goal image."""
        obs, info = self.env.reset(seed=seed, options=options)
        return self._stack(obs, info), info

    def step(self, action: Any):
        """Step; ``[H, W, 2C]`` observation."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._stack(obs, info), reward, terminated, truncated, info
