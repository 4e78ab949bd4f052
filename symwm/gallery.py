"""The environment gallery: every environment beside its transformed twin.

For each registered environment: the observation of a state ``s``, the observation of the
transformed state ``g . s`` rendered by the environment (the twin), and the naive pixel rotation
of the first image. Where the camera is pixel-symmetric the last two agree; for the 3D and
oblique views they do not, which is why the group's action on pixels has to be learned.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np

from symwm.envs import ENV_IDS
from symwm.envs.groups import DihedralElement, transform_grid

QUARTER_TURN = DihedralElement(rotation=1, reflection=False)


def quarter_turn(env: gym.Env):
    """The group element 'rotate by 90 degrees counter-clockwise' (about the view axis) of ``env``."""
    return env.unwrapped.symmetry.quarter_turn()


def rgb(frame: np.ndarray) -> np.ndarray:
    """Last RGB frame of an observation (stacked frames) or a grayscale frame as RGB."""
    if frame.shape[-1] == 1:
        return np.repeat(frame, 3, axis=-1)
    return frame[..., -3:]


def gallery_rows(seed: int = 0, env_ids: tuple[str, ...] = ENV_IDS) -> list[tuple[str, list[np.ndarray]]]:
    """For each env: (id, [obs of s, obs of g.s, rot90 of obs of s]) for g = a quarter turn."""
    rows = []
    for env_id in env_ids:
        env = gym.make(env_id)
        base = env.unwrapped
        obs, info = env.reset(seed=seed)
        for _ in range(3):  # a few steps so the state is not the reset distribution's mode
            obs, _, _, _, info = env.step(env.action_space.sample())
        g = quarter_turn(env)
        twin = base.observation_of(base.symmetry.act_on_state(g, info["state"]))
        rows.append((env_id, [rgb(obs), rgb(twin), rgb(transform_grid(QUARTER_TURN, obs))]))
        env.close()
    return rows


def save_gallery(path: str | os.PathLike, seed: int = 0, upscale: int = 3) -> Path:
    """Write the gallery PNG (one row per environment) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = gallery_rows(seed)
    titles = ["observation of s", "twin: observation of g.s", "pixels of s rotated 90°"]
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.6 * len(rows)), squeeze=False)
    for r, (env_id, images) in enumerate(rows):
        for c, image in enumerate(images):
            ax = axes[r, c]
            ax.imshow(image.repeat(upscale, 0).repeat(upscale, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(env_id.split("/")[1], fontsize=9)
    fig.suptitle("g = quarter turn counter-clockwise (about the view axis for RotatingObject)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path
