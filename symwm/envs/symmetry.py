"""The symmetry API shared by every symwm environment.

Every environment is a :class:`SymmetricEnv`: besides the Gymnasium API it exposes its
ground-truth state as a dict of numpy arrays (``get_state`` / ``set_state``, also in
``info["state"]``) and an :class:`EnvSymmetry` that says how a group element ``g`` acts on
those states and on actions. With these two pieces any caller can produce the *transformed twin*
of an observation, ``env.observation_of(env.symmetry.act_on_state(g, state))``, which is what the
datasets and the equivariance metrics (EE, DIE) are built from::

    env = gymnasium.make("symwm/Cubes3D-v0").unwrapped
    obs, info = env.reset(seed=0)
    sym = env.symmetry
    g = sym.group.sample(np.random.default_rng(0))
    twin_obs = env.observation_of(sym.act_on_state(g, info["state"]))
    twin_action = sym.act_on_action(g, 7)

The dynamics of every environment commute with the group action:
``step(g.s, g.a) == g.step(s, a)`` (tested exactly for the grid worlds, to 1e-6 for Reacher).
"""

from __future__ import annotations

import copy
import numbers
from abc import ABC, abstractmethod
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from symwm.envs.groups import DihedralElement, Group, rotation_from_vector

State = dict[str, np.ndarray]


