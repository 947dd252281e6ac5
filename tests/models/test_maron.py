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
