"""Shared test set-up: every test starts from the same global random state (order-independent results)."""

import random

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
