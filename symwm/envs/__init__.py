"""Gymnasium environments whose dynamics carry a known symmetry group.

Importing this package registers every environment under the ``symwm/`` namespace::

    import gymnasium as gym
    import symwm  # noqa: F401
    env = gym.make("symwm/Cubes3D-v0")
    # or, without importing symwm first:
    env = gym.make("symwm:symwm/Cubes3D-v0")

Every environment's ``unwrapped`` is a :class:`~symwm.envs.symmetry.SymmetricEnv` with
``get_state`` / ``set_state`` / ``observation_of`` and a ``symmetry`` (group and its action on
states and actions).
"""

from gymnasium.envs.registration import register, registry

from symwm.envs.groups import (
    SO3,
    Dihedral,
    DihedralElement,
    DirectProduct,
    Group,
    Octahedral,
    Permutation,
    Symmetric,
    transform_grid,
)
from symwm.envs.symmetry import EnvSymmetry, SymmetricEnv

#: id -> (entry point, max_episode_steps)
ENV_SPECS = {
    "symwm/Shapes2D-v0": ("symwm.envs.shapes2d:Shapes2DEnv", 100),
    "symwm/Cubes3D-v0": ("symwm.envs.cubes3d:Cubes3DEnv", 100),
    "symwm/RushHour-v0": ("symwm.envs.rush_hour:RushHourEnv", 100),
    "symwm/Reacher-v0": ("symwm.envs.reacher:ReacherEnv", 50),
    "symwm/RotatingObject-v0": ("symwm.envs.rotating_object:RotatingObjectEnv", 100),
}
ENV_IDS = tuple(ENV_SPECS)

for _env_id, (_entry_point, _max_steps) in ENV_SPECS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry_point, max_episode_steps=_max_steps)

__all__ = [
    "ENV_IDS",
    "EnvSymmetry",
    "SymmetricEnv",
    "Group",
    "Dihedral",
    "DihedralElement",
    "Symmetric",
    "Permutation",
    "DirectProduct",
    "SO3",
    "Octahedral",
    "transform_grid",
]
