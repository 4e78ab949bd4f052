"""symwm's model families, one module per form of symmetry: ``grid`` (C4/D4 x S_n), ``reacher`` (D4), ``rotation`` (SO(3)).

Each module has ``NAME``, ``VARIANTS``, ``PRESETS[size][variant]`` (hyper-parameter dicts),
``supports(env)`` (``None`` or why it cannot model ``env``) and
``build(spec, env, params, initialize) -> WorldModel``; :mod:`symwm.world_models.families`
registers them beside third-party families.
"""
