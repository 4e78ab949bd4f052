"""Environment ids as gymnasium reads them: ``"namespace/Name-v0"`` or ``"module:Name-v0"``.

The second form imports ``module`` first (which registers the environment), as ``gymnasium.make``
does; symwm stores the id exactly as given so that worker processes and later commands can import
the same module, and compares ids by their registered part.
"""

from __future__ import annotations

import importlib

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec


def registered_id(env_id: str) -> str:
    """The id under which ``env_id`` is registered: ``"module:Name-v0"`` -> ``"Name-v0"``."""
    return env_id.rpartition(":")[2]


def same_env_id(a: str, b: str) -> bool:
    """Whether two ids name the same registered environment (with or without a ``module:`` prefix)."""
    return registered_id(a) == registered_id(b)


def find_env_spec(env_id: str) -> EnvSpec:
    """The gymnasium spec of ``env_id`` (importing the module of a ``module:`` id), or an error saying what to do."""
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"an environment id must be a non-empty string, got {env_id!r}")
    import symwm.envs  # noqa: F401  (registers symwm's own environments)

    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"environment id {env_id!r}: cannot import module {module!r} ({exc})") from exc
    spec = gym.registry.get(name)
    if spec is None:
        from symwm.envs import ENV_IDS

        hint = (f"module {module!r} did not register it" if module else
                "register it with gymnasium.register in a module and pass 'that_module:" + name + "' so that symwm imports it")
        raise ValueError(f"unknown environment id {env_id!r}: {hint}; symwm's own: {', '.join(ENV_IDS)}")
    return spec