class EnvSymmetry(ABC):
    """A group and its action on an environment's ground-truth states and on its actions."""

    #: the group acting on states (and on actions, for elements of ``action_group``)
    group: Group
    #: the subgroup whose elements map the action space into itself (usually ``group``)
    action_group: Group

    @abstractmethod
    def act_on_state(self, g: Any, state: Mapping[str, np.ndarray]) -> State:
        """The state ``g . s`` (a new dict; ``state`` is not modified)."""

    @abstractmethod
    def act_on_action(self, g: Any, action: Any) -> Any:
        """The action ``rho_A(g) a``; raises ``ValueError`` if ``g`` is not in ``action_group``."""

    #: state keys holding angles in radians, compared modulo 2 pi by :meth:`state_distance`
    angle_keys: tuple[str, ...] = ()

    def state_distance(self, s1: Mapping[str, np.ndarray], s2: Mapping[str, np.ndarray]) -> float:
        """Largest absolute difference between two states (angles compared modulo 2 pi)."""
        if set(s1) != set(s2):
            raise ValueError(f"states have different keys: {sorted(s1)} vs {sorted(s2)}")
        worst = 0.0
        for key in s1:
            diff = np.asarray(s1[key], dtype=np.float64) - np.asarray(s2[key], dtype=np.float64)
            if key in self.angle_keys:
                diff = np.angle(np.exp(1j * diff))
            worst = max(worst, float(np.max(np.abs(diff), initial=0.0)))
        return worst

    def quarter_turn(self) -> Any:
        """The element "rotate by 90 degrees counter-clockwise" (about the view axis; objects keep their labels).

        The authors' release measures EE and DIE at this one element. Planar groups: rotation 1;
        grid worlds: (rotation 1, identity permutation); SO(3): 90 degrees about the z axis.
        """
        group = self.group
        if group.name == "SO(3)":
            return rotation_from_vector(np.array([0.0, 0.0, np.pi / 2]))
        if hasattr(group, "factors"):  # (planar, permutation)
            return (DihedralElement(1, False), group.factors[1].identity())
        return DihedralElement(1, False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(group={self.group.name}, action_group={self.action_group.name})"


class SymmetricEnv(gym.Env, ABC):
    """Base class of symwm environments: Gymnasium API plus ground-truth state access and symmetry.

    Subclasses define ``observation_space``, ``action_space``, ``state_space`` (a ``spaces.Dict``
    describing ``get_state()``), ``symmetry`` and implement ``_get_state``, ``_set_state``,
    ``_observation`` and optionally ``_check_state`` for constraints the space cannot express.
    """

    state_space: spaces.Dict
    symmetry: EnvSymmetry
    _started: bool = False
    #: one line on the task, for ``symwm envs``
    task: str = ""
    #: ``gymnasium.make`` options that turn the goal task on (``symwm plan`` applies them unless given)
    goal_options: Mapping[str, Any] = {}
    #: a goal counts as reached once ``goal_distance`` < ``goal_radius`` (tasks that never terminate);
    #: ``None``: reaching the goal terminates the episode
    goal_radius: float | None = None
    #: the state key of a pose on which the group acts by left multiplication (SO(3) worlds), or
    #: ``None``: evaluation renders hard negatives near it and measures a SEN's pose error against it
    pose_key: str | None = None

    # -- ground-truth state ----------------------------------------------------------------

    def get_state(self) -> State:
        """A copy of the full ground-truth state (everything the next observation depends on)."""
        self._require_started("get_state")
        return {k: np.array(v, copy=True) for k, v in self._get_state().items()}

    def set_state(self, state: Mapping[str, Any]) -> np.ndarray:
        """Put the environment in ``state`` (validated) and return its observation.

        Counts as a reset: ``step`` may follow. Used to render transformed twins ``g . s``.
        """
        clean = self.validate_state(state)
        self._set_state(clean)
        self._started = True
        return self._observation()

    def observation_of(self, state: Mapping[str, Any]) -> np.ndarray:
        """The observation the environment would emit in ``state``, leaving its own state untouched."""
        saved = self._get_state() if self._started else None
        try:
            return self.set_state(state)
        finally:
            if saved is not None:
                self._set_state(copy.deepcopy(saved))
            else:
                self._started = False

    def next_state(self, state: Mapping[str, np.ndarray], action: Any) -> State:
        """The state one step after ``state`` under ``action``: the dynamics as a pure function.

        Renders nothing and leaves the environment as it is (planners call it many times).
        The action is checked as in ``step``; ``state`` is trusted to be valid (from
        ``get_state``, ``info["state"]`` or ``symmetry.act_on_state``).
        """
        return self._next_state(state, self._check_action(action))

    def validate_state(self, state: Mapping[str, Any]) -> State:
        """Check ``state`` against ``state_space`` and the env's constraints; return a clean copy."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a dict of arrays, got {type(state).__name__}")
        expected = set(self.state_space.spaces)
        missing, extra = expected - set(state), set(state) - expected
        if missing or extra:
            raise ValueError(
                f"invalid state for {type(self).__name__}: missing keys {sorted(missing)}, "
                f"unknown keys {sorted(extra)}; expected exactly {sorted(expected)}"
            )
        clean: State = {}
        for key, space in self.state_space.spaces.items():
            value = np.asarray(state[key])
            if value.shape != space.shape:
                raise ValueError(
                    f"invalid state: {key!r} has shape {value.shape}, expected {space.shape}"
                )
            if value.dtype.kind not in ("i", "u", "f") or (
                np.issubdtype(space.dtype, np.integer) and value.dtype.kind == "f"
            ):
                raise TypeError(
                    f"invalid state: {key!r} has dtype {value.dtype}, expected {space.dtype}"
                )
            if not np.all(np.isfinite(value)):
                raise ValueError(f"invalid state: {key!r} contains NaN or infinity")
            value = value.astype(space.dtype)
            if isinstance(space, spaces.Box) and value.dtype.kind == "f":
                # rounding of transformed states (g @ R can give 1 + 2e-16) is clipped, not rejected
                inside = np.all(value >= space.low - 1e-9) and np.all(value <= space.high + 1e-9)
                value = np.clip(value, space.low, space.high) if inside else value
            if isinstance(space, spaces.Box) and not (
                np.all(value >= space.low) and np.all(value <= space.high)
            ):
                raise ValueError(
                    f"invalid state: {key!r} = {value.tolist()} is outside "
                    f"[{space.low.min()}, {space.high.max()}]"
                )
            clean[key] = value
        self._check_state(clean)
        return clean

    # -- goal tasks (optional) ----------------------------------------------------------------

    def goal_distance(self, states: Mapping[str, np.ndarray]) -> np.ndarray:
        """Distance to the goal carried in each state of a batch (arrays with a leading batch axis), 0 at the goal.

        The goal interface of goal-conditioned planners (``symwm.agents``, ``symwm plan``), with
        :meth:`goal_observation`; an environment with a goal task in its state overrides both.
        Returns float64 ``[B]``.
        """
        raise NotImplementedError(f"{type(self).__name__} has no goal task (it does not implement goal_distance)")

    def goal_observation(self) -> np.ndarray:
        """The observation of the current episode's goal (after ``reset``), what a planner is shown as its target."""
        raise NotImplementedError(f"{type(self).__name__} has no goal task (it does not implement goal_observation)")

    # -- helpers for subclasses ------------------------------------------------------------

    def _require_started(self, what: str) -> None:
        if not self._started:
            raise gym.error.ResetNeeded(
                f"{type(self).__name__}: cannot call {what}() before reset() or set_state()"
            )

    def _check_reset_options(self, options: Mapping[str, Any] | None, allowed: tuple[str, ...] = ()) -> dict:
        if options is None:
            return {}
        if not isinstance(options, Mapping):
            raise TypeError(f"reset options must be a dict, got {type(options).__name__}")
        unknown = set(options) - set(allowed)
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {sorted(unknown)} for {type(self).__name__}; "
                f"known: {sorted(allowed) or 'none'}"
            )
        return dict(options)

    def _check_state(self, state: State) -> None:
        """Constraints beyond ``state_space`` (overlaps, orthogonality, ...); raise ``ValueError``."""

    @abstractmethod
    def _get_state(self) -> State:
        """The live internal state (not copied)."""

    @abstractmethod
    def _set_state(self, state: State) -> None:
        """Install an already validated state."""

    @abstractmethod
    def _check_action(self, action: Any) -> Any:
        """``action`` as the dynamics take it, or an error naming why it is not a valid action."""

    @abstractmethod
    def _next_state(self, state: Mapping[str, np.ndarray], action: Any) -> State:
        """The pure transition for an already checked action (``step`` and ``next_state`` use it)."""

    @abstractmethod
    def _observation(self) -> np.ndarray:
        """Render the observation of the current state."""


