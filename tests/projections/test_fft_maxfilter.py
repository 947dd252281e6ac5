"""The real-DFT cyclic correlation against the direct orbit matmul (and the numpy roll loop)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from invlatent import Cyclic, MaxFilter, max_filter, pairwise_quotient_distance
from invlatent._fft_correlation import cyclic_max_inner, use_fft


def _loop(x, y):
    """Reference: numpy loop over the N shifts (roll, matmul, running max), in float64."""
    c = int(np.prod(x.shape[1:-1]))
    xn = x.double().numpy().reshape(len(x), c, x.shape[-1])
    yn = y.double().numpy().reshape(len(y), c * x.shape[-1])
    best = np.full((len(x), len(y)), -np.inf)
    for g in range(x.shape[-1]):
        best = np.maximum(best, np.roll(xn, g, axis=-1).reshape(len(x), c * x.shape[-1]) @ yn.T)
    return torch.from_numpy(best)


def _amax(d):
    return float(d.abs().max()) if d.numel() else 0.0


def _tol(x, y):
    """Relative 1e-5 (float32) / 1e-12 (float64) of the largest |x_i| |y_j|, the scale of every inner product."""
    scale = float(x.flatten(1).norm(dim=1).max() * y.flatten(1).norm(dim=1).max()) if len(x) and len(y) else 0.0
    return (1e-5 if x.dtype == torch.float32 else 1e-12) * max(scale, 1e-30)


@settings(max_examples=60, deadline=None)
@given(B=st.integers(0, 40), T=st.integers(1, 12), c=st.integers(1, 5), N=st.integers(1, 20),
       extra=st.booleans(), chunk=st.integers(1, 17), dtype=st.sampled_from([torch.float32, torch.float64]),
       seed=st.integers(0, 2**31 - 1))
def test_fft_matches_direct_and_loop(B, T, c, N, extra, chunk, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    shape = (c, 2, N) if extra else (c, N)  # extra middle axes are flattened into channels
    x = torch.randn(B, *shape, generator=g, dtype=dtype)
    y = torch.randn(T, *shape, generator=g, dtype=dtype) * 3.0
    fft = cyclic_max_inner(x, y, method="fft", chunk=chunk)
    direct = cyclic_max_inner(x, y, method="direct")
    assert fft.shape == direct.shape == (B, T) and fft.dtype == dtype
    tol = _tol(x, y)
    assert float(_amax(fft - direct)) <= tol
    assert float(_amax(fft.double() - _loop(x, y))) <= tol


@settings(max_examples=20, deadline=None)
@given(N=st.sampled_from([8, 12, 16]), c=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_fft_gradients_match_direct(N, c, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, c, N, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, c, N, generator=g, dtype=torch.float64, requires_grad=True)
    gx1, gy1 = torch.autograd.grad(cyclic_max_inner(x, y, method="fft", chunk=4).sum(), (x, y))
    gx2, gy2 = torch.autograd.grad(cyclic_max_inner(x, y, method="direct").sum(), (x, y))
    assert torch.allclose(gx1, gx2, atol=1e-10) and torch.allclose(gy1, gy2, atol=1e-10)


def test_max_filter_and_pairwise_use_the_fft_path_and_agree():
    C = Cyclic(16)
    mf = MaxFilter(C, (8, 16), n_templates=32, seed=0)
    z = torch.randn(300, 8, 16, generator=torch.Generator().manual_seed(1))
    assert use_fft(16, 8, 32)  # the hooked path is the DFT one at this size
    direct = cyclic_max_inner(z, mf.templates, method="direct")
    assert float((mf(z) - direct).abs().max()) <= _tol(z, mf.templates)
    assert float((max_filter(z, mf.templates, C) - direct).abs().max()) <= _tol(z, mf.templates)
    Z = z[:40].double()
    D = pairwise_quotient_distance(Z, None, C)
    orbit_d = (Z[:, None, None] - C.orbit(Z)[None]).flatten(3).norm(dim=-1).amin(-1)  # (40, 40) by brute force
    assert torch.allclose(D, orbit_d, atol=1e-6)


def test_size_rule_and_bad_input():
    assert not use_fft(2, 8, 256) and not use_fft(3, 8, 256) and use_fft(4, 8, 256) and use_fft(8, 1, 1)
    assert use_fft(16, 8, 256)
    with pytest.raises(ValueError, match="trailing shape"):
        cyclic_max_inner(torch.zeros(2, 3, 8), torch.zeros(2, 3, 7))
    with pytest.raises(ValueError, match="method"):
        cyclic_max_inner(torch.zeros(2, 3, 8), torch.zeros(2, 3, 8), method="fast")


@settings(max_examples=40, deadline=None)
@given(B=st.integers(1, 60), T=st.integers(1, 9), c=st.integers(1, 4), N=st.integers(1, 12),
       block=st.integers(0, 9), transform=st.integers(0, 9), dtype=st.sampled_from([torch.float32, torch.float64]),
       seed=st.integers(0, 2**31 - 1))
def test_fft_blocks_and_transform_steps_do_not_change_the_result(B, T, c, N, block, transform, dtype, seed):
    """Default block sizes (no ``chunk``): several transform steps of x, partial last blocks, reused buffers."""
    import invlatent._fft_correlation as fc

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, c, N, generator=g, dtype=dtype)
    y = torch.randn(T, c, N, generator=g, dtype=dtype)
    saved = fc._BLOCK_ELEMENTS, fc._TRANSFORM_ELEMENTS
    try:
        fc._BLOCK_ELEMENTS, fc._TRANSFORM_ELEMENTS = 1 << block, 1 << transform
        fft = cyclic_max_inner(x, y, method="fft")
    finally:
        fc._BLOCK_ELEMENTS, fc._TRANSFORM_ELEMENTS = saved
    assert fft.shape == (B, T) and fft.dtype == dtype
    assert float(_amax(fft.double() - _loop(x, y))) <= _tol(x, y)
