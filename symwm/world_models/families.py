"""Model families: which networks fit an environment, chosen by what the environment declares.

A *family* is a module (or any object) with

* ``NAME``: the family's name, recorded in every checkpoint;
* ``VARIANTS``: the variants it builds (``("ours", "none", "full")``, say);
* ``PRESETS``: ``{size: {variant: hyper-parameter dict}}`` for the sizes ``"cpu"`` and ``"paper"``;
* ``supports(env) -> str | None``: ``None`` if it can model the unwrapped environment ``env``,
  otherwise the reason why not, read from the environment's symmetry contract (its group, the
  group's action on actions, the spaces), never from its id;
* ``build(spec, env, params, initialize) -> WorldModel``.

symwm's own families (``rotation``, ``reacher``, ``grid``, ``planar-objects``, ``planar``) are found through the same registry as
third-party ones, which either call :func:`register_family` or declare an entry point in the group
``symwm.model_families`` (``name = "package.module"``), loaded on first use::

    [project.entry-points."symwm.model_families"]
    my_family = "my_package.my_family"

An environment gets the first family, in registration order, that supports it; a model spec or a
checkpoint may name its family instead.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

#: entry-point group of third-party model families
ENTRY_POINT_GROUP = "symwm.model_families"
#: symwm's own families, most specific first
BUILTIN = (
    "symwm.world_models.models.rotation",
    "symwm.world_models.models.reacher",
    "symwm.world_models.models.grid",
    "symwm.world_models.models.planar_objects",  # generic object-factored C_n / D_n x S_K (after grid: it fits grid worlds too)
    "symwm.world_models.models.planar",  # the generic one last: it also fits envs a specific family models better
)
_REQUIRED = ("NAME", "VARIANTS", "PRESETS", "supports", "build")

_registry: dict[str, Any] = {}
_loaded = False


class FamilyError(ValueError):
    """No family fits an environment, or a named family does not exist or does not fit."""


def _as_family(obj: Any) -> Any:
    if isinstance(obj, str):
        obj = importlib.import_module(obj)
    missing = [a for a in _REQUIRED if not hasattr(obj, a)]
    if missing:
        raise TypeError(f"{obj!r} is not a model family: it lacks {missing} (see symwm.world_models.families)")
    return obj


def register_family(family: Any, replace: bool = False) -> Any:
    """Add a family (a module, its import path, or an object with the attributes above); returns it."""
    fam = _as_family(family)
    _load()
    if fam.NAME in _registry and _registry[fam.NAME] is not fam and not replace:
        raise ValueError(f"a model family named {fam.NAME!r} is already registered ({_registry[fam.NAME]!r}); pass replace=True")
    _registry[fam.NAME] = fam
    return fam


def _load() -> None:
    """Register the built-in families, then those of installed packages' entry points (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for path in BUILTIN:
        fam = _as_family(path)
        _registry.setdefault(fam.NAME, fam)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            fam = _as_family(ep.load())
        except Exception as exc:  # a broken third-party package must not break symwm's own families
            import warnings

            warnings.warn(f"model family entry point {ep.name!r} ({ep.value}) could not be loaded: {exc}", stacklevel=2)
            continue
        _registry.setdefault(fam.NAME, fam)


def families() -> dict[str, Any]:
    """Every registered family by name, in the order they are tried."""
    _load()
    return dict(_registry)


def get_family(name: str) -> Any:
    """The family called ``name``."""
    fams = families()
    if name not in fams:
        raise FamilyError(f"unknown model family {name!r}; registered: {list(fams)}")
    return fams[name]


def require_support(name: str, supports: Any, env: Any, label: str) -> None:
    """Raise :class:`FamilyError` with the family's reason where ``supports(env)`` says it cannot model ``env``."""
    reason = supports(env)
    if reason is not None:
        raise FamilyError(f"model family {name!r} cannot model {label}: {reason}")


def family_for_env(env: Any, name: str | None = None, env_id: str | None = None) -> Any:
    """The family that models the unwrapped ``env``: ``name``'s if given (checked), else the first that supports it."""
    label = env_id or getattr(getattr(env, "spec", None), "id", None) or type(env).__name__
    if name is not None:
        fam = get_family(name)
        require_support(name, fam.supports, env, label)
        return fam
    reasons = {}
    for fam_name, fam in families().items():
        reason = fam.supports(env)
        if reason is None:
            return fam
        reasons[fam_name] = reason
    detail = "; ".join(f"{k}: {v}" for k, v in reasons.items())
    raise FamilyError(
        f"no model family supports {label} ({detail}). Register one for it "
        f"(symwm.world_models.families.register_family or the {ENTRY_POINT_GROUP!r} entry-point group)"
    )
