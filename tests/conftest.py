"""Shared test set-up: every test starts from the same global random state (order-independent results)."""

import os
import random

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` spreads the tests over one process per core (pytest-xdist): one thread each, so that two
    # workers do not share two cores four ways; set before torch is imported, inherited by subprocesses
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch
    except ImportError:  # the environment tests do not need torch
        return
    torch.manual_seed(0)
