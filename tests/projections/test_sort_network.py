"""The sorting-network path of sort_projection against numpy.sort (and torch.sort): the same values."""

import itertools

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import invlatent.projections._sort as sort_mod
from invlatent import sort_projection


@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 40), n=st.integers(1, 14), c=st.integers(1, 4), block=st.integers(1, 50),
       ties=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**31 - 1))
def test_network_sort_equals_numpy_sort(B, n, c, block, ties, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, n, c)).astype(dtype)
    if ties:  # few distinct values, signed zeros among them
        x = rng.choice(np.array([-1.0, -0.0, 0.0, 2.5], dtype=dtype), size=(B, n, c))
    before = x.copy()
    saved = sort_mod._NETWORK_BLOCK
    try:
        sort_mod._NETWORK_BLOCK = block  # several blocks, a partial last one
        got = sort_mod._network_sort(x)
    finally:
        sort_mod._NETWORK_BLOCK = saved
    # the input is untouched (a block of one latent is contiguous after the transpose: no view)
    assert np.array_equal(x, before) and np.array_equal(np.signbit(x), np.signbit(before))
    assert got.dtype == x.dtype and got.shape == x.shape
    assert np.array_equal(got, np.sort(x, axis=1))  # sorting moves values: exactly equal (-0.0 == 0.0)


def test_comparator_networks_sort_every_zero_one_input():
    """The 0-1 principle: a comparator network sorts every input iff it sorts every 0-1 input."""
    for n in range(1, 13):
        net = sort_mod._comparators(n)
        for bits in itertools.product((0, 1), repeat=n):
            v = list(bits)
            for i, j in net:
                if v[i] > v[j]:
                    v[i], v[j] = v[j], v[i]
            assert v == sorted(v), (n, bits)


def test_sort_projection_takes_the_network_path_and_matches_torch_sort(gen):
    z = torch.randn(sort_mod._NETWORK_MIN_ROWS + 5, 9, 1, generator=gen(0))
    z_before = z.clone()
    mask = torch.rand(z.shape[:2], generator=gen(1)) < 0.8
    calls = []
    original = sort_mod._network_sort
    sort_mod._network_sort = lambda x: calls.append(x.shape) or original(x)
    try:
        plain, masked = sort_projection(z), sort_projection(z, mask)
    finally:
        sort_mod._network_sort = original
    assert len(calls) == 2  # both went through the network
    assert torch.equal(z, z_before)
    assert torch.equal(plain, z.sort(dim=1).values)
    counts = mask.sum(1)
    ref = z.masked_fill(~mask[..., None], float("inf")).sort(dim=1).values
    ref = torch.where(torch.arange(9)[None, :, None] < counts[:, None, None], ref, torch.zeros(()))
    assert torch.equal(masked, ref)