# -------------------------------------------------------------------------------------------------
# Action checking: clear errors instead of silent casts
# -------------------------------------------------------------------------------------------------


def pose_key(env: Any) -> str | None:
    """The state key of ``env``'s pose (``SymmetricEnv.pose_key``, read through wrappers), or None."""
    return getattr(getattr(env, "unwrapped", env), "pose_key", None)


def check_discrete_action(action: Any, space: spaces.Discrete) -> int:
    """Return ``action`` as an int, or raise naming why it is not an action of ``space``."""
    if isinstance(action, np.ndarray):
        if action.shape not in ((), (1,)):
            raise ValueError(f"discrete action must be a scalar, got an array of shape {action.shape}")
        action = action.reshape(()).item() if action.dtype.kind in "iu" else action.reshape(())[()]
    if isinstance(action, (bool, np.bool_)) or not isinstance(action, numbers.Integral):
        raise TypeError(
            f"discrete action must be an integer, got {type(action).__name__} {action!r}"
        )
    a = int(action)
    if not space.start <= a < space.start + space.n:
        raise ValueError(f"action {a} is out of range: valid actions are {space.start}..{space.start + space.n - 1}")
    return a


def check_box_action(action: Any, space: spaces.Box) -> np.ndarray:
    """Return ``action`` as a float64 array, or raise naming why it is not an action of ``space``."""
    arr = np.asarray(action)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"continuous action must be a real numeric array, got dtype {arr.dtype}")
    if arr.shape != space.shape:
        raise ValueError(f"action has shape {arr.shape}, expected {space.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"action {arr.tolist()} contains NaN or infinity")
    tol = 1e-6
    if np.any(arr < space.low - tol) or np.any(arr > space.high + tol):
        raise ValueError(
            f"action {arr.tolist()} is out of range [{space.low.tolist()}, {space.high.tolist()}]"
        )
    return np.clip(arr, space.low, space.high)
