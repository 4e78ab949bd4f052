"""Agents on top of symwm world models: latent planning (:mod:`symwm.agents.planning`)."""
