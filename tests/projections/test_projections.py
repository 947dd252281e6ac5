"""Invariant projections: invariance (float32 and float64), gradients, batch splits, cross-sections."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import invlatent
from invlatent import (AlignToTemplate, Cyclic, LexSortProjection, MaxFilter, Permutation,
                       ReynoldsProjection, SortProjection, invariance_error, lexsort_projection,
                       quotient_distance, sort_projection)

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}



def projections():
    """(name, group, latent_shape, module) for every finite-group projection."""
    P, C = Permutation(), Cyclic(8)
    return [
        ("sort", P, (6, 3), SortProjection()),
        ("lexsort", P, (6, 3), LexSortProjection()),
        ("align-perm", P, (5, 2), AlignToTemplate(P, (5, 2), seed=1)),
        ("align-cyclic", C, (3, 8), AlignToTemplate(C, (3, 8), seed=1)),
        ("maxfilter-perm-c1", P, (7, 1), MaxFilter(P, (7, 1), 16, seed=0)),
        ("maxfilter-perm", P, (5, 2), MaxFilter(P, (5, 2), 16, seed=0)),
        ("maxfilter-cyclic", C, (3, 8), MaxFilter(C, (3, 8), 16, seed=0)),
        ("reynolds-perm", P, (5, 2), ReynoldsProjection(P, (5, 2), 4)),
        ("reynolds-cyclic", C, (3, 8), ReynoldsProjection(C, (3, 8), 4)),
    ]


PROJ = projections()
IDS = [p[0] for p in PROJ]


@pytest.mark.parametrize("name,group,shape,module", PROJ, ids=IDS)
def test_invariance(gen, name, group, shape, module, dtype):
    z = torch.randn(32, *shape, generator=gen(0), dtype=dtype)
    assert invariance_error(module, z, group, n_elements=4, generator=1) <= TOL[dtype]


@pytest.mark.parametrize("name,group,shape,module", PROJ, ids=IDS)
def test_finite_gradients_and_batch_splits(gen, name, group, shape, module):
    z = torch.randn(10, *shape, generator=gen(0), dtype=torch.float64, requires_grad=True)
    out = module(z)
    out.square().sum().backward()
    assert torch.isfinite(z.grad).all()
    parts = torch.cat([module(z[:3]), module(z[3:4]), module(z[4:])])
    assert torch.allclose(parts, out, atol=1e-12)


@pytest.mark.parametrize("n", [2, 4, 7])
def test_sort_is_an_isometric_cross_section_for_one_channel(gen, n, dtype):
    """||sort(z) - sort(z')|| equals the brute-force min over all n! permutations."""
    z1 = torch.randn(24, n, 1, generator=gen(n), dtype=dtype)
    z2 = torch.randn(24, n, 1, generator=gen(n + 100), dtype=dtype)
    perms = torch.tensor(list(itertools.permutations(range(n))))
    brute = (z1.unsqueeze(1) - z2[:, perms]).flatten(2).norm(dim=2).min(dim=1).values
    lhs = (sort_projection(z1) - sort_projection(z2)).flatten(1).norm(dim=1)
    assert torch.allclose(lhs, brute, atol=TOL[dtype])


def test_per_channel_sort_is_not_injective_for_several_channels():
    z1 = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    z2 = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    assert torch.equal(sort_projection(z1), sort_projection(z2))
    assert quotient_distance(z1, z2, Permutation()) > 1.0  # different orbits, merged
    assert not torch.equal(lexsort_projection(z1), lexsort_projection(z2))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 7), c=st.integers(1, 3), seed=st.integers(0, 10**6))
def test_lexsort_and_alignment_are_cross_sections(gen, n, c, seed):
    """One output per orbit, and the output lies on the orbit."""
    P = Permutation()
    z = torch.randint(-2, 3, (8, n, c), generator=gen(seed)).double()  # ties on purpose
    g = P.sample(8, generator=gen(seed + 1))
    out = lexsort_projection(z)
    assert torch.equal(out, lexsort_projection(P.act(g, z)))
    assert torch.equal(out.sort(dim=1).values, z.sort(dim=1).values)  # a re-ordering of z's rows
    zr = torch.randn(8, n, c, generator=gen(seed + 2), dtype=torch.float64)  # generic: no ties
    canon = AlignToTemplate(P, (n, c), seed=seed % 1000)
    a = canon(zr)
    assert torch.allclose(a, canon(P.act(g, zr)))
    assert quotient_distance(a, zr, P).max() < 1e-12


def test_sort_and_lexsort_with_mask(gen):
    z = torch.randn(20, 6, 2, generator=gen(0))
    counts = torch.randint(1, 7, (20,), generator=gen(1))
    mask = torch.arange(6).unsqueeze(0) < counts.unsqueeze(1)
    P = Permutation()
    g = P.sample(20, generator=gen(2))
    for fn in (sort_projection, lexsort_projection):
        out = fn(z, mask)
        assert torch.equal(out, fn(P.act(g, z, mask=mask), mask))
        assert torch.equal(out[~mask], torch.zeros_like(out[~mask]))  # padding last, zeros
        # the padded values of z do not matter
        assert torch.equal(out, fn(torch.where(mask.unsqueeze(-1), z, 7.0), mask))


def test_max_filter_matches_brute_force_over_the_orbit(gen):
    P = Permutation(5)
    mf = MaxFilter(P, (5, 2), 6, seed=3)
    z = torch.randn(4, 5, 2, generator=gen(0), dtype=torch.float64)
    orb = P.orbit(z)  # (4, 120, 5, 2)
    brute = torch.einsum("tnc,bgnc->btg", mf.templates.double(), orb).amax(-1)
    assert torch.allclose(mf(z), brute, atol=1e-12)


