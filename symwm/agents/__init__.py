"""Agents on top of symwm world models: latent planning (:mod:`symwm.agents.planning`) and
stable-baselines3 integration (:mod:`symwm.agents.sb3`: ``SENFeaturesExtractor``,
``LatentObservation``, ``VecLatentObservation``, ``GoalImageObservation``)."""
