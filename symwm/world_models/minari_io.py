"""Rollouts users already have: Minari datasets (Gymnasium's offline format) as symwm rollout files.

:func:`from_minari` converts a Minari dataset recorded from a registered symmetric environment
into symwm's HDF5 format; ``symwm import-minari ID --out file.h5`` and ``symwm train --dataset
minari:ID`` use it. Episodes of any length are cut into windows of ``steps`` transitions (the
remainder of each episode is dropped); ``steps=1`` keeps every transition, which is all training needs.

What needs the environment's ground-truth state, and what does not:

* training, Hits@k and MRR use observations and actions only: any Minari dataset of the env works;
* transformed twins (EE, DIE), hard negatives and the planners' ground truth need the state of
  every step. symwm envs put it in ``info["state"]``; record the dataset with
  ``minari.DataCollector(env, record_infos=True)`` and the converter keeps it, and can then render
  twins (``twins=``) with the environment itself.

Minari is optional (``pip install "minari[hdf5]>=0.5.1,<0.5.4"``; 0.5.4 needs numpy 2, which
escnn's lie-learn does not support yet).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import symwm
from symwm.envs.symmetry import SymmetricEnv
from symwm.world_models.collect import FORMAT_VERSION, _Writer, choose_twin_elements, write_rollout_file

PREFIX = "minari:"


def _load(dataset: Any) -> Any:
    try:
        import minari
    except ImportError as exc:
        raise ImportError('reading Minari datasets needs minari: pip install "minari[hdf5]>=0.5.1,<0.5.4"') from exc
    if isinstance(dataset, str):
        try:
            return minari.load_dataset(dataset)
        except Exception as exc:  # minari raises several types for unknown or unreadable ids
            raise ValueError(f"cannot load the Minari dataset {dataset!r}: {exc}") from exc
    return dataset


def _episode_states(ep: Any, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The ground-truth states ``[T+1, ...]`` per key from ``info["state"]``, or None when they were not recorded."""
    states = ep.infos.get("state") if isinstance(ep.infos, dict) else None
    if not isinstance(states, dict) or set(states) != set(keys):
        return None
    return {k: np.asarray(states[k]) for k in keys}


def from_minari(
    dataset: Any,
    path: str | os.PathLike,
    steps: int = 1,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    twins: str | int | None = None,
    seed: int = 0,
    compression: str = "gzip",
) -> Path:
    """Write the Minari ``dataset`` (an id or a loaded ``MinariDataset``) to ``path`` as a symwm rollout file.

    ``env_id`` / ``env_kwargs`` default to the dataset's recorded environment spec (give the
    ``module:Name-v0`` form for an environment registered by one's own module). Returns ``path``.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    ds = _load(dataset)
    spec = getattr(ds, "env_spec", None) or getattr(getattr(ds, "spec", None), "env_spec", None)
    if env_id is None:
        if spec is None:
            raise ValueError("the Minari dataset records no environment spec; pass env_id")
        env_id = spec.id
        module = spec.entry_point.partition(":")[0] if isinstance(spec.entry_point, str) else ""
        if module and not module.startswith("symwm."):  # a user's env: stored as 'module:id' so that every
            env_id = f"{module}:{env_id}"  # later process imports the module (which registers it); env_id= overrides
    kwargs = dict(env_kwargs if env_kwargs is not None else (getattr(spec, "kwargs", None) or {}))
    env = gym.make(env_id, **kwargs)
    base = env.unwrapped
    try:
        if not isinstance(base, SymmetricEnv):
            raise ValueError(f"{env_id} is not a symwm SymmetricEnv: symwm's models need the env's symmetry")
        keys = tuple(base.state_space.spaces)
        episodes = list(ds.iterate_episodes())
        if not episodes:
            raise ValueError("the Minari dataset has no episodes")
        obs_shape = tuple(base.observation_space.shape)
        first = np.asarray(episodes[0].observations)
        if first.dtype != np.uint8 or tuple(first.shape[1:]) != obs_shape:
            raise ValueError(
                f"the Minari dataset's observations are {first.dtype} {tuple(first.shape[1:])}, {env_id} emits uint8 {obs_shape}"
            )
        states = [_episode_states(ep, keys) for ep in episodes]  # [T+1, ...] per key, or None
        with_states = all(x is not None for x in states)
        if twins is not None and not with_states:
            raise ValueError(
                "twins are rendered from ground-truth states, which this Minari dataset lacks: record it with "
                "minari.DataCollector(env, record_infos=True) from the symwm env (info['state']), or convert without twins"
            )
        windows = [(i, w) for i, ep in enumerate(episodes) for w in range(len(ep) // steps)]
        if not windows:
            raise ValueError(f"no Minari episode has {steps} steps")
        elements, indices = (None, None) if twins is None else choose_twin_elements(env, twins, seed)
        attrs = {
            "format_version": FORMAT_VERSION, "env_id": env_id, "env_kwargs": json.dumps(kwargs, sort_keys=True),
            "actions": "", "seed": seed, "policy": "minari", "n_episodes": len(windows), "episode_length": steps,
            "warmup_steps": 0, "twins": "" if twins is None else str(twins), "symwm_version": symwm.__version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "compression": compression,
            "source": f"minari:{getattr(ds, 'id', None) or getattr(getattr(ds, 'spec', None), 'dataset_id', '')}",
            "states": "recorded" if with_states else "none",
        }

        def fill(h5: Any) -> None:
            writer = _Writer(h5, env, len(windows), steps, attrs, compression, elements, indices, with_states=with_states)
            for n, (i, w) in enumerate(windows):
                ep, t = episodes[i], slice(w * steps, w * steps + steps + 1)
                writer.write(
                    n, np.asarray(ep.observations)[t], np.asarray(ep.actions)[w * steps : (w + 1) * steps],
                    np.asarray(ep.rewards)[w * steps : (w + 1) * steps],
                    {k: v[t] for k, v in states[i].items()} if with_states else {}, reset_seed=-1,
                )
            writer.flush()

        return write_rollout_file(path, fill)
    finally:
        env.close()


def resolve_dataset(dataset: str, out_dir: str | os.PathLike) -> str:
    """A training ``--dataset``: a rollout file as is, or ``minari:ID`` converted (once) into ``out_dir``."""
    if not dataset.startswith(PREFIX):
        return dataset
    name = dataset[len(PREFIX):]
    target = Path(out_dir) / f"minari-{name.replace('/', '_')}.h5"
    if not target.exists():
        from_minari(name, target)
    return str(target)
