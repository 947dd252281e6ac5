"""Maron et al. layers through the shared harness: a group acting on edge tensors, defined here,
implements the protocol and pairs with Permutation on node tensors in assert_equivariant."""

import pytest
import torch

from invlatent import Permutation
from invlatent.groups import Group
from invlatent.models.maron import EdgeToEdge, EdgeToNode, MaskedInstanceNorm, NodeToEdge, NodeToNode
from invlatent.testing import assert_equivariant

n, C = 6, 5


class EdgePermutation(Group):
    """S_n on edge tensors (B, n, n, c): the same (B, n) index elements as Permutation, both node axes."""

    is_finite = True

    def __init__(self, n):
        self.nodes = Permutation(n)

    def check_latent(self, a, name="a"):
        if a.dim() != 4 or a.shape[1] != a.shape[2]:
            raise ValueError(f"{name} must have shape (B, n, n, c)")
        return a

    def sample(self, B, generator=None, device=None):
        return self.nodes.sample(B, generator=generator, device=device)

    def act(self, g, a):
        a = a.gather(1, g[:, :, None, None].expand_as(a))
        return a.gather(2, g[:, None, :, None].expand_as(a))


NODES, EDGES = Permutation(n), EdgePermutation(n)


@pytest.mark.parametrize("layer,inp,out", [
    (lambda: NodeToNode(C, 4), NODES, NODES),
    (lambda: NodeToEdge(C, 4), NODES, EDGES),
    (lambda: EdgeToEdge(C, 4), EDGES, EDGES),
    (lambda: EdgeToNode(C, 4), EDGES, NODES),
    (lambda: MaskedInstanceNorm(C), NODES, NODES),
    (lambda: MaskedInstanceNorm(C, edges=True), EDGES, EDGES),
])
def test_layers_are_permutation_equivariant(layer, inp, out, gen):
    torch.manual_seed(0)
    shape = (3, n, C) if inp is NODES else (3, n, n, C)
    x = torch.randn(*shape, generator=gen(1))
    assert assert_equivariant(layer(), x, inp, out, generator=gen(2)) < 1e-10


def test_the_harness_catches_a_wrong_output_action(gen):
    x = torch.randn(3, n, C, generator=gen(1))
    with pytest.raises(AssertionError, match="not equivariant"):
        # NodeToEdge output read as if only the first node axis moved
        assert_equivariant(NodeToEdge(C, 4), x, NODES, _FirstAxisOnly(n), generator=gen(2))


class _FirstAxisOnly(EdgePermutation):
    def act(self, g, a):
        return a.gather(1, g[:, :, None, None].expand_as(a))


# --- the hand-written forward/backward of EdgeToEdge against the autograd formula it replaced ----------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from invlatent.models.maron import edge_pool  # noqa: E402
from invlatent.testing import tolerance  # noqa: E402


def _reference_edge_to_edge(layer, a, mask=None):
    """The 2->2 layer as plain autograd operations (the implementation before the hand-written backward)."""
    C = layer.out_channels
    d, r, c, t, s = edge_pool(a, mask)
    diag, row, col = layer.node_lin(torch.cat([d, r, c], -1)).split(C, dim=-1)
    gd, ga = layer.graph_lin(torch.cat([t, s], -1)).split(C, dim=-1)
    out = layer.lin_a(a) + layer.lin_at(a).transpose(1, 2)
    out = out + (row + ga[:, None])[:, :, None] + col[:, None, :]
    return out + torch.diag_embed((diag + gd[:, None]).transpose(1, 2)).permute(0, 2, 3, 1)


def _random_mask(B, n, g):
    m = torch.rand(B, n, generator=g) < 0.7
    m[:, 0] = True
    return m


@settings(max_examples=40, deadline=None)
@given(B=st.integers(0, 3), n=st.integers(1, 6), c_in=st.integers(1, 5), c_out=st.integers(1, 5),
       masked=st.booleans(), dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**31 - 1))
def test_edge_to_edge_matches_the_autograd_formula(B, n, c_in, c_out, masked, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = EdgeToEdge(c_in, c_out).to(dtype)
    a = torch.randn(B, n, n, c_in, generator=g, dtype=dtype, requires_grad=True)
    mask = _random_mask(B, n, g) if masked else None
    out, ref = layer(a, mask), _reference_edge_to_edge(layer, a, mask)
    # different summation orders: tolerance from the dtype and the number of summed terms
    tol = tolerance(dtype, scale=max(1.0, (n * c_in) ** 0.5))
    assert out.shape == ref.shape == (B, n, n, c_out) and out.dtype == dtype
    torch.testing.assert_close(out, ref, **tol)
    grad_out = torch.randn(out.shape, generator=g, dtype=dtype)
    params = [a, *layer.parameters()]
    got = torch.autograd.grad(out, params, grad_out, allow_unused=True)
    want = torch.autograd.grad(ref, params, grad_out, allow_unused=True)
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, **tolerance(dtype, scale=max(1.0, (B * n * n) ** 0.5)))


@pytest.mark.parametrize("masked", [False, True])
def test_edge_to_edge_gradcheck_and_second_derivatives(masked, gen):
    g = gen(3)
    torch.manual_seed(3)
    layer = EdgeToEdge(2, 3).double()
    a = torch.randn(2, 4, 4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    mask = _random_mask(2, 4, g) if masked else None
    w = list(layer.parameters())
    assert torch.autograd.gradcheck(lambda a: layer(a, mask), (a,))
    assert torch.autograd.gradgradcheck(lambda a: layer(a, mask), (a,))
    # parameter gradients through the hand-written backward, against the autograd formula, in float64
    out = layer(a, mask)
    go = torch.randn(out.shape, generator=g, dtype=torch.float64)
    got = torch.autograd.grad(out, w, go)
    want = torch.autograd.grad(_reference_edge_to_edge(layer, a, mask), w, go)
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, atol=1e-12, rtol=1e-10)


def test_edge_to_edge_is_equivariant_with_a_mask(gen):
    """Permuting the nodes and the mask together permutes the output (the real positions)."""
    g = gen(5)
    torch.manual_seed(5)
    layer = EdgeToEdge(3, 2).double()
    a = torch.randn(2, 5, 5, 3, generator=g, dtype=torch.float64)
    mask = _random_mask(2, 5, g)
    perm = torch.randperm(5, generator=g)
    out = layer(a, mask)
    out_p = layer(a[:, perm][:, :, perm], mask[:, perm])
    torch.testing.assert_close(out_p, out[:, perm][:, :, perm], atol=1e-12, rtol=1e-12)
