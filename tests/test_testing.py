"""invlatent.testing: tolerances by dtype and the equivariance assertion."""

import pytest
import torch

from invlatent import Cyclic, Permutation
from invlatent.testing import assert_equivariant, tolerance


def test_tolerance_grows_with_eps():
    t32, t64 = tolerance(torch.float32), tolerance(torch.float64)
    assert t64["rtol"] < t32["rtol"] < 1e-3 and t64["atol"] < t32["atol"]
    with pytest.raises(TypeError):
        tolerance(torch.long)
    with pytest.raises(ValueError):
        tolerance(torch.float32, scale=0.0)


def test_assert_equivariant_passes_equivariant_and_catches_the_rest(gen):
    x = torch.randn(6, 5, 3, generator=gen(0))
    lin = torch.nn.Linear(3, 2)  # node-wise: permutation equivariant
    assert assert_equivariant(lin, x, Permutation(), Permutation()) < 1e-12
    mix = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(15, 10), torch.nn.Unflatten(1, (5, 2)))
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(mix, x, Permutation(), Permutation())
    with pytest.raises(TypeError, match="latent_group"):
        assert_equivariant(lin, x, Permutation(), "S_n")
    # a cyclic shift of a regular fibre commutes with a circular convolution
    conv = torch.nn.Conv1d(2, 3, 3, padding=1, padding_mode="circular", bias=False)
    assert assert_equivariant(conv, torch.randn(4, 2, 8, generator=gen(1)), Cyclic(8), Cyclic(8)) < 1e-12
