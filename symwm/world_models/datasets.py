"""Read rollout files written by :func:`symwm.world_models.collect.collect` as torch datasets.

* :func:`open_dataset` / :class:`RolloutFile`: open and validate a file (missing, not HDF5,
  truncated, missing datasets, inconsistent shapes, incomplete, unknown format version, wrong
  env) and raise :class:`DatasetError` naming the file and the problem.
* :class:`TransitionDataset`: one-step transitions ``(obs, action, next_obs)`` for training.
* :class:`PathDataset`: ``h``-step paths ``(obs, actions, next_obs)`` for the ranking metrics;
  by default one path per episode, from its first step (as the paper evaluates).

Both return dicts of tensors: observations uint8 ``[H, W, C]`` (``WorldModel.preprocess`` turns
them into floats), actions int64 scalars or float32 ``[A]``. With ``states=True`` they add the
ground-truth states, with ``twins=True`` the transformed twins used by the EE and DIE metrics.
``in_memory=None`` (the default) loads the file whole when it needs at most half the available
memory and streams it from disk otherwise; ``True`` forces loading (refused past that share),
``False`` reads lazily, opening the file once per process (h5py handles are never
shared across ``fork``); the datasets are picklable, so ``DataLoader(num_workers=...)`` and
``DistributedSampler`` work as usual.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

import symwm.envs  # noqa: F401  (registers the environments for make_env)
from symwm.envs.registration import same_env_id
from symwm.world_models.collect import FORMAT_VERSION

#: format versions this module can read
SUPPORTED_VERSIONS = (FORMAT_VERSION,)
#: chunk cache per open file: holds a few whole-episode chunks (Reacher episodes are ~1 MB raw)
_CACHE_BYTES = 32 * 2**20
_REQUIRED_ATTRS = ("env_id", "env_kwargs", "n_episodes", "episode_length")


#: datasets larger than this share of the available memory stream from disk (``in_memory=None``)
MEMORY_SHARE = 0.5


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable on Linux, else the physical memory)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


class DatasetError(ValueError):
    """A rollout file is missing, unreadable, incomplete or not what the caller expected."""


class RolloutFile:
    """A validated, open rollout file; index it like an ``h5py.File`` (``f["obs"][i, t]``).

    Use as a context manager or call :meth:`close`. Attributes: ``path``, ``attrs`` (the root
    attributes as a dict), ``env_id``, ``env_kwargs``, ``n_episodes``, ``episode_length``,
    ``obs_shape`` (H, W, C), ``action_shape`` (``()`` or ``(A,)``), ``discrete``, ``state_keys``,
    ``n_twins`` (0 without twins).
    """

    def __init__(self, path: str | os.PathLike, expect_env_id: str | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise DatasetError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise DatasetError(f"{self.path}: not a regular file")
        try:
            self.h5 = h5py.File(self.path, "r")
        except OSError as exc:  # not HDF5, truncated, or corrupt superblock
            raise DatasetError(f"{self.path}: not a readable HDF5 file (truncated or corrupt?): {exc}") from exc
        try:
            self._validate(expect_env_id)
        except OSError as exc:  # corrupt metadata found while validating
            self.h5.close()
            raise DatasetError(f"{self.path}: corrupt HDF5 file: {exc}") from exc
        except BaseException:
            self.h5.close()
            raise

    # -- validation --------------------------------------------------------------------------

    def _fail(self, problem: str) -> DatasetError:
        return DatasetError(f"{self.path}: {problem}")

    def _validate(self, expect_env_id: str | None) -> None:
        h5 = self.h5
        attrs = {k: _plain(v) for k, v in h5.attrs.items()}
        self.attrs = attrs
        if "format_version" not in attrs:
            raise self._fail("no 'format_version' attribute: not a symwm rollout file")
        if attrs["format_version"] not in SUPPORTED_VERSIONS:
            raise self._fail(
                f"format version {attrs['format_version']!r} is not supported "
                f"(this symwm reads version(s) {list(SUPPORTED_VERSIONS)}); recollect or upgrade symwm"
            )
        if attrs.get("complete") is not True:
            raise self._fail("incomplete collection (attribute 'complete' is not True): the collection was interrupted")
        missing = [k for k in _REQUIRED_ATTRS if k not in attrs]
        if missing:
            raise self._fail(f"missing attribute(s) {missing}")
        self.env_id: str = attrs["env_id"]
        if expect_env_id is not None and not same_env_id(self.env_id, expect_env_id):
            raise self._fail(f"holds episodes of {self.env_id!r}, expected {expect_env_id!r}")
        try:
            self.env_kwargs: dict[str, Any] = json.loads(attrs["env_kwargs"])
        except (TypeError, json.JSONDecodeError) as exc:
            raise self._fail(f"attribute 'env_kwargs' is not valid JSON: {exc}") from exc

        for name in ("obs", "actions", "rewards"):
            if name not in h5:
                raise self._fail(f"missing dataset {name!r}")
        self.has_states = "states" in h5  # files converted from rollouts without ground truth have none
        if not self.has_states and attrs.get("states") != "none":
            raise self._fail("missing dataset 'states'")
        obs, actions, rewards = h5["obs"], h5["actions"], h5["rewards"]
        if obs.dtype != np.uint8 or obs.ndim != 5:
            raise self._fail(f"'obs' must be uint8 [N, T+1, H, W, C], got {obs.dtype} {obs.shape}")
        n, steps = obs.shape[:2]
        self.n_episodes, self.episode_length = int(n), int(steps) - 1
        if (self.n_episodes, self.episode_length) != (attrs["n_episodes"], attrs["episode_length"]):
            raise self._fail(
                f"'obs' has shape {obs.shape} but the attributes say {attrs['n_episodes']} episodes "
                f"of {attrs['episode_length']} steps"
            )
        if self.episode_length < 1:
            raise self._fail("episodes have no steps")
        self.obs_shape: tuple[int, ...] = tuple(obs.shape[2:])
        self._check_shape("actions", actions.shape[:2], (n, steps - 1), "actions length must be obs length - 1")
        self.discrete = actions.ndim == 2
        if self.discrete != (actions.dtype.kind in "iu") or actions.ndim not in (2, 3):
            raise self._fail(f"'actions' must be int [N, T] or float [N, T, A], got {actions.dtype} {actions.shape}")
        self.action_shape: tuple[int, ...] = tuple(actions.shape[2:])
        self._check_shape("rewards", rewards.shape, (n, steps - 1), "one reward per action")
        self.state_keys: tuple[str, ...] = ()
        if self.has_states:
            states = h5["states"]
            if not isinstance(states, h5py.Group) or not len(states):
                raise self._fail("'states' must be a group with one dataset per state key")
            self.state_keys = tuple(states)
            for key in self.state_keys:
                self._check_shape(f"states/{key}", states[key].shape[:2], (n, steps), "one state per observation")

        self.n_twins = 0
        if "twins" in h5:
            self._validate_twins(n, steps)
        self._validate_values()

    def _validate_values(self) -> None:
        """Refuse non-finite rewards and actions, and actions outside the env's action space (NaN, 1e30, bad ids)."""
        names = ["actions", "rewards"] + (["twins/actions"] if self.n_twins else [])
        values = {}
        for name in names:
            data = self.h5[name][()]
            if data.dtype.kind == "f" and not np.isfinite(data).all():
                where = tuple(int(i) for i in np.argwhere(~np.isfinite(data))[0])
                raise self._fail(f"non-finite value {data[where]} in {name!r} at index {where}")
            values[name] = data
        if self.env_id not in gym.registry:
            return
        space = self.make_env().action_space
        for name in ("actions", "twins/actions"):
            if name not in values:
                continue
            a = values[name]
            if isinstance(space, gym.spaces.Discrete):
                ok = (a >= space.start) & (a < space.start + space.n)
                what = f"{space.start}..{space.start + space.n - 1}"
            elif isinstance(space, gym.spaces.Box):
                tol = 1e-5 * np.maximum(1.0, np.abs(space.high))
                ok = np.all((a >= space.low - tol) & (a <= space.high + tol), axis=-1)
                what = f"[{space.low.tolist()}, {space.high.tolist()}]"
            else:
                return
            if not np.all(ok):
                where = tuple(int(i) for i in np.argwhere(~ok)[0])
                raise self._fail(f"{name!r} at index {where} holds {a[where].tolist()}, outside the action space {what}")

    def _check_shape(self, name: str, got: tuple[int, ...], want: tuple[int, ...], why: str) -> None:
        if tuple(got) != tuple(want):
            raise self._fail(f"inconsistent shapes: {name!r} starts with {tuple(got)}, expected {tuple(want)} ({why})")

    def _validate_twins(self, n: int, steps: int) -> None:
        tw = self.h5["twins"]
        for name in ("obs", "actions", "states", "elements"):
            if name not in tw:
                raise self._fail(f"missing dataset 'twins/{name}'")
        g = tw["elements"].shape[0]
        self._check_shape("twins/obs", tw["obs"].shape, (n, g, steps) + self.obs_shape, "one twin per element")
        self._check_shape("twins/actions", tw["actions"].shape, (n, g, steps - 1) + self.action_shape, "twin actions")
        if set(tw["states"]) != set(self.state_keys):
            raise self._fail(f"twins/states has keys {sorted(tw['states'])}, states has {sorted(self.state_keys)}")
        for key in self.state_keys:
            want = (n, g, steps) + tuple(self.h5["states"][key].shape[2:])
            self._check_shape(f"twins/states/{key}", tw["states"][key].shape, want, "twin states")
        el = tw["elements"]
        if el.attrs.get("group") not in ("group", "action_group") or el.attrs.get("kind") not in ("indices", "matrices"):
            raise self._fail("'twins/elements' needs attributes group ('group' or 'action_group') and kind ('indices' or 'matrices')")
        self.n_twins = int(g)

    # -- access ------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        return self.h5[name]

    def __contains__(self, name: str) -> bool:
        return name in self.h5

    def make_env(self) -> gym.Env:
        """The unwrapped env the episodes came from (full action set): for ``observation_of`` and ``symmetry``."""
        return gym.make(self.env_id, **self.env_kwargs).unwrapped

    def twin_elements(self, env: gym.Env | None = None) -> list[Any]:
        """The group element of each twin, in twin order (``[]`` without twins)."""
        if not self.n_twins:
            return []
        ds = self.h5["twins/elements"]
        data = ds[()]
        if ds.attrs["kind"] == "matrices":
            return [np.array(m, dtype=np.float64) for m in data]
        group = getattr((env or self.make_env()).unwrapped.symmetry, ds.attrs["group"])
        elements = group.elements()
        if np.any(data < 0) or np.any(data >= len(elements)):
            raise self._fail(f"twins/elements has indices outside 0..{len(elements) - 1}")
        return [elements[int(i)] for i in data]

    def close(self) -> None:
        """Close the HDF5 file."""
        self.h5.close()

    def __enter__(self) -> "RolloutFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        subset = f", actions={self.attrs.get('actions')!r}" if self.attrs.get("actions") else ""
        return (
            f"RolloutFile({str(self.path)!r}, env={self.env_id}, {self.n_episodes} episodes x "
            f"{self.episode_length} steps{subset}, twins={self.n_twins})"
        )


