"""Collect random-policy rollouts of a symwm environment into an HDF5 file (the world models' training data).

One file holds ``N`` episodes of exactly ``T`` recorded steps (see :func:`collect`)::

    obs                uint8   [N, T+1, H, W, C]   observation before step t (t = 0..T)
    actions            int64   [N, T]  (discrete)  or float32 [N, T, A] (continuous)
    rewards            float32 [N, T]
    states/<key>               [N, T+1, ...]       ground-truth state, one dataset per key
    episode_seeds      int64   [N]                 reset seed of each episode
    twins/obs          uint8   [N, G, T+1, H, W, C]   (optional) renders of g . s_t
    twins/actions              [N, G, T(, A)]         rho_A(g) a_t
    twins/states/<key>         [N, G, T+1, ...]       g . s_t
    twins/elements     int64 [G] indices into env.symmetry.<attrs["group"]>.elements(),
                       or float64 [G, 3, 3] rotation matrices (SO(3))

Every dataset is chunked by blocks of whole episodes, about 1 MiB of observations each (at least one
episode; ``twins/obs`` also per twin), compressed (gzip
level 4 by default: smaller than lzf and no slower to read on our images) and
checksummed (fletcher32), so a corrupted chunk raises on read instead of returning garbage.
Root attributes: ``format_version``, ``env_id``, ``env_kwargs`` (JSON), ``actions`` (subset
text, ``""`` for all actions), ``seed``, ``policy`` (``"random"``), ``n_episodes``,
``episode_length``, ``warmup_steps``, ``twins``, ``symwm_version``, ``created`` (UTC, ISO 8601),
``compression`` and, written last, ``complete = True``.

Read the files with :mod:`symwm.world_models.datasets` (``open_dataset``, ``TransitionDataset``,
``PathDataset``).
"""

from __future__ import annotations

import contextlib
import copy
import errno
import functools
import glob
import json
import os
import re
import shutil
import signal
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import gymnasium as gym
import h5py
import numpy as np
from gymnasium import spaces
from tqdm.auto import tqdm

import symwm
from symwm.envs.registration import find_env_spec
from symwm.envs.grid_world import SubsetDiscrete
from symwm.envs.symmetry import SymmetricEnv
from symwm.world_models.locks import pid_alive, acquire_lock

#: version of the file layout written by :func:`collect` (readers refuse other versions)
FORMAT_VERSION = 1
#: HDF5 filters. Measured on 300 Cubes3D / 100 Reacher episodes of 10 steps (obs 25 / 27 MB raw):
#: gzip-4 gives 1.5 / 2.1 MB, lzf 3.1 / 14.6 MB; gzip-4 also decompressed no slower (38-72 ms vs
#: 114-126 ms for the whole array) and compressing takes ~0.2 s either way, far below the env steps
COMPRESSIONS = {"gzip": {"compression": "gzip", "compression_opts": 4}, "lzf": {"compression": "lzf"}}
DEFAULT_COMPRESSION = "gzip"

#: ``twins=`` value for the single element the release's EE and DIE use
QUARTER_TURN = "quarter-turn"

_BOX_CONSTRAINT = re.compile(r"^(\d+)\s*(>=|<=)\s*(\S+)$")


# -------------------------------------------------------------------------------------------------
# Action subsets (the paper's limited-action datasets)
# -------------------------------------------------------------------------------------------------


@dataclass
class ActionSubset:
    """A restriction of an env's action space parsed from text ("no-left", "up,right", "1>=0", "0,2,4")."""

    text: str
    #: the restricted space; the random policy samples from (a seeded copy of) it
    space: spaces.Space
    #: extra env kwargs that make the env itself enforce the subset (grid worlds: allowed_actions)
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def contains(self, action: Any) -> bool:
        """Whether ``action`` is in the subset."""
        return bool(self.space.contains(action))


