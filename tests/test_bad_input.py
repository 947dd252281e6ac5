"""Bad input raises TypeError/ValueError naming the argument; nothing is silently broadcast."""

import numpy as np
import pytest
import torch

from invlatent import (O3, SO3, Cyclic, InvariantProjector, MaxFilter, Permutation,
                       align_to_template, aligned_interpolation, ambiguity_index, bispectrum,
                       complete_invariants, invariance_error, irrep_norms, lexsort_projection,
                       pairwise_quotient_distance, power_spectrum, quotient_distance, retention, reynolds_projection,
                       sort_projection)
from invlatent.probes import knn_agreement
from invlatent.quotient import batched_assignment

P, C, R = Permutation(), Cyclic(4), SO3("1x0e + 1x1o")
z = torch.randn(3, 5, 2)
zc = torch.randn(3, 2, 4)
nan = z.clone()
nan[0, 0, 0] = float("nan")
inf = z.clone()
inf[1, 2, 1] = float("inf")
D = torch.rand(4, 4)

CASES = [
    # (id, thunk, exception, regex the message must match)
    ("not-a-tensor", lambda: sort_projection(z.tolist()), TypeError, "z must be a torch.Tensor"),
    ("integer-dtype", lambda: sort_projection(torch.ones(2, 3, 1, dtype=torch.long)), TypeError, "z must have a floating dtype"),
    ("wrong-rank", lambda: sort_projection(torch.randn(3, 5)), ValueError, r"z must have 3 dimensions \(B, n, c\)"),
    ("nan", lambda: sort_projection(nan), ValueError, "z contains NaN or inf"),
    ("inf", lambda: quotient_distance(inf, z, P), ValueError, "z1 contains NaN or inf"),
    ("empty-batch", lambda: sort_projection(torch.randn(0, 5, 2)), ValueError, "z is empty"),
    ("mask-shape", lambda: sort_projection(z, torch.ones(3, 4, dtype=torch.bool)), ValueError, r"mask must have shape \(B, n\)"),
    ("mask-batch", lambda: lexsort_projection(z, torch.ones(2, 5, dtype=torch.bool)), ValueError, "mask must have shape"),
    ("mask-dtype", lambda: sort_projection(z, torch.ones(3, 5)), TypeError, "mask must have dtype torch.bool"),
    ("pair-shape", lambda: quotient_distance(z, z[:2], P), ValueError, "z1 and z2 must have the same shape"),
    ("pair-dtype", lambda: quotient_distance(z, z.double(), P), TypeError, "z1 and z2 must have the same dtype"),
    ("group-size", lambda: Permutation(4).act(torch.arange(4).expand(3, 4), z), ValueError, r"z has 5 nodes but the group is Permutation\(n=4\)"),
    ("cyclic-size", lambda: Cyclic(5).act(torch.zeros(3, dtype=torch.long), zc), ValueError, "last axis of size N=5"),
    ("irreps-dim", lambda: R.act(torch.eye(3).expand(3, 3, 3), torch.randn(3, 5)), ValueError, "irreps 1x0e\\+1x1o has dimension 4"),
    ("irreps-dim-fn", lambda: irrep_norms(torch.randn(2, 7), "2x1o"), ValueError, "irreps 2x1o has dimension 6"),
    ("irreps-invalid", lambda: SO3("banana"), ValueError, "irreps must be an e3nn Irreps"),
    ("element-batch", lambda: P.act(torch.arange(5).expand(2, 5), z), ValueError, r"g must have shape \(B, n\) = \(3, 5\)"),
    ("element-not-perm", lambda: P.act(torch.zeros(3, 5, dtype=torch.long), z), ValueError, "g must hold permutations"),
    ("element-float-shift", lambda: C.act(torch.zeros(3), zc), TypeError, "g must be an integer tensor"),
    ("element-rotation-shape", lambda: R.act(torch.eye(3).expand(2, 3, 3), torch.randn(3, 4)), ValueError, r"g must have shape \(B, 3, 3\)"),
    ("infinite-group-maxfilter", lambda: MaxFilter(SO3("1x1o"), (3,), 4), TypeError, "group must be a finite group"),
    ("n-templates-zero", lambda: MaxFilter(C, (2, 4), 0), ValueError, "n_out must be a positive int"),
    ("n-templates-float", lambda: MaxFilter(C, (2, 4), 2.5), TypeError, "n_out must be a positive int"),
    ("latent-shape-mismatch", lambda: MaxFilter(C, (2, 4), 3)(torch.randn(3, 3, 4)), ValueError, r"latent_shape=\(2, 4\)"),
    ("latent-shape-vs-group", lambda: MaxFilter(C, (2, 5), 3), ValueError, "N=4"),
    ("not-a-group", lambda: quotient_distance(z, z, "S_n"), TypeError, "group must be a group"),
    ("sample-zero", lambda: P.sample(0), ValueError, "B must be a positive int"),
    ("sample-str", lambda: C.sample("3"), TypeError, "B must be a positive int"),
    ("generator-type", lambda: C.sample(3, generator=0), TypeError, "generator must be a torch.Generator"),
    ("template-shape", lambda: align_to_template(zc, C, torch.randn(3, 4)), ValueError, r"template must have shape \(2, 4\)"),
    ("cost-not-square", lambda: batched_assignment(torch.rand(2, 3, 4)), ValueError, "cost must be square"),
    ("assignment-method", lambda: batched_assignment(torch.rand(2, 3, 3), method="hungarian"), ValueError, "method must be 'auto', 'dp' or 'scipy'"),
    ("assignment-dp-too-big", lambda: batched_assignment(torch.rand(1, 10, 10), method="dp"), ValueError, "method='dp' needs n <= 9"),
    ("retention-N", lambda: retention(torch.randn(5, 2), D), ValueError, r"reference must be an \(N, N\) = \(5, 5\)"),
    ("retention-negative", lambda: retention(torch.randn(4, 2), -D), ValueError, "reference must hold non-negative"),
    ("knn-k", lambda: knn_agreement(D, D, k=4), ValueError, "k must be smaller than the number of points"),
    ("ambiguity-one-sample", lambda: ambiguity_index(z[:1], P), ValueError, "at least 2 latents"),
    ("invariants-group", lambda: complete_invariants(torch.randn(2, 3), Cyclic(3)), TypeError, "group must be an SO3 or O3 group"),
    ("invariants-degree", lambda: complete_invariants(torch.randn(2, 3), SO3("1x1o"), degree=4), ValueError, "degree must be 2 or 3"),
    ("interp-t", lambda: aligned_interpolation(z, z, P, torch.ones(2, 2)), ValueError, "t must be a float or a non-empty 1-D"),
    ("cyclic-zero", lambda: Cyclic(0), ValueError, "N must be a positive int"),
    ("projector-method", lambda: InvariantProjector(C, (2, 4), method="pca").fit(np.zeros((3, 8))), ValueError, "method must be one of"),
    ("projector-unfitted", lambda: InvariantProjector(C, (2, 4)).transform(np.zeros((3, 8))), RuntimeError, "not fitted"),
    ("projector-shape", lambda: InvariantProjector(C, (2, 4)).fit(np.zeros((3, 7))), ValueError, r"X must have shape \(N, \*\(2, 4\)\)"),
    ("reynolds-weight", lambda: reynolds_projection(zc, C, torch.randn(3, 7)), ValueError, r"weight must have shape \(k, 8\)"),
    ("fn-not-callable", lambda: invariance_error(3, z, P), TypeError, "fn must be callable"),
    ("pairwise-shapes", lambda: pairwise_quotient_distance(z, torch.randn(3, 5, 3), P), ValueError, "Z1 and Z2 must share the latent shape"),
    ("lazy-batch", lambda: Permutation().act(Permutation().sample(2), z), ValueError, "g holds 2 permutations but z has batch size 3"),
    ("spectrum-rank", lambda: power_spectrum(torch.randn(8)), ValueError, "z must have at least 2 dimensions"),
    ("bispectrum-int", lambda: bispectrum(torch.ones(2, 3, dtype=torch.int32)), TypeError, "floating dtype"),
    ("o3-sample-B", lambda: O3("1x1o").sample(-1), ValueError, "B must be a positive int"),
]


