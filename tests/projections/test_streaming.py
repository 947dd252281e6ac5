"""Chunked projection equals projecting at once, for every kind of projection; clear errors."""

import pytest
import torch

import invlatent
from invlatent.projections import Chunked, project_in_chunks


@pytest.mark.parametrize("chunk", [1, 7, 100, 1000])
def test_chunked_equals_whole(chunk):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(250, 6, 2, generator=g)
    for fn in [invlatent.sort_projection, invlatent.lexsort_projection,
               invlatent.MaxFilter(invlatent.Permutation(), (6, 2), n_out=8, seed=0)]:
        assert torch.allclose(project_in_chunks(fn, z, chunk_size=chunk), fn(z), atol=1e-6)
    zc = torch.randn(250, 3, 8, generator=g)
    mf = invlatent.MaxFilter(invlatent.Cyclic(8), (3, 8), n_out=16, seed=1)
    assert torch.allclose(Chunked(mf, chunk_size=chunk)(zc), mf(zc), atol=1e-6)


def test_output_device_and_dtype_follow_fn():
    z = torch.randn(10, 4, 1, dtype=torch.float64)
    out = project_in_chunks(invlatent.sort_projection, z, chunk_size=3, out_device="cpu")
    assert out.dtype == torch.float64 and out.device.type == "cpu"


def test_streams_through_cuda(cuda_device):
    z = torch.randn(5000, 9, 1)
    out = project_in_chunks(invlatent.sort_projection, z, chunk_size=1000, device=cuda_device)
    assert out.device.type == "cpu" and torch.equal(out, invlatent.sort_projection(z))


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: project_in_chunks("sort", torch.zeros(3, 2)), TypeError, "fn must be callable"),
        (lambda: project_in_chunks(invlatent.sort_projection, [1, 2]), TypeError, "z must be a torch.Tensor"),
        (lambda: project_in_chunks(invlatent.sort_projection, torch.zeros(3, 2, 1), chunk_size=0), ValueError, "chunk_size"),
        (lambda: project_in_chunks(lambda z: z.sum(), torch.zeros(3, 2, 1)), ValueError, "rows"),
        (lambda: project_in_chunks(invlatent.sort_projection, torch.full((3, 2, 1), float("nan"))), ValueError, "NaN"),
        (lambda: Chunked(invlatent.SortProjection(), chunk_size=-1), ValueError, "chunk_size"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_max_filter_internal_chunking_matches_whole(monkeypatch):
    import invlatent.groups.base as mfmod

    z = torch.randn(300, 4, 8, generator=torch.Generator().manual_seed(3))
    mf = invlatent.MaxFilter(invlatent.Cyclic(8), (4, 8), n_out=32, seed=0)
    whole = mf(z)
    monkeypatch.setattr(mfmod, "_MAX_INTERMEDIATE", 32 * 8 * 7)  # 7 latents per block
    blocked = mf(z)
    # Not bit-equal: BLAS may pick another kernel (accumulation order, FMA) for blocks of 7 rows.
    # Each output is a max over g of a K-term dot product <w, g z> with K = 4 * 8 and |w| = 1;
    # a K-term float32 dot product is off by at most K * eps * |w| |z| (Cauchy-Schwarz), the max
    # is 1-Lipschitz, so two orders differ by at most 2 K eps |z| per row.
    K, eps = 4 * 8, torch.finfo(z.dtype).eps
    bound = 2 * K * eps * z.flatten(1).norm(dim=1, keepdim=True)
    assert ((blocked - whole).abs() <= bound).all()
