"""Choose and build a world model for an environment, a variant and a size (``symwm train --env ... --variant ours --size cpu``).

The model family comes from what the environment declares (:mod:`symwm.world_models.families`), or
from ``spec.family`` when a spec names one; any id that ``gymnasium.make`` accepts works, including
``"module:Name-v0"`` for an environment registered by the user's own module.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

import symwm.envs  # noqa: F401  (registers the environments)
from symwm.envs.registration import find_env_spec
from symwm.world_models.families import family_for_env
from symwm.world_models.model import ModelSpec, WorldModel

SIZES = ("cpu", "paper")


class RecordedParamsError(ValueError):
    """Recorded hyper-parameters (a checkpoint's) name fields the family's preset no longer has."""


def make_env(spec: ModelSpec) -> gym.Env:
    """The (unwrapped) environment a model is for; it supplies shapes, group and action space."""
    find_env_spec(spec.env_id)
    return gym.make(spec.env_id, **spec.env_kwargs).unwrapped


def _family(spec: ModelSpec, env: Any, family: str | None = None) -> Any:
    return family_for_env(env, family or spec.family, spec.env_id)


def family(env_id: str, env_kwargs: dict[str, Any] | None = None) -> Any:
    """The model family for ``env_id`` (a module with ``NAME``, ``VARIANTS``, ``PRESETS``, ``supports``, ``build``)."""
    spec = ModelSpec(env_id, env_kwargs=dict(env_kwargs or {}))
    env = make_env(spec)
    try:
        return _family(spec, env)
    finally:
        env.close()


def domain_of(env_id: str) -> str:
    """The name of ``env_id``'s model family (``"grid"``, ``"reacher"``, ``"rotation"`` or a registered one)."""
    return family(env_id).NAME


def variants(env_id: str) -> tuple[str, ...]:
    """Variants available for an environment (e.g. ``("ours", "none", "full")``)."""
    return tuple(family(env_id).VARIANTS)


def _preset(fam: Any, spec: ModelSpec) -> dict[str, Any]:
    if spec.variant not in fam.VARIANTS:
        raise ValueError(f"unknown variant {spec.variant!r} for {spec.env_id} (family {fam.NAME}); known: {list(fam.VARIANTS)}")
    if spec.size not in SIZES or spec.size not in fam.PRESETS:
        raise ValueError(f"unknown size {spec.size!r}; known: {[s for s in SIZES if s in fam.PRESETS]}")
    params = dict(fam.PRESETS[spec.size][spec.variant])
    unknown = set(spec.overrides) - set(params)
    if unknown:
        raise ValueError(f"unknown preset field(s) {sorted(unknown)} for {spec.variant}/{spec.size}; known: {sorted(params)}")
    params.update(spec.overrides)
    return params


def preset(spec: ModelSpec) -> dict[str, Any]:
    """The hyper-parameters of ``spec``: its named preset with ``spec.overrides`` applied."""
    env = make_env(spec)
    try:
        return _preset(_family(spec, env), spec)
    finally:
        env.close()


def build_model(spec: ModelSpec, initialize: bool = True, family: str | None = None, params: dict[str, Any] | None = None) -> WorldModel:
    """Build the model of ``spec``; ``initialize=False`` skips escnn's slow weight init (load next).

    ``family`` names the model family (a checkpoint's record); by default ``spec.family`` or the
    first registered family that supports the environment. ``params``: hyper-parameters recorded
    by a checkpoint (``model.params``), used instead of the named preset's present values, so a
    checkpoint keeps loading after a preset changes; a field the family no longer has is an error,
    one it has gained takes the preset's value.
    """
    env = make_env(spec)
    try:
        fam = _family(spec, env, family)
        resolved = _preset(fam, spec)
        if params is not None:
            unknown = sorted(set(params) - set(resolved))
            if unknown:
                raise RecordedParamsError(f"recorded hyper-parameter(s) {unknown} are not fields of the {fam.NAME} family's "
                                 f"{spec.variant}/{spec.size} preset any more; known: {sorted(resolved)}")
            resolved.update(params)
        model = fam.build(spec, env, resolved, initialize=initialize)
    finally:
        env.close()
    model.family = fam.NAME
    model.params = dict(resolved)  # what was built, recorded by checkpoints
    return model
