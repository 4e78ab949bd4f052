"""World models: datasets from rollouts, SEN / encoders / transitions (escnn), loss, training, metrics."""

import warnings

# escnn warns at import that py3nj (which needs a Fortran compiler) is missing; symwm installs
# escnn without it on purpose and records its absence in every checkpoint instead.
warnings.filterwarnings("ignore", message=".*py3nj.*package not found", category=UserWarning)
