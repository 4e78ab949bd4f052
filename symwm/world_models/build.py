"""Choose and build a world model by environment, variant and size (``symwm train --env ... --variant ours --size cpu``)."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

import symwm.envs  # noqa: F401  (registers the environments)
from symwm.world_models.model import ModelSpec, WorldModel

#: environment id -> model family module under symwm.world_models.models
DOMAINS = {
    "symwm/Shapes2D-v0": "grid",
    "symwm/Cubes3D-v0": "grid",
    "symwm/RushHour-v0": "grid",
    "symwm/Reacher-v0": "reacher",
    "symwm/RotatingObject-v0": "rotation",
}
SIZES = ("cpu", "paper")


def domain_of(env_id: str) -> str:
    """The model family of an environment id."""
    if env_id not in DOMAINS:
        raise ValueError(f"no world model for env id {env_id!r}; known: {sorted(DOMAINS)}")
    return DOMAINS[env_id]


def family(env_id: str):
    """The module that builds models for ``env_id`` (has ``VARIANTS``, ``PRESETS``, ``build``)."""
    return importlib.import_module(f"symwm.world_models.models.{domain_of(env_id)}")


def variants(env_id: str) -> tuple[str, ...]:
    """Variants available for an environment (e.g. ``("ours", "none", "full")``)."""
    return tuple(family(env_id).VARIANTS)


def preset(spec: ModelSpec) -> dict[str, Any]:
    """The hyper-parameters of ``spec``: its named preset with ``spec.overrides`` applied."""
    fam = family(spec.env_id)
    if spec.variant not in fam.VARIANTS:
        raise ValueError(f"unknown variant {spec.variant!r} for {spec.env_id}; known: {list(fam.VARIANTS)}")
    if spec.size not in SIZES:
        raise ValueError(f"unknown size {spec.size!r}; known: {list(SIZES)}")
    params = dict(fam.PRESETS[spec.size][spec.variant])
    unknown = set(spec.overrides) - set(params)
    if unknown:
        raise ValueError(f"unknown preset field(s) {sorted(unknown)} for {spec.variant}/{spec.size}; known: {sorted(params)}")
    params.update(spec.overrides)
    return params


def make_env(spec: ModelSpec) -> gym.Env:
    """The (unwrapped) environment a model is for; it supplies shapes, group and action space."""
    return gym.make(spec.env_id, **spec.env_kwargs).unwrapped


def build_model(spec: ModelSpec, initialize: bool = True) -> WorldModel:
    """Build the model of ``spec``; ``initialize=False`` skips escnn's slow weight init (load next)."""
    params = preset(spec)
    return family(spec.env_id).build(spec, make_env(spec), params, initialize=initialize)
