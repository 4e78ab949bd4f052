"""World models: datasets from rollouts, SEN / encoders / transitions (escnn), loss, training, metrics."""

import warnings

# escnn warns at import that py3nj (which needs a Fortran compiler) is missing; symwm installs
# escnn without it on purpose and records its absence in every checkpoint instead.
warnings.filterwarnings("ignore", message=".*py3nj.*package not found", category=UserWarning)

try:  # every model family builds on escnn; say how to install it rather than fail deep inside an import
    import escnn  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised by the fresh-venv install test
    raise ImportError(
        "symwm.world_models needs escnn, installed without its dependencies (its py3nj needs a Fortran "
        "compiler and is optional): pip install --no-deps escnn==1.0.11"
    ) from _exc
