"""align_to_template for Cyclic through the group's argmax (real DFT above the crossover) against the direct path."""

import pytest
import torch

from invlatent import AlignToTemplate, Cyclic, Permutation, align_to_template
from invlatent._fft_correlation import cyclic_argmax_inner, use_fft
from invlatent.groups.base import Group


def _all_shifts(z, w):
    """``(B, N)`` float64 inner products <w, roll(z, s)> for every shift s (the reference)."""
    N = z.shape[-1]
    zd, wd = z.double().flatten(1), w.double().flatten()
    return torch.stack([torch.roll(z.double(), s, dims=-1).flatten(1) @ wd for s in range(N)], dim=1) if len(zd) else zd.new_zeros(0, N)


def _unique(ip, margin):
    """Rows whose best shift beats the runner-up by more than ``margin`` (ties aside)."""
    if ip.shape[1] == 1:
        return torch.ones(ip.shape[0], dtype=torch.bool)
    top = ip.topk(2, dim=1).values
    return (top[:, 0] - top[:, 1]) > margin


def _sizes(seed):
    g = torch.Generator().manual_seed(seed)
    B = [1, int(torch.randint(2, 60, (1,), generator=g))][seed % 2]
    c = [1, int(torch.randint(2, 6, (1,), generator=g))][(seed // 2) % 2]
    N = [1, 2, 3, 4, 5, 7, 8, 12, 16, 17][seed % 10]
    extra = seed % 3 == 0  # (B, c, 2, N): middle axes count as channels
    return B, c, N, extra, g


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed", range(30))
def test_cyclic_align_matches_direct(seed, dtype):
    B, c, N, extra, g = _sizes(seed)
    shape = (c, 2, N) if extra else (c, N)
    z = torch.randn(B, *shape, generator=g, dtype=dtype)
    w = torch.randn(*shape, generator=g, dtype=dtype) * 2.0
    G = Cyclic(N)
    ip = _all_shifts(z, w)
    scale = float(z.flatten(1).norm(dim=1).max() * w.norm())
    keep = _unique(ip, 1e-4 * scale)
    s_ref = ip.argmax(dim=1)

    best, s = G.argmax_inner(z, w.unsqueeze(0))
    assert best.shape == s.shape == (B, 1) and s.dtype == torch.long and best.dtype == dtype
    assert torch.equal(s[keep, 0], s_ref[keep])
    tol = (1e-5 if dtype == torch.float32 else 1e-12) * scale
    assert float((best[:, 0].double() - ip.amax(dim=1)).abs().max()) <= tol
    # both paths of the kernel, and the generic (orbit of z) fallback of the base class
    for method in ("fft", "direct"):
        _, gk = cyclic_argmax_inner(z, w.unsqueeze(0), method=method, chunk=int(torch.randint(1, 9, (1,), generator=g)))
        assert torch.equal(((-gk[:, 0]) % N)[keep], s_ref[keep])
    _, kb = Group.argmax_inner(G, z, w.unsqueeze(0))
    assert torch.equal(kb[keep, 0], s_ref[keep])

    out = align_to_template(z, G, w)
    direct = Group.align_to_template(G, z, w)  # the pre-DFT path: Group.align over the orbit of z
    assert out.shape == z.shape and out.dtype == dtype
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(out[keep], direct[keep], rtol=rtol, atol=rtol * float(z.abs().max()))
    assert torch.equal(out, G.act(s[:, 0], z))


def test_cyclic_argmax_path_rule(monkeypatch):
    """One template (align_to_template): the direct matmul; many templates: the DFT."""
    import invlatent._fft_correlation as fc

    calls = []
    real = fc._max_inner_fft
    monkeypatch.setattr(fc, "_max_inner_fft", lambda x, y, *a, **k: calls.append(y.shape[0]) or real(x, y, *a, **k))
    g = torch.Generator().manual_seed(1)
    z = torch.randn(7, 3, 16, generator=g)
    align_to_template(z, Cyclic(16), z[0])
    assert calls == []
    w = torch.randn(fc._ARGMAX_MIN_TEMPLATES, 3, 16, generator=g)
    best, s = Cyclic(16).argmax_inner(z, w)
    assert calls == [fc._ARGMAX_MIN_TEMPLATES] and use_fft(16, 3, len(w))
    ip = torch.stack([torch.roll(z, k, dims=-1).flatten(1) @ w.flatten(1).T for k in range(16)], dim=1)  # (B, N, T)
    assert torch.allclose(best, ip.amax(dim=1), atol=1e-4)
    assert torch.equal(s, ip.argmax(dim=1))  # random data: no ties


def test_cyclic_align_invariant_and_differentiable():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(20, 4, 16, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 16, generator=g, dtype=torch.float64)
    G = Cyclic(16)
    out = align_to_template(z, G, w)
    s = G.sample(20, generator=g)
    assert torch.allclose(align_to_template(G.act(s, z), G, w), out)
    (grad,) = torch.autograd.grad(out.square().sum(), z)
    assert torch.allclose(grad, 2 * z.detach())  # a shift is orthogonal: d|s.z|^2/dz = 2z
    m = AlignToTemplate(G, (4, 16), seed=0).double()
    assert torch.allclose(m(z.detach()), Group.align_to_template(G, z.detach(), m.template))


def test_other_groups_keep_align():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(5, 4, 2, generator=g)
    w = torch.randn(4, 2, generator=g)
    P = Permutation()
    assert torch.equal(align_to_template(z, P, w), P.align(w.expand_as(z), z)[0])