@pytest.mark.parametrize("group,shape", [(Permutation(), (5, 2)), (Cyclic(6), (2, 6))])
def test_max_filters_separate_random_orbits(gen, group, shape):
    """With enough templates, distinct random orbits get distinct outputs (Cahill et al.)."""
    z = torch.randn(200, *shape, generator=gen(0), dtype=torch.float64)
    out = MaxFilter(group, shape, 2 * z[0].numel() + 4, seed=0).double()(z)
    D = torch.cdist(out, out) + torch.eye(200, dtype=torch.float64)
    assert D.min() > 1e-3


def test_max_filter_module_is_seeded_and_moves_with_dtype():
    a = MaxFilter(Cyclic(4), (2, 4), 5, seed=7)
    b = MaxFilter(Cyclic(4), (2, 4), 5, seed=7)
    assert torch.equal(a.templates, b.templates)
    assert not torch.equal(a.templates, MaxFilter(Cyclic(4), (2, 4), 5, seed=8).templates)
    assert a.double()(torch.zeros(1, 2, 4, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("name,group,shape,module", PROJ, ids=IDS)
def test_cuda_matches_cpu(gen, name, group, shape, module, cuda_device):
    """On a GPU, or on the simulated CUDA device without one (tests/conftest.py)."""
    z = torch.randn(32, *shape, generator=gen(0))
    cpu = module(z)
    try:
        gpu = module.to(cuda_device)(z.cuda())
        assert gpu.device.type == "cuda"
        assert torch.allclose(gpu.cpu(), cpu, atol=1e-5)
        assert invariance_error(module, z.cuda(), group) <= 1e-5
    finally:
        module.to("cpu")  # the module is shared with the other tests of this file


def test_cuda_dp_assignment_matches_scipy(gen, cuda_device):
    from invlatent.quotient import batched_assignment

    cost = torch.rand(256, 9, 9, generator=gen(0), dtype=torch.float64)
    v_gpu, p_gpu = batched_assignment(cost.to(cuda_device), method="dp")
    v_ref, _ = batched_assignment(cost, method="scipy")
    assert v_gpu.device.type == p_gpu.device.type == "cuda"
    assert torch.allclose(v_gpu.cpu(), v_ref, atol=1e-12)


@pytest.mark.parametrize("method", ["max_filter", "reynolds", "align", "sort", "lexsort"])
def test_sklearn_projector_is_invariant_and_clonable(gen, method):
    import numpy as np
    from sklearn.base import clone

    from invlatent import InvariantProjector

    P = Permutation()
    z = torch.randn(12, 5, 2, generator=gen(0), dtype=torch.float64)
    zp = P.act(P.sample(12, generator=gen(1)), z)
    proj = InvariantProjector(P, (5, 2), method=method, n_out=8, seed=3)
    a = proj.fit_transform(z.flatten(1).numpy())
    b = proj.transform(zp.numpy())
    assert isinstance(a, np.ndarray) and a.shape == (12, proj.n_features_out_)
    assert np.allclose(a, b, atol=1e-10)
    c = clone(proj).fit(z.numpy()).transform(z.numpy())
    # seeded: a clone gives the same projection; exact: same templates, same kernels, same input
    assert np.array_equal(a, c)


def test_sklearn_projector_in_a_pipeline(gen):
    import numpy as np
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline

    from invlatent import InvariantProjector

    C = Cyclic(6)
    protos = torch.randn(3, 2, 6, generator=gen(0), dtype=torch.float64)
    y = torch.arange(90) % 3
    Z = C.act(C.sample(90, generator=gen(1)), protos[y] + 0.1 * torch.randn(90, 2, 6, generator=gen(2), dtype=torch.float64))
    X = Z.flatten(1).numpy()
    inv = cross_val_score(make_pipeline(InvariantProjector(C, (2, 6), n_out=32), KNeighborsClassifier(3)), X, y.numpy(), cv=3)
    raw = cross_val_score(KNeighborsClassifier(3), X, y.numpy(), cv=3)
    assert inv.mean() > 0.95 and inv.mean() > raw.mean()


def test_renamed_output_counts_still_work_with_a_deprecation_warning():
    z = torch.randn(4, 2, 6, generator=torch.Generator().manual_seed(0))
    with pytest.warns(DeprecationWarning, match="n_templates"):
        old = MaxFilter(Cyclic(6), (2, 6), n_templates=5, seed=0)
    assert torch.equal(old(z), MaxFilter(Cyclic(6), (2, 6), n_out=5, seed=0)(z))
    with pytest.raises(TypeError, match="n_out"):
        MaxFilter(Cyclic(6), (2, 6), n_out=5, n_templates=5)
    with pytest.warns(DeprecationWarning, match="n_components"):
        invlatent.InvariantProjector(Cyclic(6), (2, 6), n_components=5).fit(z.numpy())


def test_functions_take_data_then_group_then_parameters_old_order_deprecated():
    from invlatent import align_to_template, max_filter, reynolds_projection

    C = Cyclic(4)
    z = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w = torch.randn(5, 2, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    W = torch.randn(6, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for fn, param in ((max_filter, w), (align_to_template, w[0]), (reynolds_projection, W)):
        new = fn(z, C, param)
        with pytest.warns(DeprecationWarning, match="deprecated"):
            old = fn(z, param, C)
        assert torch.equal(new, old)  # exact: the old order calls the same code on the same input
