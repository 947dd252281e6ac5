"""project_stream: latents projected batch by batch as they are produced, only the
projections and the first ``keep`` raw rows kept."""

import pytest
import torch

from invlatent import SO3, sort_projection
from invlatent.projections import StreamedProjections, pooled_complete_invariants, project_stream

IRREPS = "2x0e+2x1o"


def _batches(z, mask, size, order=None):
    starts = list(range(0, z.shape[0], size))
    for s in (starts if order is None else [starts[i] for i in order]):
        rows = slice(s, min(s + size, z.shape[0]))
        yield rows, z[rows], None if mask is None else mask[rows]


@pytest.fixture
def sets(gen):
    z = torch.randn(23, 5, 8, generator=gen(0))
    mask = torch.rand(23, 5, generator=gen(1)) < 0.8
    mask[:, 0] = True
    return z * mask[..., None], mask


def test_same_as_projecting_everything(sets):
    z, mask = sets
    views = {"complete": lambda z, m, rows: pooled_complete_invariants(z, SO3(IRREPS), m),
             "sorted": lambda z, m, rows: sort_projection(z[..., :1]).flatten(1),
             "row": lambda z, m, rows: torch.arange(rows.start, rows.stop)}
    # batches in any order: each writes its own rows
    out = project_stream(_batches(z, mask, 4, order=[5, 0, 3, 1, 4, 2]), views, n=23, keep=6,
                         dtype=torch.float64)
    assert isinstance(out, StreamedProjections)
    torch.testing.assert_close(out.views["complete"],
                               pooled_complete_invariants(z.double(), SO3(IRREPS), mask))
    torch.testing.assert_close(out.views["sorted"], sort_projection(z[..., :1].double()).flatten(1))
    assert out.views["row"].tolist() == list(range(23))
    assert out.z.dtype == torch.float32 and torch.equal(out.z, z[:6])  # raw rows kept as produced
    assert torch.equal(out.mask, mask)


def test_keep_nothing_and_no_mask(gen):
    z = torch.randn(10, 3, generator=gen(0))
    out = project_stream(_batches(z, None, 3), {"norm": lambda z, m, rows: z.norm(dim=1)}, n=10)
    assert out.z.shape == (0, 3) and out.mask is None
    torch.testing.assert_close(out.views["norm"], z.norm(dim=1))


def test_outputs_on_out_device_from_simulated_cuda(sets):
    from invlatent.testing import simulated_cuda

    z, mask = sets
    ref = project_stream(_batches(z, mask, 4), {"s": lambda z, m, rows: (z * m[..., None]).sum(1)},
                         n=23, keep=3)
    with simulated_cuda() as dev:
        zd, md = z.to(dev), mask.to(dev)
        out = project_stream(_batches(zd, md, 4), {"s": lambda z, m, rows: (z * m[..., None]).sum(1)},
                             n=23, keep=3)
        assert {t.device.type for t in (out.views["s"], out.z, out.mask)} == {"cpu"}
    torch.testing.assert_close(out.views["s"], ref.views["s"])


def test_bad_input(sets):
    z, mask = sets
    ok = {"s": lambda z, m, rows: z.sum(1)}
    cases = [
        (lambda: project_stream(_batches(z, mask, 4), [len], n=23), TypeError, "views must be a mapping"),
        (lambda: project_stream(_batches(z, mask, 4), {1: len}, n=23), TypeError, "views must have str keys"),
        (lambda: project_stream(_batches(z, mask, 4), {"a": 3}, n=23), TypeError, r"views\['a'\]"),
        (lambda: project_stream(_batches(z, mask, 4), ok, n=0), ValueError, "n must be"),
        (lambda: project_stream(_batches(z, mask, 4), ok, n=23, keep=24), ValueError, "keep must be"),
        (lambda: project_stream(_batches(z, mask, 4), ok, n=23, dtype="float64"), TypeError, "dtype must be"),
        (lambda: project_stream([z], ok, n=23), TypeError, r"tuple \(rows, z, mask\)"),
        (lambda: project_stream([(range(3), z[:3], None)], ok, n=23), TypeError, "rows must be a slice"),
        (lambda: project_stream([(slice(0, 4), z[:3], None)], ok, n=23), ValueError, "a batch of 3 latents"),
        (lambda: project_stream([(slice(0, 3), z[:3].long(), None)], ok, n=23), TypeError, "z must have a floating"),
        (lambda: project_stream([(slice(0, 3), z[:3], mask[:2])], ok, n=23), ValueError, "mask must have shape"),
        (lambda: project_stream(_batches(z, mask, 4), ok, n=30), ValueError, "covered 23 of n = 30"),
        (lambda: project_stream([(slice(0, 3), z[:3], None)] * 2, ok, n=3), ValueError, "overlap"),
        (lambda: project_stream(_batches(z, mask, 4), {"s": lambda z, m, r: z.sum()}, n=23), ValueError,
         r"views\['s'\] must map a batch of 4 latents"),
        (lambda: project_stream(_batches(z, mask, 4), {"s": lambda z, m, r: z[:, :r.stop % 3 + 1]}, n=23),
         ValueError, r"views\['s'\] gave rows of shape"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()
