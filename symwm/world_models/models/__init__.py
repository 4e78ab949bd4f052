"""Model families, one module per form of symmetry: ``grid`` (C4/D4 x S_n), ``reacher`` (D4), ``rotation`` (SO(3)).

Each module has ``VARIANTS``, ``PRESETS[size][variant]`` (hyper-parameter dicts) and
``build(spec, env, params, initialize) -> WorldModel``.
"""