@pytest.mark.parametrize("thunk,exc,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_clear_error(thunk, exc, match):
    with pytest.raises(exc, match=match):
        thunk()


def test_there_are_at_least_twenty_kinds():
    assert len({c[0] for c in CASES}) >= 20


def test_no_silent_broadcast_of_a_single_latent():
    """A (n, c) latent is not promoted to a batch; a (1, n, c) batch is not broadcast against (B, n, c)."""
    with pytest.raises(ValueError):
        quotient_distance(z[0], z[0], P)
    with pytest.raises(ValueError):
        quotient_distance(z[:1], z, P)


def test_qm9_split_of_a_data_set_gives_a_short_message():
    """The easy mistake qm9_split(load_qm9()) once raised a 2.5 MB message (every SMILES).

    The first 400 molecules (cached by the other QM9 tests; the full set takes ~30 s to load) go
    through the same code path; the old message for them was 10 kB.
    """
    from invlatent.data.qm9 import load_qm9, qm9_split

    ds = load_qm9(limit=400)
    with pytest.raises(TypeError) as info:
        qm9_split(ds)
    msg = str(info.value)
    assert len(msg) < 300, msg[:500]
    assert "n must be" in msg and type(ds).__name__ in msg and str(len(ds)) in msg and "len(dataset)" in msg


BIG = torch.randn(1000, 1000)  # its repr alone is ~1 kB; its values must never reach a message


@pytest.mark.parametrize(
    "thunk",
    [
        lambda: aligned_interpolation(z, z, P, BIG),
        lambda: InvariantProjector(P, (5, 2), method=BIG).fit(z.flatten(1).numpy()),
        lambda: pairwise_quotient_distance(z, None, P, chunk_size=BIG),
        lambda: MaxFilter(P, BIG, 4),
        lambda: __import__("invlatent.data.qm9").data.qm9.qm9_split(BIG),
    ],
)
def test_messages_describe_large_arguments_by_type_and_shape(thunk):
    with pytest.raises((TypeError, ValueError)) as info:
        thunk()
    msg = str(info.value)
    assert len(msg) < 300 and "(1000, 1000)" in msg and "Tensor" in msg, msg[:500]
