"""The parts every model family assembles: SENs (``sen.py``), encoders (``encoders.py``),
transitions (``transitions.py``) and the MLPs they are built from (``mlp.py``).

A family (``symwm/world_models/models/``) reads the environment's contract, chooses the field types
and hyper-parameters, and puts these parts together; the parts themselves name no environment.
"""
