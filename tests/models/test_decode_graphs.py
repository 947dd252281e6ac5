"""``decode_graphs(..., connected=True)`` against brute force over every graph."""

import itertools

import pytest
import torch

from invlatent.models import GraphVAE, decode_graphs


def _is_connected(bond, nodes):
    nodes = list(nodes)
    if len(nodes) <= 1:
        return True
    seen, todo = {nodes[0]}, [nodes[0]]
    while todo:
        i = todo.pop()
        for j in nodes:
            if j not in seen and bond[i][j] > 0:
                seen.add(j)
                todo.append(j)
    return len(seen) == len(nodes)


def _log_prob(logp, bond, nodes):
    return sum(float(logp[i, j, bond[i][j]]) for i, j in itertools.combinations(nodes, 2))


def _brute_force_best(logp, nodes, n):
    """The largest log-probability of a connected graph on ``nodes``: every assignment of
    the four bond classes to every pair (4^6 = 4096 graphs for four nodes)."""
    pairs = list(itertools.combinations(nodes, 2))
    best = -float("inf")
    for classes in itertools.product(range(4), repeat=len(pairs)):
        bond = [[0] * n for _ in range(n)]
        for (i, j), k in zip(pairs, classes):
            bond[i][j] = bond[j][i] = k
        if _is_connected(bond, nodes):
            best = max(best, _log_prob(logp, bond, nodes))
    return best


@pytest.mark.parametrize("no_bond_bias", [0.0, 1.5])
@pytest.mark.parametrize("seed", range(15))
def test_connected_decoding_is_the_most_likely_connected_graph(seed, no_bond_bias):
    g = torch.Generator().manual_seed(seed)
    n = 4
    # with "no bond" favoured (as in a trained decoder) argmax graphs fall apart often;
    # without, they often hold cycles that the rule must keep
    bond = torch.randn(1, n, n, 4, generator=g, dtype=torch.float64) * 2.0
    bond[..., 0] += no_bond_bias
    bond = 0.5 * (bond + bond.transpose(1, 2))
    exist = torch.randn(1, n, generator=g, dtype=torch.float64) + 1.0
    exist[0, 0] = 1.0                                  # at least one node
    logits = {"exist": exist, "atom": torch.zeros(1, n, 4, dtype=torch.float64), "bond": bond}
    atom, out, mask = decode_graphs(logits, connected=True)
    nodes = [i for i in range(n) if mask[0, i]]
    got = out[0].tolist()
    logp = torch.log_softmax(bond[0], -1)
    assert _is_connected(got, nodes)
    assert all(got[i][j] == 0 for i in range(n) for j in range(n) if i == j or not (mask[0, i] and mask[0, j]))
    # the optimum's value, up to float64 round-off of a sum of six terms
    assert _log_prob(logp, got, nodes) == pytest.approx(_brute_force_best(logp, nodes, n), rel=0, abs=1e-9)
    # nodes and atom types are the plain argmax's
    plain = decode_graphs(logits)
    assert torch.equal(plain[0], atom) and torch.equal(plain[2], mask)


def test_connected_decoding_keeps_a_connected_argmax_graph():
    # a sanity check (by construction): a connected argmax graph is its own optimum
    bond = torch.zeros(2, 3, 3, 4)
    bond[..., 0] = 1.0
    for i, j in ((0, 1), (1, 2)):
        bond[:, i, j, 1] = bond[:, j, i, 1] = 2.0
    logits = {"exist": torch.ones(2, 3), "atom": torch.zeros(2, 3, 4), "bond": bond}
    assert torch.equal(decode_graphs(logits)[1], decode_graphs(logits, connected=True)[1])


def test_connected_sampling_is_equivariant_and_checked():
    torch.manual_seed(0)
    vae = GraphVAE(hidden=16, depth=1, decoder="sort-transformer").eval()
    z = torch.randn(8, 9, 1)
    perm = torch.stack([torch.randperm(9) for _ in range(8)])
    with torch.no_grad():
        a = decode_graphs(vae.decode(z), connected=True)
        b = decode_graphs(vae.decode(z.gather(1, perm[..., None])), connected=True)
    idx = perm[:, :, None].expand(-1, -1, 9)
    # the decoder is equivariant and the rule commutes with relabelling (ties aside: random
    # float logits have none). Exact comparison of integer graphs is sound: the sort decoder
    # sees the same sorted codes for z and its permutation, so the logits are the same bits,
    # only gathered into other slots
    assert torch.equal(b[2], a[2].gather(1, perm))
    assert torch.equal(b[1], a[1].gather(1, idx).gather(2, perm[:, None, :].expand(-1, 9, -1)))
    with pytest.raises(TypeError, match="connected"):
        decode_graphs(vae.decode(z), connected="yes")
    assert vae.sample(4, connected=True)[1].shape == (4, 9, 9)
