"""World models: datasets from rollouts, SEN / encoders / transitions (escnn), loss, training, metrics."""
