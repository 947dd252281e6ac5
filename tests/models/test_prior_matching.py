"""The orbit MMD of the graph VAE: against a direct double loop, invariance, and the loss."""

import itertools

import pytest
import torch

from invlatent.models import GraphVAE
from invlatent.models._prior_matching import SCALES, sorted_mmd
from invlatent.models.graph_vae import train_graph_vae


def _direct_mmd(z, w):
    """The unbiased estimator by explicit loops over pairs, sorting each code by Python's
    sorted() per channel (float64)."""
    def key(v):  # (n, c) -> flat tuple, each channel sorted along the nodes
        cols = [sorted(v[:, k].tolist()) for k in range(v.shape[1])]
        return [cols[k][i] for i in range(v.shape[0]) for k in range(v.shape[1])]

    A, B = [key(v) for v in z], [key(v) for v in w]
    d = len(A[0])

    def k(a, b):
        sq = sum((x - y) ** 2 for x, y in zip(a, b))
        return sum(2 * d * s / (2 * d * s + sq) for s in SCALES)

    xx = sum(k(a, b) for a, b in itertools.permutations(A, 2)) / (len(A) * (len(A) - 1))
    yy = sum(k(a, b) for a, b in itertools.permutations(B, 2)) / (len(B) * (len(B) - 1))
    xy = sum(k(a, b) for a in A for b in B) / (len(A) * len(B))
    return xx + yy - 2 * xy


@pytest.mark.parametrize("c", [1, 2])
def test_sorted_mmd_matches_a_direct_double_loop(c):
    g = torch.Generator().manual_seed(c)
    z = torch.randn(7, 5, c, generator=g, dtype=torch.float64) * 1.5 + 0.3
    w = torch.randn(6, 5, c, generator=g, dtype=torch.float64)
    # float64 sums of ~100 terms of size ~10 taken in another order
    assert float(sorted_mmd(z, w)) == pytest.approx(_direct_mmd(z, w), rel=1e-10, abs=1e-12)


def test_sorted_mmd_is_invariant_to_node_orders_and_separates_distributions():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 9, 2, generator=g, dtype=torch.float64)
    w = torch.randn(64, 9, 2, generator=g, dtype=torch.float64)
    perm = torch.stack([torch.randperm(9, generator=g) for _ in range(64)])
    zp = z.gather(1, perm[:, :, None].expand_as(z))
    # sorting removes the order exactly; the rest is the same arithmetic
    assert float(sorted_mmd(zp, w)) == pytest.approx(float(sorted_mmd(z, w)), rel=1e-12, abs=1e-14)
    far = float(sorted_mmd(z + 2.0, w))
    near = float(sorted_mmd(z, w))
    assert far > 10 * abs(near)


def test_loss_with_mmd_adds_the_term_and_mmd_zero_changes_nothing():
    torch.manual_seed(0)
    vae = GraphVAE(hidden=8, depth=1, decoder="sort-mlp")
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (6, 9)), 4).float()
    adj = torch.zeros(6, 9, 9, 3)
    mask = torch.ones(6, 9, dtype=torch.bool)
    plain = vae.loss(x, adj, mask, beta=0.1, generator=torch.Generator().manual_seed(1))
    zero = vae.loss(x, adj, mask, beta=0.1, generator=torch.Generator().manual_seed(1), mmd=0.0)
    # exact: mmd=0 runs the very same operations, in the same order, in this process
    assert "mmd" not in zero and torch.equal(plain["loss"], zero["loss"])
    out = vae.loss(x, adj, mask, beta=0.1, generator=torch.Generator().manual_seed(1), mmd=10.0)
    # same posterior noise (drawn first), plus the weighted term
    assert torch.allclose(out["loss"], plain["loss"] + 10.0 * out["mmd"], rtol=1e-6, atol=1e-6)
    out["mmd"].backward()
    grads = {n: p.grad for n, p in vae.named_parameters()}
    # the penalty trains the encoder (the codes) and never the decoder
    assert any(g is not None and float(g.abs().sum()) > 0 for n, g in grads.items()
               if not n.startswith("sort_decoder"))
    assert all(g is None for n, g in grads.items() if n.startswith("sort_decoder"))
    with pytest.raises(ValueError, match="mmd"):
        train_graph_vae(vae, {"x": x, "adj": adj, "mask": mask}, epochs=1, mmd=-1.0)
