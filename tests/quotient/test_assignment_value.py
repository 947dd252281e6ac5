"""The value-only assignment DP and the symmetric all-pairs path agree with scipy; gradients stay finite."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

import invlatent
from invlatent.quotient import assignment_value


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 9), B=st.integers(1, 40), seed=st.integers(0, 2**31 - 1),
       dtype=st.sampled_from([torch.float32, torch.float64]), chunk=st.sampled_from([1, 3, 512]))
def test_matches_scipy(n, B, seed, dtype, chunk):
    C = torch.randn(B, n, n, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    ref = np.array([c[linear_sum_assignment(c)].sum() for c in C.double().numpy()])
    got = assignment_value(C, chunk_size=chunk).double().numpy()
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert np.allclose(got, ref, atol=tol * n, rtol=0)


def test_pairwise_self_is_symmetric_and_matches_pairs():
    Z = torch.randn(25, 7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    P = invlatent.Permutation()
    D = invlatent.pairwise_quotient_distance(Z, None, P)
    # exact by construction: the upper triangle is computed once and mirrored, the diagonal set to 0
    assert torch.equal(D, D.T) and bool((D.diagonal() == 0).all())
    i, j = torch.triu_indices(25, 25, 1)
    assert torch.allclose(D[i, j], invlatent.quotient_distance(Z[i], Z[j], P), atol=1e-12)
    D12 = invlatent.pairwise_quotient_distance(Z[:10], Z[5:], P)
    assert torch.allclose(D12, D[:10, 5:], atol=1e-12)


def test_gradient_is_finite_at_zero_distance():
    z = torch.randn(4, 6, 2, dtype=torch.float64, requires_grad=True)
    perm = invlatent.Permutation()
    z2 = perm.act(perm.sample(4, generator=torch.Generator().manual_seed(1)), z.detach())
    d = invlatent.quotient_distance(z, z2, perm)
    assert torch.allclose(d, torch.zeros(4, dtype=torch.float64), atol=1e-12)
    d.sum().backward()
    assert torch.isfinite(z.grad).all()


@pytest.mark.parametrize("bad, exc, match", [
    (torch.zeros(2, 3, 4), ValueError, "square"),
    (torch.zeros(2, 10, 10), ValueError, "n <= 9"),
    (torch.zeros(3, 3, dtype=torch.float32), ValueError, "3 dimensions"),
    (torch.zeros(2, 3, 3, dtype=torch.long), TypeError, "floating"),
])
def test_bad_input(bad, exc, match):
    with pytest.raises(exc, match=match):
        assignment_value(bad)
