"""Shared fixtures: a seeded generator factory and the dtypes with their tolerances.

``gen(seed)`` gives a fresh CPU ``torch.Generator``; ``dtype`` runs a test once in float32 and
once in float64; ``tol`` is the matching ``dict(atol=..., rtol=...)`` from
:func:`invlatent.testing.tolerance` (both session-scoped, so they also work with Hypothesis).
"""

import pytest
import torch

from invlatent.testing import tolerance


@pytest.fixture(scope="session")
def gen():
    def make(seed: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    return make


@pytest.fixture(scope="session", params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture(scope="session")
def tol(dtype):
    return tolerance(dtype)
