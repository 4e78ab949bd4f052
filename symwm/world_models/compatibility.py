"""Whether a model meets the data or the environment it was built for: env id, observation and action spaces, state layout.

A model stores the env id and kwargs it was built for (:class:`~symwm.world_models.model.ModelSpec`).
Comparing kwargs literally would refuse harmless differences (a goal distance, an action subset),
so both sides are compared by what the model depends on: the spaces and the shapes of the
ground-truth state of the env each set of kwargs makes (extra state, such as a goal, is allowed). A 5-object model meets 3-object data, a
Shapes2D checkpoint meets a Cubes3D env: refused, naming what differs.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Mapping

import gymnasium as gym

from symwm.envs.registration import same_env_id
from symwm.world_models.model import ModelSpec

#: kwargs that restrict or decorate an env without changing what a model reads or predicts
TASK_KWARGS = ("allowed_actions",)


def _space(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({space.n}, start={space.start})"
    if isinstance(space, gym.spaces.Box):
        return f"Box{tuple(space.shape)} {space.dtype}"
    return repr(space)


def _signature_of(env: gym.Env) -> dict[str, str]:
    env = env.unwrapped
    sig = {"observation space": _space(env.observation_space), "action space": _space(env.action_space)}
    states = getattr(env, "state_space", None)
    if isinstance(states, gym.spaces.Dict):
        sig.update({f"state {k}": str(tuple(s.shape)) for k, s in states.spaces.items()})
    return sig


@functools.lru_cache(maxsize=64)
def _signature(env_id: str, kwargs_json: str) -> tuple[tuple[tuple[str, str], ...], tuple[int, ...]]:
    """(signature items, observation shape) of one env made once per distinct id and kwargs."""
    kwargs = {k: v for k, v in json.loads(kwargs_json).items() if k not in TASK_KWARGS}
    env = gym.make(env_id, **kwargs)
    try:
        return tuple(_signature_of(env).items()), tuple(env.observation_space.shape or ())
    finally:
        env.close()


def _key(env_kwargs: Mapping[str, Any]) -> str:
    return json.dumps(dict(env_kwargs), sort_keys=True, default=str)


def env_signature(env_id: str, env_kwargs: Mapping[str, Any]) -> dict[str, str]:
    """What a model depends on in the env ``env_id`` made with ``env_kwargs``: its spaces and state layout."""
    return dict(_signature(env_id, _key(env_kwargs))[0])


def _check(spec: ModelSpec, env_id: str | None, theirs: dict[str, str], what: str, their_kwargs: Any) -> None:
    if env_id is not None and not same_env_id(env_id, spec.env_id):
        raise ValueError(f"{what} is of {env_id}, but the model was built for {spec.env_id}")
    mine = env_signature(spec.env_id, spec.env_kwargs)
    # the other side may carry extra state (a goal configuration): only what the model knows must agree
    keys = sorted(set(mine) | {k for k in theirs if not k.startswith("state ")})
    diffs = [f"{k}: model {mine.get(k)} vs {theirs.get(k)}" for k in keys if mine.get(k) != theirs.get(k)]
    if diffs:
        raise ValueError(
            f"{what} does not match the model ({'; '.join(diffs)}); the model's env kwargs are {dict(spec.env_kwargs)}, "
            f"{what}'s are {their_kwargs}"
        )


def check_compatible(
    spec: ModelSpec, env_id: str, env_kwargs: Mapping[str, Any], what: str, obs_shape: tuple[int, ...] | None = None
) -> None:
    """Raise ``ValueError`` naming every difference between the model's env and data of ``env_id`` with ``env_kwargs``.

    ``obs_shape``: the observations the data actually hold, compared with the model's env too.
    """
    _check(spec, env_id, env_signature(env_id, env_kwargs), what, dict(env_kwargs))
    if obs_shape is not None:
        want = _signature(spec.env_id, _key(spec.env_kwargs))[1]  # cached: no second env
        if tuple(obs_shape) != want:
            raise ValueError(f"{what} holds observations of shape {tuple(obs_shape)}, the model reads {want} ({spec.env_id})")


def check_env_matches(model: Any, env: gym.Env) -> None:
    """Raise ``ValueError`` unless the live ``env`` is the model's env (id when registered, spaces, state layout).

    ``model`` is a :class:`~symwm.world_models.model.WorldModel` or its :class:`ModelSpec`.
    """
    spec = model if isinstance(model, ModelSpec) else model.spec
    env_spec = getattr(env, "spec", None) or getattr(env.unwrapped, "spec", None)
    env_id = getattr(env_spec, "id", None)
    _check(spec, env_id, _signature_of(env), f"the env {env_id or type(env.unwrapped).__name__}", getattr(env_spec, "kwargs", "unknown"))
