"""The autoregressive sort decoder: a normalised distribution (brute force over every graph),
causal (no target leaks into earlier factors), greedy decoding = teacher forcing on its output,
and equivariant with teacher forcing too."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from invlatent.models._autoregressive_decoder import AutoregressiveSortDecoder
from invlatent.models.graph_vae import GraphVAE, decode_graphs, elbo_terms


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/models/conftest.py


def _decoder(n, seed=0, A=2, E=2):
    torch.manual_seed(seed)
    dec = AutoregressiveSortDecoder(n, 1, 16, 1, A, E).double().eval()
    with torch.no_grad():  # larger output weights: far-from-uniform factors make the test sharper
        for p in list(dec.node_out.parameters()) + list(dec.pair_out.parameters()):
            p.mul_(4.0)
    return dec


def _all_graphs(n, A, E):
    """Every graph on n slots: each slot absent or one of A atom types, each pair of present
    nodes one of 1 + E bond classes. Returns one-hot x (G, n, A), adj (G, n, n, E), bool mask."""
    xs, adjs, masks = [], [], []
    pairs = list(itertools.combinations(range(n), 2))
    for cls in itertools.product(range(1 + A), repeat=n):
        present = [c > 0 for c in cls]
        live = [(i, j) for i, j in pairs if present[i] and present[j]]
        for bonds in itertools.product(range(1 + E), repeat=len(live)):
            b = torch.zeros(n, n, dtype=torch.long)
            for (i, j), v in zip(live, bonds):
                b[i, j] = b[j, i] = v
            c = torch.tensor(cls)
            xs.append(F.one_hot((c - 1).clamp(min=0), A) * (c > 0)[:, None])
            adjs.append(F.one_hot(b, 1 + E)[..., 1:])
            masks.append(c > 0)
    return torch.stack(xs).double(), torch.stack(adjs).double(), torch.stack(masks)


def _log_prob(logits, x, adj, mask):
    """log p(G | z) per graph from teacher-forced logits, written out here (not the package's
    loss): Bernoulli existence of every slot, the atom class of present nodes, the bond class
    of every pair i < j of present nodes."""
    m = mask.double()
    lp = -F.binary_cross_entropy_with_logits(logits["exist"], m, reduction="none").sum(1)
    lp = lp + (torch.log_softmax(logits["atom"], -1) * x).sum(-1).mul(m).sum(1)
    bond = torch.where(adj.sum(-1) > 0, adj.argmax(-1) + 1, 0)
    lb = torch.log_softmax(logits["bond"], -1).gather(-1, bond[..., None])[..., 0]
    n = mask.shape[1]
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
    return lp + (lb * (mask[:, :, None] & mask[:, None, :] & upper)).sum((1, 2))


@pytest.mark.parametrize("seed", [0, 1])
def test_distribution_is_normalised_over_every_graph(seed):
    # Brute force: the teacher-forced factors define a distribution only if every factor is
    # normalised and sees nothing of the graph beyond its own prefix. Summed over all
    # 3^3 * 3^3 graphs on 3 slots (float64), the probabilities must add up to 1; a factor that
    # peeked at a later choice would break this.
    n, A, E = 3, 2, 2
    dec = _decoder(n, seed)
    x, adj, mask = _all_graphs(n, A, E)
    assert x.shape[0] == 1 + 3 * 2 + 3 * 2 ** 2 * 3 + 2 ** 3 * 3 ** 3   # 0, 1, 2 or 3 nodes
    for z in torch.randn(3, 1, n, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)):
        logits = dec(z.expand(x.shape[0], n, 1), x, adj, mask)
        total = torch.logsumexp(_log_prob(logits, x, adj, mask), 0)
        assert abs(total.item()) < 1e-10, total   # float64 sums of ~1e3 terms


def test_the_normalisation_test_can_fail():
    # the same sum with one factor made to see its own target (a leak) is not 1
    n, A, E = 3, 2, 2
    dec = _decoder(n, 0)
    x, adj, mask = _all_graphs(n, A, E)
    z = torch.randn(1, n, 1, dtype=torch.float64).expand(x.shape[0], n, 1)
    logits = dec(z, x, adj, mask)
    logits["atom"] = logits["atom"] + 3.0 * x       # the atom factor now "knows" the answer
    assert torch.logsumexp(_log_prob(logits, x, adj, mask), 0).item() > 0.1   # 0.25 measured


def test_greedy_decoding_is_teacher_forcing_on_its_own_output():
    # two code paths (a loop of single steps; one parallel pass) give the same logits on the
    # greedy graph, and the greedy graph is the argmax of each of its factors
    dec = _decoder(9, 3, A=4, E=3).float()
    with torch.no_grad():
        dec.node_out[-1].bias[0] += 10.0    # most nodes present, so there are bonds to decode
    z = torch.randn(200, 9, 1)
    g = dec(z)
    atom, bond, mask = decode_graphs(g)
    x = F.one_hot(atom, 4).float() * mask[..., None]
    adj = F.one_hot(bond, 4)[..., 1:].float()
    tf = dec(z, x, adj, mask)
    live = mask[:, :, None] & mask[:, None, :]
    # float32: the two paths attend over different lengths (masked entries are exact zeros)
    assert torch.allclose(g["exist"], tf["exist"], atol=1e-5)
    assert torch.allclose(g["atom"][mask], tf["atom"][mask], atol=1e-5)
    assert torch.allclose(g["bond"][live], tf["bond"][live], atol=1e-5)
    assert mask.float().mean() > 0.5 and (bond > 0).any()   # not a trivial empty output


def test_teacher_forced_factors_are_causal():
    # Change the class of the node of rank k: factors of ranks < k, and node k's own node
    # factor, must not move; node k's bonds and later factors may.
    n = 6
    dec = _decoder(n, 4, A=4, E=3)
    z = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)[None, :, None]      # rank = slot
    mask = torch.ones(1, n, dtype=torch.bool)
    atom = torch.tensor([[0, 1, 2, 0, 1, 3]])
    b = torch.zeros(1, n, n, dtype=torch.long)
    for i, j, v in [(0, 1, 1), (1, 2, 2), (2, 3, 1), (3, 4, 1), (1, 5, 1)]:
        b[0, i, j] = b[0, j, i] = v
    adj = F.one_hot(b, 4)[..., 1:].double()
    base = dec(z, F.one_hot(atom, 4).double(), adj, mask)
    for k in range(n):
        changed = atom.clone()
        changed[0, k] = (changed[0, k] + 1) % 4
        out = dec(z, F.one_hot(changed, 4).double(), adj, mask)
        node = torch.cat([base["exist"][..., None], base["atom"]], -1)
        node2 = torch.cat([out["exist"][..., None], out["atom"]], -1)
        assert torch.allclose(node[0, : k + 1], node2[0, : k + 1], atol=1e-12)
        assert torch.allclose(base["bond"][0, :k, :k], out["bond"][0, :k, :k], atol=1e-12)
        if k + 1 < n:  # sanity check that the change reaches later factors at all
            assert not torch.allclose(node[0, k + 1 :], node2[0, k + 1 :], atol=1e-6)


def test_teacher_forcing_is_equivariant_and_the_vae_loss_uses_it():
    torch.manual_seed(5)
    vae = GraphVAE(hidden=16, depth=1, decoder_depth=1, decoder="sort-autoregressive").double()
    x, adj, mask = _random_graphs()
    p = torch.stack([torch.randperm(9) for _ in range(x.shape[0])])
    z = torch.randn(x.shape[0], 9, 1, dtype=torch.float64)
    out = vae.sort_decoder(z, x, adj, mask)
    zp, xp, adjp, mp = _pn(z, p), _pn(x, p), _pe(adj, p), _pn(mask, p)
    outp = vae.sort_decoder(zp, xp, adjp, mp)
    assert torch.allclose(outp["atom"], _pn(out["atom"], p), atol=1e-12)
    assert torch.allclose(outp["bond"], _pe(out["bond"], p), atol=1e-12)
    # the VAE's loss is the teacher-forced negative log-likelihood
    logits, mu, logvar, zz = vae(x, adj, mask, generator=torch.Generator().manual_seed(0))
    terms = elbo_terms(logits, mu, logvar, x, adj, mask, 0.0)
    nll = -_log_prob(vae.sort_decoder(zz, x, adj, mask), x, adj, mask).mean()
    assert torch.allclose(terms["loss"], nll, rtol=1e-10)


def _random_graphs(B=6, n=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, n + 1, (B,), generator=g)
    mask = torch.arange(n)[None] < sizes[:, None]
    x = F.one_hot(torch.randint(0, 4, (B, n), generator=g), 4).double() * mask[..., None]
    b = torch.randint(0, 4, (B, n, n), generator=g).triu(1)
    b = (b + b.transpose(1, 2)) * (mask[:, :, None] & mask[:, None, :])
    return x, F.one_hot(b, 4)[..., 1:].double(), mask


def _pn(t, p):
    return torch.gather(t, 1, p.view(*p.shape, *([1] * (t.dim() - 2))).expand_as(t))


def _pe(t, p):
    t = torch.gather(t, 1, p[:, :, None, None].expand_as(t))
    return torch.gather(t, 2, p[:, None, :, None].expand_as(t))