def _subset_forms(env: gym.Env) -> str:
    """The valid forms of action-subset text for ``env``, for error messages."""
    base = env.unwrapped
    space = base.action_space
    if isinstance(space, spaces.Discrete):
        ids = f"action ids {space.start}..{space.start + space.n - 1}"
        names = getattr(base, "motion_names", None)
        if names:
            return (
                f"comma-separated motion names from {list(names)} to allow (e.g. 'up' or 'up,right,down'), "
                f"{ids} (e.g. '0,2'), or 'no-<motion>' / 'no-<id>' entries to exclude (e.g. 'no-left')"
            )
        return f"comma-separated {ids} to allow (e.g. '0,2,4'), or 'no-<id>' entries to exclude (e.g. 'no-1')"
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return (
            f"comma-separated per-dimension bounds '<dim>>=<value>' or '<dim><=<value>' with dim in "
            f"0..{space.shape[0] - 1} (e.g. '1>=0' or '0<=0.5,1>=0')"
        )
    return f"none: action subsets are not supported for {space}"


def parse_action_subset(env: gym.Env, text: str) -> ActionSubset:
    """Parse an action-subset text for ``env``; raise ``ValueError`` naming the problem and the valid forms.

    Discrete actions: comma-separated motion names (grid worlds: every object's moves in that
    direction) or action ids to allow, or ``no-<motion>`` / ``no-<id>`` entries to exclude (the
    two kinds cannot be mixed). Box actions: comma-separated bounds ``<dim>>=<value>`` /
    ``<dim><=<value>``, intersected with the space's box.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"action subset must be a non-empty string; valid forms: {_subset_forms(env)}")
    base = env.unwrapped
    space = base.action_space
    tokens = [tok.strip() for tok in text.split(",")]
    if any(not tok for tok in tokens):
        raise ValueError(f"empty entry in action subset {text!r}; valid forms: {_subset_forms(env)}")
    if isinstance(space, spaces.Discrete):
        return _parse_discrete(env, text, tokens)
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return _parse_box(env, text, tokens)
    raise ValueError(f"action subsets are not supported for the action space {space} of {type(base).__name__}")


def _parse_discrete(env: gym.Env, text: str, tokens: list[str]) -> ActionSubset:
    base = env.unwrapped
    space: spaces.Discrete = base.action_space
    start, n = int(space.start), int(space.n)
    names = tuple(getattr(base, "motion_names", ()) or ())
    if start != 0:
        raise ValueError(f"action subsets need a Discrete space starting at 0, got {space}")

    def ids_of(tok: str) -> list[int]:
        if re.fullmatch(r"[+-]?\d+", tok):
            a = int(tok)
            if not start <= a < start + n:
                raise ValueError(f"action id {a} in {text!r} is out of range; valid forms: {_subset_forms(env)}")
            return [a]
        if tok in names:  # motion m of every object: a = 4 * object + m
            m = names.index(tok)
            return [a for a in range(start, start + n) if (a - start) % len(names) == m]
        raise ValueError(f"unknown action {tok!r} in {text!r}; valid forms: {_subset_forms(env)}")

    negative = [tok[3:].strip() for tok in tokens if tok.startswith("no-")]
    positive = [tok for tok in tokens if not tok.startswith("no-")]
    if negative and positive:
        raise ValueError(
            f"action subset {text!r} mixes allowed and excluded ('no-') entries (use one kind); "
            f"valid forms: {_subset_forms(env)}"
        )
    chosen = {a for tok in (positive or negative) for a in ids_of(tok)}
    allowed = sorted(chosen) if positive else sorted(set(range(start, start + n)) - chosen)
    if not allowed:
        raise ValueError(f"action subset {text!r} excludes every action; valid forms: {_subset_forms(env)}")
    restricted = SubsetDiscrete(n, allowed)
    # grid worlds enforce the subset themselves (step rejects other actions)
    extra = {"allowed_actions": allowed} if names else {}
    return ActionSubset(text=text, space=restricted, env_kwargs=extra)


def _parse_box(env: gym.Env, text: str, tokens: list[str]) -> ActionSubset:
    space: spaces.Box = env.unwrapped.action_space
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    dims = space.shape[0]
    for tok in tokens:
        match = _BOX_CONSTRAINT.match(tok)
        try:
            value = float(match.group(3)) if match else float("nan")
        except ValueError:
            value = float("nan")
        if not match or not np.isfinite(value):
            raise ValueError(f"cannot parse {tok!r} in action subset {text!r}; valid forms: {_subset_forms(env)}")
        dim, op = int(match.group(1)), match.group(2)
        if dim >= dims:
            raise ValueError(f"dimension {dim} in {tok!r} is out of range; valid forms: {_subset_forms(env)}")
        if op == ">=":
            low[dim] = max(low[dim], value)
        else:
            high[dim] = min(high[dim], value)
    if np.any(low > high):
        bad = int(np.flatnonzero(low > high)[0])
        raise ValueError(
            f"action subset {text!r} leaves no actions: dimension {bad} would need {low[bad]} <= a <= {high[bad]} "
            f"(the action box is [{space.low[bad]}, {space.high[bad]}])"
        )
    restricted = spaces.Box(low.astype(space.dtype), high.astype(space.dtype), space.shape, space.dtype)
    return ActionSubset(text=text, space=restricted)


# -------------------------------------------------------------------------------------------------
# Seeds and twins
# -------------------------------------------------------------------------------------------------


def episode_seeds(seed: int, index: int) -> tuple[int, int]:
    """``(reset_seed, action_seed)`` of episode ``index`` of a dataset collected with ``seed``.

    Derived with ``numpy.random.SeedSequence(seed, spawn_key=(0, index))``: independent of the
    number of episodes and of ``n_envs``, and, unlike ``seed + index``, datasets with different
    seeds (training vs evaluation) share no episodes.
    """
    words = np.random.SeedSequence(seed, spawn_key=(0, index)).generate_state(2, np.uint64)
    return int(words[0] >> np.uint64(1)), int(words[1] >> np.uint64(1))  # 63 bits: fits int64


def parse_twins(text: str | None) -> str | int | None:
    """The ``twins`` option from command-line text: ``'quarter-turn'``, ``'all'``, a count; None stays None."""
    if text is None:
        return None
    text = str(text).strip()
    if text in (QUARTER_TURN, "all"):
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"twins must be '{QUARTER_TURN}', 'all' or a positive int, got {text!r}") from None


def choose_twin_elements(env: gym.Env, twins: str | int, seed: int) -> tuple[list[Any], np.ndarray | None]:
    """The group elements of a dataset's transformed twins and, for finite groups, their indices.

    ``"quarter-turn"``: the one element the authors' release measures EE and DIE at
    (``env.symmetry.quarter_turn()``); ``"all"``: every element of ``env.symmetry.action_group``
    (finite groups only); an int ``n``:
    ``n`` distinct elements (finite groups, sorted by index) or ``n`` Haar samples (SO(3)) drawn
    from a generator seeded by ``SeedSequence(seed, spawn_key=(1,))``.
    """
    sym = env.unwrapped.symmetry
    group = sym.action_group
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    if twins == QUARTER_TURN:
        g = sym.quarter_turn()
        if not group.contains(g):
            raise ValueError(f"the quarter turn {g!r} is not in the action group {group.name}")
        if not group.is_finite:
            return [g], None
        index = next(i for i, h in enumerate(group.elements()) if group.equal(g, h))
        return [g], np.array([index], dtype=np.int64)
    if twins == "all":
        if not group.is_finite:
            raise ValueError(f"twins='all' needs a finite action group, but it is {group.name}; pass an int")
        elements = group.elements()
        return elements, np.arange(len(elements), dtype=np.int64)
    if isinstance(twins, bool) or not isinstance(twins, (int, np.integer)) or twins < 1:
        raise ValueError(f"twins must be None, '{QUARTER_TURN}', 'all' or a positive int, got {twins!r}")
    n = int(twins)
    if not group.is_finite:
        return [group.sample(rng) for _ in range(n)], None
    if n > group.order:
        raise ValueError(f"twins={n} exceeds the {group.order} elements of {group.name}; use 'all'")
    elements = group.elements()
    indices = np.sort(rng.choice(group.order, size=n, replace=False)).astype(np.int64)
    return [elements[i] for i in indices], indices


# -------------------------------------------------------------------------------------------------
# Running environments
# -------------------------------------------------------------------------------------------------


def _make_env(env_id: str, env_kwargs: Mapping[str, Any], max_episode_steps: int) -> gym.Env:
    """Module-level env factory (picklable, imports symwm so that the ids are registered in workers)."""
    return gym.make(env_id, max_episode_steps=max_episode_steps, **env_kwargs)


class _SerialRunner:
    """One env stepped in this process, with the batched interface of :class:`_VectorRunner`."""

    def __init__(self, factory: Callable[[], gym.Env], state_keys: tuple[str, ...]):
        self.env, self.keys, self.num_envs = factory(), state_keys, 1

    def reset(self, seeds: list[int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        obs, info = self.env.reset(seed=seeds[0])
        return np.asarray(obs)[None], {k: np.asarray(info["state"][k])[None] for k in self.keys}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        obs, reward, _, _, info = self.env.step(actions[0])  # termination ignored: see collect()
        states = {k: np.asarray(info["state"][k])[None] for k in self.keys}
        return np.asarray(obs)[None], np.array([reward]), states

    def close(self) -> None:
        self.env.close()


class _VectorRunner:
    """``n`` envs in worker processes (Gymnasium ``AsyncVectorEnv`` with autoreset disabled).

    With ``AutoresetMode.DISABLED`` a sub-env is never reset behind our back: every batch of
    episodes starts with an explicit ``reset(seed=[...])`` and steps continue past termination
    exactly as in :class:`_SerialRunner`. (``SyncVectorEnv`` asserts on stepping after a
    termination in that mode, hence the serial runner for ``n_envs=1``.)
    """

    def __init__(self, factory: Callable[[], gym.Env], state_keys: tuple[str, ...], n: int):
        self.keys, self.num_envs = state_keys, n
        self.env = gym.vector.AsyncVectorEnv(
            [factory] * n, autoreset_mode=gym.vector.AutoresetMode.DISABLED
        )

    def _states(self, info: dict[str, Any]) -> dict[str, np.ndarray]:
        return {k: np.asarray(info["state"][k]) for k in self.keys}  # batched dict, masks dropped

    def reset(self, seeds: list[int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        obs, info = self.env.reset(seed=seeds)
        return np.asarray(obs), self._states(info)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        obs, reward, _, _, info = self.env.step(actions)
        return np.asarray(obs), np.asarray(reward), self._states(info)

    def close(self) -> None:
        self.env.close()


# -------------------------------------------------------------------------------------------------
# Collection
# -------------------------------------------------------------------------------------------------


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def collect(
    path: str | os.PathLike,
    env_id: str,
    n_episodes: int,
    episode_length: int = 10,
    *,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    actions: str | None = None,
    warmup_steps: int = 0,
    twins: str | int | None = None,
    n_envs: int = 1,
    progress: bool = True,
    compression: str = DEFAULT_COMPRESSION,
) -> Path:
    """Write ``n_episodes`` random-policy episodes of ``env_id`` to the HDF5 file ``path``; return the path.

    Each episode: ``reset(seed=reset_seed)`` (seeds from :func:`episode_seeds`, so the data do not
    depend on ``n_envs``), ``warmup_steps`` unrecorded random steps (the paper's Reacher uses 50),
    then exactly ``episode_length`` recorded steps. ``terminated`` is ignored: every symwm env
    keeps stepping correctly after reaching its goal (RotatingObject, and grid worlds with
    ``goal_moves``, signal termination there; the other default configurations never do), so all
    episodes have the same length. The registered time limit is raised to the episode's length. Actions are drawn uniformly from the action space, or from the subset ``actions``
    (see :func:`parse_action_subset`).

    ``twins``: ``None``, ``"all"`` or an int (see :func:`choose_twin_elements`); for each element
    ``g`` and each episode the file stores renders of ``g . s_t``, ``rho_A(g) a_t`` and ``g . s_t``.
    ``n_envs > 1`` steps that many envs in worker processes. The file is written under a temporary
    name in the same directory and moved to ``path`` (replacing any file there) only once complete.
    """
    n_episodes = _check_int("n_episodes", n_episodes, 1)
    episode_length = _check_int("episode_length", episode_length, 1)
    warmup_steps = _check_int("warmup_steps", warmup_steps, 0)
    n_envs = min(_check_int("n_envs", n_envs, 1), n_episodes)
    seed = _check_int("seed", seed, 0)
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {list(COMPRESSIONS)}, got {compression!r}")
    find_env_spec(env_id)  # a clear error for an unknown id; imports the module of a 'module:Name-v0' id
    kwargs = dict(env_kwargs or {})
    try:
        kwargs_json = json.dumps(kwargs, sort_keys=True)
    except TypeError as exc:
        raise ValueError(f"env_kwargs must be JSON-serialisable (they are stored in the file): {exc}") from exc
    if actions is not None and "allowed_actions" in kwargs:
        raise ValueError("pass either actions=... or env_kwargs['allowed_actions'], not both")

    total_steps = warmup_steps + episode_length
    env = _make_env(env_id, kwargs, total_steps)  # this process: shapes, subset parsing, twins
    try:
        if not isinstance(env.unwrapped, SymmetricEnv):
            raise ValueError(f"{env_id} is not a symwm SymmetricEnv (no ground-truth state to record)")
        subset = parse_action_subset(env, actions) if actions is not None else None
        if subset is not None and subset.env_kwargs:
            env.close()
            kwargs.update(subset.env_kwargs)
            env = _make_env(env_id, kwargs, total_steps)
        policy_space = copy.deepcopy(subset.space if subset is not None else env.unwrapped.action_space)
        elements, indices = (None, None) if twins is None else choose_twin_elements(env, twins, seed)

        attrs = {
            "format_version": FORMAT_VERSION,
            "env_id": env_id,
            "env_kwargs": kwargs_json,  # as given; the subset is in "actions"
            "actions": actions or "",
            "seed": seed,
            "policy": "random",
            "n_episodes": n_episodes,
            "episode_length": episode_length,
            "warmup_steps": warmup_steps,
            "twins": "" if twins is None else str(twins),
            "symwm_version": symwm.__version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "compression": compression,
        }
        factory = functools.partial(_make_env, env_id, kwargs, total_steps)

        def fill(h5: h5py.File) -> None:
            writer = _Writer(h5, env, n_episodes, episode_length, attrs, compression, elements, indices)
            _run(writer, env, factory, policy_space, n_envs, n_episodes, warmup_steps, episode_length, seed, progress)
            writer.flush()

        return write_rollout_file(path, fill)
    finally:
        env.close()


def write_rollout_file(path: str | os.PathLike, fill: Callable[[h5py.File], None]) -> Path:
    """Write a rollout file atomically: ``fill(h5)`` writes into a temporary file, marked complete and moved to ``path``.

    The output path is checked first; a lock keeps two writers apart; SIGINT, SIGTERM, an error or a
    full disk remove the temporary file and leave any earlier file at ``path`` unchanged.
    """
    path = _check_output_path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    lock = acquire_lock(path.parent / f".{path.name}.lock", f"dataset {path}", ValueError)
    _remove_stale_temporaries(path)
    try:
        with _terminate_as_interrupt(), h5py.File(tmp, "w") as h5:
            fill(h5)
            h5.attrs["complete"] = True  # last: readers refuse files without it
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno == errno.ENOSPC or "No space left" in str(exc):
            raise OSError(errno.ENOSPC, f"disk full while writing {path} (temporary file removed; any earlier "
                                        f"{path.name} is unchanged): {exc.strerror or exc}") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
        lock.unlink(missing_ok=True)
    return path



def _check_output_path(path: str | os.PathLike) -> Path:
    """The output file's path, checked before any work: not empty, not a directory, in a writable directory."""
    if not str(path).strip():
        raise ValueError("the output path is empty")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"the output path {path} is a directory; give a file name such as {path / 'rollouts.h5'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(path.parent, os.W_OK):
        raise ValueError(f"cannot write to the directory {path.parent}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{path} exists and is not writable")
    return path


def _remove_stale_temporaries(path: Path) -> None:
    """Delete ``.<name>.<pid>.<hex>.tmp`` files of ``path`` left by collections that were killed (SIGKILL)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        parts = tmp.name[len(path.name) + 2 :].split(".")
        if len(parts) == 3 and parts[0].isdigit() and not pid_alive(int(parts[0])):
            tmp.unlink(missing_ok=True)


#: signals received by :func:`_terminate_as_interrupt`'s handler. Python swallows an exception raised
#: while it runs a weakref callback or a finaliser, so the writer also checks this before every episode.
_STOP_SIGNALS: list[int] = []


def _check_stop() -> None:
    """Raise ``KeyboardInterrupt`` if a SIGTERM arrived whose own interrupt may have been swallowed."""
    if _STOP_SIGNALS:
        raise KeyboardInterrupt(f"terminated by signal {_STOP_SIGNALS[-1]}")


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While collecting in the main thread, SIGTERM raises ``KeyboardInterrupt`` so the temporary file is removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        _STOP_SIGNALS.append(signum)
        raise KeyboardInterrupt(f"terminated by signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _STOP_SIGNALS.clear()


def ensure_collected(
    path: str | os.PathLike,
    env_id: str,
    n_episodes: int,
    episode_length: int = 10,
    **kwargs: Any,
) -> tuple[Path, bool]:
    """:func:`collect` unless ``path`` already holds a complete file made with the same settings.

    Returns ``(path, collected_now)``. Settings compared: env id and kwargs, action subset, seed,
    episode count and length, warm-up steps and twins; an incomplete, corrupt or different file is
    replaced. Used by the demo and the benchmarks so that interrupted runs continue.
    """
    from symwm.world_models.datasets import DatasetError, open_dataset

    twins = kwargs.get("twins")
    wanted = {
        "env_id": env_id,
        "env_kwargs": json.dumps(dict(kwargs.get("env_kwargs") or {}), sort_keys=True),
        "actions": kwargs.get("actions") or "",
        "seed": int(kwargs.get("seed", 0)),
        "n_episodes": int(n_episodes),
        "episode_length": int(episode_length),
        "warmup_steps": int(kwargs.get("warmup_steps", 0)),
        "twins": "" if twins is None else str(twins),
    }
    path = Path(path)
    if path.exists():
        try:
            with open_dataset(path, expect_env_id=env_id) as f:
                if all(f.attrs.get(k) == v for k, v in wanted.items()):
                    return path, False
        except DatasetError:
            pass
    return collect(path, env_id, n_episodes, episode_length, **kwargs), True


def _run(
    writer: "_Writer",
    env: gym.Env,
    factory: Callable[[], gym.Env],
    policy_space: spaces.Space,
    n_envs: int,
    n_episodes: int,
    warmup_steps: int,
    episode_length: int,
    seed: int,
    progress: bool,
) -> None:
    """Step the episodes in batches of ``n_envs`` and hand each finished episode to ``writer``."""
    keys = tuple(env.unwrapped.state_space.spaces)
    runner = _SerialRunner(factory, keys) if n_envs == 1 else _VectorRunner(factory, keys, n_envs)
    try:
        with tqdm(total=n_episodes, desc=f"collect {writer.env_id}", unit="ep", disable=not progress) as bar:
            for first in range(0, n_episodes, n_envs):
                batch = list(range(first, min(first + n_envs, n_episodes)))
                # idle sub-envs of the last batch replay the batch's first episode (results dropped)
                padded = batch + [batch[0]] * (n_envs - len(batch))
                seeds = [episode_seeds(seed, i) for i in padded]
                acts = []  # per episode: [warmup + T, ...] actions, from the episode's own generator
                for _, action_seed in seeds:
                    policy_space.seed(action_seed)
                    acts.append(np.stack([np.asarray(policy_space.sample()) for _ in range(warmup_steps + episode_length)]))
                acts_b = np.stack(acts)  # [n_envs, warmup + T, ...]
                obs, states = runner.reset([s for s, _ in seeds])
                for t in range(warmup_steps):
                    obs, _, states = runner.step(acts_b[:, t])
                obs_seq, state_seq, rewards = [obs], [states], []
                for t in range(warmup_steps, warmup_steps + episode_length):
                    obs, reward, states = runner.step(acts_b[:, t])
                    obs_seq.append(obs)
                    state_seq.append(states)
                    rewards.append(reward)
                obs_b = np.stack(obs_seq, axis=1)  # [n_envs, T+1, H, W, C]
                rew_b = np.stack(rewards, axis=1)  # [n_envs, T]
                states_b = {k: np.stack([s[k] for s in state_seq], axis=1) for k in keys}  # [n_envs, T+1, ...]
                for j, i in enumerate(batch):
                    writer.write(
                        i,
                        obs_b[j],
                        acts_b[j, warmup_steps:],
                        rew_b[j],
                        {k: v[j] for k, v in states_b.items()},
                        seeds[j][0],
                    )
                bar.update(len(batch))
    finally:
        runner.close()


#: target raw size of one HDF5 chunk (and of one buffered block of episodes written at once): short
#: episodes (the release's one-step recipe) share a chunk instead of paying per-chunk overhead
CHUNK_BYTES = 1 << 20
#: free space kept beyond a block's raw size (HDF5 metadata, the file's closing writes)
DISK_MARGIN = 4 << 20


class _Writer:
    """Creates the datasets of a rollout file and writes episodes (and their twins) a block at a time.

    Episodes arrive in index order through :meth:`write` and are buffered; every ``block``
    episodes (one chunk's worth of observations, at least one episode) they are written with one
    slice assignment per dataset. :meth:`flush` writes the rest and must be called before the file
    is marked complete.
    """

    def __init__(
        self,
        h5: h5py.File,
        env: gym.Env,
        n: int,
        length: int,
        attrs: Mapping[str, Any],
        compression: str,
        elements: list[Any] | None,
        indices: np.ndarray | None,
        with_states: bool = True,
    ):
        if elements is not None and not with_states:
            raise ValueError("transformed twins are rendered from ground-truth states: a file without states cannot have twins")
        self.h5, self.env, self.elements = h5, env.unwrapped, elements
        self.env_id = attrs["env_id"]
        h5.attrs.update(dict(attrs))
        opts = dict(COMPRESSIONS[compression], fletcher32=True)
        obs_shape = tuple(self.env.observation_space.shape)
        space = self.env.action_space
        self.discrete = isinstance(space, spaces.Discrete)
        act_shape, act_dtype = ((), np.int64) if self.discrete else (tuple(space.shape), np.float32)
        state_spaces = self.env.state_space.spaces if with_states else {}
        episode_bytes = (length + 1) * int(np.prod(obs_shape)) * (1 + (len(elements) if elements is not None else 0))
        self.block = int(min(n, max(1, CHUNK_BYTES // episode_bytes)))  # episodes per chunk and per write
        self.buffer: dict[str, list[np.ndarray]] = {}
        self.first = 0  # index of the first buffered episode

        def make(name: str, shape: tuple[int, ...], dtype: Any, per_chunk: tuple[int, ...] = ()) -> None:
            lead = (self.block,) + per_chunk
            h5.create_dataset(name, shape=shape, dtype=dtype, chunks=lead + shape[len(lead):], **opts)

        make("obs", (n, length + 1) + obs_shape, np.uint8)
        make("actions", (n, length) + act_shape, act_dtype)
        make("rewards", (n, length), np.float32)
        for key, sp in state_spaces.items():
            make(f"states/{key}", (n, length + 1) + tuple(sp.shape), sp.dtype)
        make("episode_seeds", (n,), np.int64)
        if elements is None:
            return
        g = len(elements)
        make("twins/obs", (n, g, length + 1) + obs_shape, np.uint8, (1,))
        make("twins/actions", (n, g, length) + act_shape, act_dtype)
        for key, sp in state_spaces.items():
            make(f"twins/states/{key}", (n, g, length + 1) + tuple(sp.shape), sp.dtype)
        group = self.env.symmetry.action_group
        if indices is not None:
            ds = h5.create_dataset("twins/elements", data=indices)
            ds.attrs["kind"] = "indices"
            ds.attrs["element_names"] = [repr(e) for e in elements]
        else:
            ds = h5.create_dataset("twins/elements", data=np.stack(elements).astype(np.float64))
            ds.attrs["kind"] = "matrices"
        ds.attrs["group"] = "action_group"
        ds.attrs["group_name"] = group.name

    def _add(self, name: str, value: np.ndarray) -> None:
        self.buffer.setdefault(name, []).append(value)

    def write(
        self,
        i: int,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        states: Mapping[str, np.ndarray],
        reset_seed: int,
    ) -> None:
        """Buffer episode ``i`` (obs [T+1, ...], actions [T, ...], rewards [T], states [T+1, ...]) and its twins."""
        _check_stop()
        if i != self.first + len(self.buffer.get("obs", ())):
            raise ValueError(f"episodes must be written in order: got {i}")
        self._add("obs", obs)
        self._add("actions", actions)
        self._add("rewards", rewards.astype(np.float32))
        for key, value in states.items():
            self._add(f"states/{key}", value)
        self._add("episode_seeds", np.int64(reset_seed))
        if self.elements is not None:
            self._add_twins(actions, states)
        if len(self.buffer["obs"]) >= self.block:
            self.flush()

    def flush(self) -> None:
        """Write the buffered episodes (one slice assignment per dataset)."""
        count = len(self.buffer.get("obs", ()))
        if not count:
            return
        rows = slice(self.first, self.first + count)
        blocks = {name: np.stack(values) for name, values in self.buffer.items()}
        # HDF5 that hits a full disk floods stderr and can crash on close: stop before it would
        need = sum(b.nbytes for b in blocks.values()) + DISK_MARGIN
        free = shutil.disk_usage(Path(self.h5.filename).parent).free
        if free < need:
            raise OSError(errno.ENOSPC, f"No space left on device ({free / 2**20:.1f} MiB free, the next block needs up to {need / 2**20:.1f} MiB)")
        for name, block in blocks.items():
            self.h5[name][rows] = block
        self.first += count
        self.buffer = {}

    def _add_twins(self, actions: np.ndarray, states: Mapping[str, np.ndarray]) -> None:
        env, sym = self.env, self.env.symmetry
        steps = len(actions) + 1
        twin_obs, twin_actions, twin_states = [], [], {k: [] for k in states}
        for g in self.elements:
            moved = [sym.act_on_state(g, {k: v[t] for k, v in states.items()}) for t in range(steps)]
            twin_obs.append(np.stack([env.observation_of(s) for s in moved]))  # [T+1, H, W, C]
            twin_actions.append(np.stack([np.asarray(sym.act_on_action(g, a)) for a in actions]))  # [T, ...]
            for key in states:
                twin_states[key].append(np.stack([s[key] for s in moved]))  # [T+1, ...]
        self._add("twins/obs", np.stack(twin_obs))  # [G, T+1, H, W, C]
        self._add("twins/actions", np.stack(twin_actions))  # [G, T, ...]
        for key, value in twin_states.items():
            self._add(f"twins/states/{key}", np.stack(value))  # [G, T+1, ...]