def _plain(value: Any) -> Any:
    """HDF5 attribute values as plain Python values (numpy scalars -> int/float/bool/str)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def open_dataset(path: str | os.PathLike, expect_env_id: str | None = None) -> RolloutFile:
    """Open and validate a rollout file; raise :class:`DatasetError` naming the file and the problem."""
    return RolloutFile(path, expect_env_id)


def twin_elements(path: str | os.PathLike, env: gym.Env | None = None) -> list[Any]:
    """The group elements of a dataset's transformed twins (``[]`` if it has none)."""
    with open_dataset(path) as f:
        return f.twin_elements(env)


# -------------------------------------------------------------------------------------------------
# Torch datasets
# -------------------------------------------------------------------------------------------------


def _tensor(x: Any) -> torch.Tensor:
    """A tensor owning a copy of ``x`` (items never alias the in-memory arrays)."""
    return torch.from_numpy(np.array(x))


class _RolloutDataset(Dataset):
    """Shared loading: validation, in-memory arrays or lazy per-process HDF5 reads."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        in_memory: bool | None,
        states: bool,
        twins: bool,
        expect_env_id: str | None,
    ):
        self.path = Path(path)
        self.in_memory, self.with_states, self.with_twins = bool(in_memory), bool(states), bool(twins)  # None: decided below
        with open_dataset(self.path, expect_env_id) as f:
            if twins and not f.n_twins:
                raise DatasetError(f"{self.path}: has no transformed twins; collect it with twins='all' or an int")
            if states and not f.has_states:
                raise DatasetError(
                    f"{self.path}: has no ground-truth states (converted from rollouts recorded without them); "
                    "training and Hits@k / MRR do not need them, twins, EE / DIE, hard negatives and stabiliser negatives do"
                )
            self.env_id, self.attrs = f.env_id, dict(f.attrs)
            self.n_episodes, self.episode_length = f.n_episodes, f.episode_length
            self.obs_shape, self.action_shape, self.discrete = f.obs_shape, f.action_shape, f.discrete
            self.state_keys, self.n_twins = f.state_keys, f.n_twins
            names = ["obs", "actions"] + ([f"states/{k}" for k in f.state_keys] if states else [])
            if twins:
                names += ["twins/obs", "twins/actions"]
                names += [f"twins/states/{k}" for k in f.state_keys] if states else []
            self._names = tuple(names)
            self._arrays: dict[str, np.ndarray] | None = None
            self.nbytes = sum(int(np.prod(f[n].shape)) * f[n].dtype.itemsize for n in names)
            if in_memory is None:  # load whole when it fits comfortably, else stream from disk
                self.in_memory = self.nbytes <= MEMORY_SHARE * available_memory()
            elif in_memory and self.nbytes > MEMORY_SHARE * available_memory():
                raise DatasetError(
                    f"{self.path}: loading it needs {self.nbytes / 2**30:.1f} GiB, more than {MEMORY_SHARE:.0%} of the "
                    f"{available_memory() / 2**30:.1f} GiB available; read it lazily (in_memory=False or None)"
                )
            if self.in_memory:
                try:
                    self._arrays = {name: f[name][()] for name in names}
                except OSError as exc:  # e.g. a chunk failing its checksum
                    raise DatasetError(f"{self.path}: corrupt data while loading: {exc}") from exc
        self._h5: h5py.File | None = None
        self._pid: int | None = None

    def _file(self) -> h5py.File:
        """This process's handle (reopened after fork: handles must not cross processes)."""
        if self._h5 is None or self._pid != os.getpid():
            try:
                self._h5 = h5py.File(self.path, "r", rdcc_nbytes=_CACHE_BYTES)
            except OSError as exc:
                raise DatasetError(f"{self.path}: cannot open for reading: {exc}") from exc
            self._pid = os.getpid()
        return self._h5

    def _read(self, name: str, index: tuple) -> np.ndarray:
        if self._arrays is not None:
            return self._arrays[name][index]
        try:
            return self._file()[name][index]
        except OSError as exc:
            raise DatasetError(f"{self.path}: corrupt data in {name!r}: {exc}") from exc

    def _states(self, prefix: str, index: tuple) -> dict[str, np.ndarray]:
        return {k: self._read(f"{prefix}states/{k}", index) for k in self.state_keys}

    def close(self) -> None:
        """Close this process's lazy file handle (reopened on the next read)."""
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = self._pid = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h5"] = state["_pid"] = None  # workers open their own handle
        return state

    def _pair(self, i: int, t: int, h: int) -> dict[str, torch.Tensor | dict[str, torch.Tensor]]:
        """Observations (and states, twins) at steps ``t`` and ``t + h`` of episode ``i``, actions in between."""
        ends = slice(t, t + h + 1, h)
        obs = self._read("obs", (i, ends))  # [2, H, W, C]
        item: dict[str, Any] = {"obs": _tensor(obs[0]), "next_obs": _tensor(obs[1])}
        if self.with_states:
            st = self._states("", (i, ends))  # key -> [2, ...]
            item["states"] = {k: _tensor(v[0]) for k, v in st.items()}
            item["next_states"] = {k: _tensor(v[1]) for k, v in st.items()}
        if self.with_twins:
            tobs = self._read("twins/obs", (i, slice(None), ends))  # [G, 2, H, W, C]
            item["twin_obs"], item["twin_next_obs"] = _tensor(tobs[:, 0]), _tensor(tobs[:, 1])
            if self.with_states:
                st = self._states("twins/", (i, slice(None), ends))  # key -> [G, 2, ...]
                item["twin_states"] = {k: _tensor(v[:, 0]) for k, v in st.items()}
                item["twin_next_states"] = {k: _tensor(v[:, 1]) for k, v in st.items()}
        return item


