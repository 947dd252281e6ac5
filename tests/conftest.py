"""Shared fixtures: a seeded generator factory and the dtypes with their tolerances.

``gen(seed)`` gives a fresh CPU ``torch.Generator``; ``dtype`` runs a test once in float32 and
once in float64; ``tol`` is the matching ``dict(atol=..., rtol=...)`` from
:func:`invlatent.testing.tolerance` (both session-scoped, so they also work with Hypothesis).
``cuda_device`` is a CUDA device for one test: the real one when torch has a GPU, else the
simulated device of :func:`invlatent.testing.simulated_cuda`, open for the duration of the test.
"""

import pytest
import torch

from invlatent.testing import simulated_cuda, tolerance


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


@pytest.fixture
def cuda_device():
    """``torch.device("cuda")`` when a GPU is really there; otherwise the test runs inside
    :func:`~invlatent.testing.simulated_cuda` and gets its device (``cuda:0``)."""
    if torch.cuda.is_available():
        yield torch.device("cuda")
        return
    with simulated_cuda() as dev:
        yield dev