class TransitionDataset(_RolloutDataset):
    """One-step transitions of every episode: ``N * T`` items ``{obs, action, next_obs}``.

    ``obs``/``next_obs``: uint8 ``[H, W, C]``; ``action``: int64 scalar or float32 ``[A]``.
    ``states=True`` adds ``states``/``next_states`` (dicts of tensors); ``twins=True`` adds
    ``twin_obs``/``twin_next_obs`` ``[G, H, W, C]`` and ``twin_action`` ``[G]`` / ``[G, A]``
    (plus ``twin_states``/``twin_next_states`` with ``states=True``).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        in_memory: bool | None = None,
        *,
        states: bool = False,
        twins: bool = False,
        expect_env_id: str | None = None,
    ):
        super().__init__(path, in_memory=in_memory, states=states, twins=twins, expect_env_id=expect_env_id)

    def __len__(self) -> int:
        return self.n_episodes * self.episode_length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} transitions")
        i, t = divmod(int(index) % len(self), self.episode_length)
        item = self._pair(i, t, 1)
        item["action"] = _tensor(self._read("actions", (i, t)))
        if self.with_twins:
            item["twin_action"] = _tensor(self._read("twins/actions", (i, slice(None), t)))
        return item


class PathDataset(_RolloutDataset):
    """``horizon``-step paths ``{obs, actions, next_obs}`` with ``next_obs`` the observation ``horizon`` steps later.

    ``starts="first"`` (default, as the paper evaluates): one path per episode, from step 0.
    ``starts="all"``: every start ``t`` in ``0..T - horizon``. ``actions``: int64 ``[h]`` or
    float32 ``[h, A]``. ``states``/``twins`` as in :class:`TransitionDataset`, with
    ``twin_actions`` ``[G, h]`` / ``[G, h, A]``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        horizon: int,
        in_memory: bool | None = None,
        *,
        starts: str = "first",
        states: bool = False,
        twins: bool = False,
        expect_env_id: str | None = None,
    ):
        if starts not in ("first", "all"):
            raise ValueError(f"starts must be 'first' or 'all', got {starts!r}")
        super().__init__(path, in_memory=in_memory, states=states, twins=twins, expect_env_id=expect_env_id)
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or not 1 <= horizon <= self.episode_length:
            raise ValueError(f"horizon must be an int in 1..{self.episode_length} (the episode length of {self.path}), got {horizon!r}")
        self.horizon, self.starts = int(horizon), starts
        self._per_episode = 1 if starts == "first" else self.episode_length - self.horizon + 1

    def __len__(self) -> int:
        return self.n_episodes * self._per_episode

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} paths")
        i, t = divmod(int(index) % len(self), self._per_episode)
        h = self.horizon
        item = self._pair(i, t, h)
        item["actions"] = _tensor(self._read("actions", (i, slice(t, t + h))))  # [h] or [h, A]
        if self.with_twins:
            item["twin_actions"] = _tensor(self._read("twins/actions", (i, slice(None), slice(t, t + h))))
        return item

