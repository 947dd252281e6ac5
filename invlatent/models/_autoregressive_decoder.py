r"""An autoregressive graph decoder over the sorted node codes: one node, then its bonds, at a time.

A one-shot decoder (:mod:`invlatent.models._sort_decoder`) predicts every atom and every bond
*independently* given :math:`z`. Near the codes of training molecules the factors agree, but a
draw from the prior often gets a carbon with five bonds or two fragments, because no factor
knows what the others chose. This decoder factorises :math:`p(G \mid z)` along the **ranks of
the sorted codes** instead. With :math:`\pi_z` the permutation that sorts the first channel
(:func:`~invlatent.models._sort_decoder.sort_nodes`) and the graph written in that order
(node :math:`k` = the node of rank :math:`k`),

.. math::

   p(G \mid z) = \prod_{k=1}^{n} p(v_k \mid z, G_{<k})
   \prod_{j<k} p(b_{kj} \mid z, G_{<k}, v_k, b_{k,<j}),

where :math:`v_k \in \{\text{absent}, C, N, O, F\}` is node :math:`k`'s class,
:math:`G_{<k}` the nodes of lower rank with their bonds, and :math:`b_{k,<j}` the bonds node
:math:`k` already has to lower ranks. The order is not arbitrary: it is the order of the
codes, so it is the same for every node order of the input, and the decoder is
permutation-equivariant by the argument of the sort decoder, :math:`\mathrm{dec}(\sigma \cdot z)
= \sigma \cdot \mathrm{dec}(z)`. (A node order picked in any other way, e.g. breadth-first
from the graph, would not be a function of :math:`z`.)

Each factor sees what a chemist would check (this package's choice of features):

* node :math:`k`: a causal transformer over tokens :math:`t_k = c_k + d_{k-1}`, where
  :math:`c = \mathrm{Transformer}(s(z) + \text{rank})` is the non-causal context of all codes
  (as in the sort-transformer) and :math:`d_j` embeds node :math:`j`'s class and its bond counts
  to lower ranks (:math:`d_{-1}` is learned);
* bond :math:`(k, j)`: the transformer state :math:`h_k`, the context :math:`c_j`, both classes,
  the valence already used by :math:`j` (bonds to ranks :math:`< k`) and by :math:`k` (bonds to
  ranks :math:`< j`), and whether :math:`j` is already connected to :math:`k` by bonds chosen so
  far. A bond class :math:`e \in \{1, 2, 3\}` (single, double, triple) uses :math:`e` valence.

**Training** uses teacher forcing: all factors at once from the true graph put in rank order,
one pass. **Decoding** is greedy: each factor takes its most likely value given the choices
before it (a per-step argmax; there is no valence repair and no masking of choices), in
:math:`n + n(n-1)/2` small batched steps. It returns logits whose argmax is that greedy graph,
so :func:`invlatent.models.graph_vae.decode_graphs` reads it like any decoder's output.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._sort_decoder import sort_nodes, unsort_nodes

__all__ = ["AutoregressiveSortDecoder"]

#: Used valence is embedded up to this value (larger values are clamped).
MAX_VALENCE = 7


def _gather_graph(perm, x, adj, mask):
    """Targets in rank order: ``out[b, k] = in[b, perm[b, k]]`` (no checks)."""
    x = x.gather(1, perm[:, :, None].expand_as(x))
    adj = adj.gather(1, perm[:, :, None, None].expand_as(adj))
    adj = adj.gather(2, perm[:, None, :, None].expand_as(adj))
    return x, adj, mask.gather(1, perm)


def _reach_before(A: torch.Tensor) -> torch.Tensor:
    """``P[b, k, u, v]``: u and v joined by a path in the graph ``A`` (B, n, n) bool restricted to
    nodes of rank ``< k`` (reflexive for every node)."""
    B, n, _ = A.shape
    idx = torch.arange(n, device=A.device)
    low = idx[None, :] < idx[:, None]                                   # (k, u): u < k
    R = A[:, None] & low[None, :, :, None] & low[None, :, None, :]      # (B, k, u, v)
    R = (R | torch.eye(n, dtype=torch.bool, device=A.device)).to(torch.float32)
    for _ in range(max(1, math.ceil(math.log2(max(n - 1, 1))))):        # paths of length <= n - 1
        R = (R @ R).clamp_(max=1.0)
    return R > 0


class AutoregressiveSortDecoder(nn.Module):
    r"""Decoder :math:`z` (B, n, c) -> logits ``exist`` (B, n), ``atom`` (B, n, A), ``bond``
    (B, n, n, 1 + E), autoregressive over the ranks of the sorted codes (module docstring).

    ``forward(z, x, adj, mask)`` gives the teacher-forced logits of the graph ``(x, adj, mask)``
    (one-hot (B, n, A), one-hot (B, n, n, E), bool (B, n)); ``forward(z)`` decodes greedily.

    Parameters
    ----------
    n : int
        Number of node slots (each rank has its own embedding).
    latent_channels : int
        :math:`c`.
    hidden : int
        Feature width :math:`H`.
    depth : int
        Layers of the context transformer and of the causal transformer (each).

    Example
    -------
    >>> import torch
    >>> dec = AutoregressiveSortDecoder(9, 1, 16, 1, n_atom_types=4, n_bond_types=3)
    >>> z = torch.randn(2, 9, 1)
    >>> greedy = dec(z)                                   # decode
    >>> greedy["atom"].shape, greedy["bond"].shape
    (torch.Size([2, 9, 4]), torch.Size([2, 9, 9, 4]))
    >>> x = torch.eye(4)[torch.randint(0, 4, (2, 9))]     # teacher forcing on a graph
    >>> adj, mask = torch.zeros(2, 9, 9, 3), torch.ones(2, 9, dtype=torch.bool)
    >>> dec(z, x, adj, mask)["exist"].shape
    torch.Size([2, 9])
    """

    def __init__(self, n: int, latent_channels: int, hidden: int, depth: int, n_atom_types: int,
                 n_bond_types: int):
        super().__init__()
        self.n, self.c, self.A, self.E = n, latent_channels, n_atom_types, n_bond_types
        H = hidden

        def transformer() -> nn.TransformerEncoder:
            layer = nn.TransformerEncoderLayer(H, nhead=4, dim_feedforward=2 * H, dropout=0.0,
                                               batch_first=True, norm_first=True)
            return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)

        self.inp = nn.Sequential(nn.Linear(latent_channels, H), nn.LeakyReLU(0.2), nn.Linear(H, H))
        self.rank = nn.Parameter(torch.randn(n, H) * 0.1)
        self.context = transformer()
        self.start = nn.Parameter(torch.zeros(H))
        self.node_emb = nn.Embedding(1 + n_atom_types, H)          # class 0 = absent
        self.count_in = nn.Linear(n_bond_types, H, bias=False)
        self.causal = transformer()
        self.norm = nn.LayerNorm(H)
        self.node_out = nn.Sequential(nn.Linear(H, H), nn.LeakyReLU(0.2), nn.Linear(H, 1 + n_atom_types))
        self.pair_h = nn.Linear(H, H)
        self.pair_c = nn.Linear(H, H, bias=False)
        self.cls_k = nn.Embedding(1 + n_atom_types, H)
        self.cls_j = nn.Embedding(1 + n_atom_types, H)
        self.used_k = nn.Embedding(MAX_VALENCE + 1, H)
        self.used_j = nn.Embedding(MAX_VALENCE + 1, H)
        self.same = nn.Embedding(2, H)
        self.pair_out = nn.Sequential(nn.LeakyReLU(0.2), nn.Linear(H, H), nn.LeakyReLU(0.2),
                                      nn.Linear(H, 1 + n_bond_types))
        self.register_buffer("_causal_mask", nn.Transformer.generate_square_subsequent_mask(n),
                             persistent=False)

    # --- pieces shared by teacher forcing and greedy decoding -------------------------------
    def _tokens(self, ctx, cls, counts):
        """Causal-transformer inputs ``c_k + d_{k-1}`` from classes (B, n) and bond counts (B, n, E)."""
        d = self.node_emb(cls) + self.count_in(counts)
        start = self.start.expand(ctx.shape[0], 1, -1)
        return ctx + torch.cat([start, d[:, :-1]], 1)

    def _states(self, tokens):
        m = tokens.shape[1]
        return self.norm(self.causal(tokens, mask=self._causal_mask[:m, :m], is_causal=True))

    def _pair(self, hk, cj, cls_k, cls_j, used_k, used_j, same):
        a = (self.pair_h(hk) + self.pair_c(cj) + self.cls_k(cls_k) + self.cls_j(cls_j)
             + self.used_k(used_k.clamp(max=MAX_VALENCE)) + self.used_j(used_j.clamp(max=MAX_VALENCE))
             + self.same(same.long()))
        return self.pair_out(a)

    def forward(self, z: torch.Tensor, x: torch.Tensor | None = None,
                adj: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        zs, perm = sort_nodes(z)
        ctx = self.context(self.inp(zs) + self.rank)
        if x is None:
            node, pair = self._greedy(ctx)
        else:
            node, pair = self._teacher_forced(ctx, *_gather_graph(perm, x, adj, mask))
        node, pair = unsort_nodes(perm, node, pair)
        return {"exist": node[..., 0], "atom": node[..., 1:], "bond": pair}

    def _teacher_forced(self, ctx, x, adj, mask):
        B, n, _ = ctx.shape
        cls = torch.where(mask, x.argmax(-1) + 1, 0)
        real = mask[:, :, None] & mask[:, None, :]
        bond = torch.where((adj.sum(-1) > 0) & real, adj.argmax(-1) + 1, 0)          # (B, n, n)
        idx = torch.arange(n, device=ctx.device)
        lower = idx[None, :] < idx[:, None]                                          # (k, j): j < k
        counts = (F.one_hot(bond, 1 + self.E)[..., 1:] * lower[None, :, :, None]).sum(2).to(ctx.dtype)
        h = self._states(self._tokens(ctx, cls, counts))
        node = self.node_out(h)
        # used[b, i, m] = valence of node i in bonds to ranks < m
        used = torch.cumsum(bond, 2) - bond
        used_k = used                                  # (k, j): node k's bonds to ranks < j
        used_j = used.transpose(1, 2)                  # (k, j): node j's bonds to ranks < k
        A = bond > 0
        P = _reach_before(A)                           # (B, k, u, v)
        before = (idx[:, None] < idx[None, :]).to(torch.float32)                     # (l, j): l < j
        same = torch.einsum("bkl,bklj,lj->bkj", A.float(), P.float(), before) > 0
        pair = self._pair(h[:, :, None], ctx[:, None], cls[:, :, None].expand(B, n, n),
                          cls[:, None, :].expand(B, n, n), used_k, used_j, same)
        pair = pair * lower[None, :, :, None]
        return node, pair + pair.transpose(1, 2)

    @torch.no_grad()
    def _greedy(self, ctx):
        B, n, H = ctx.shape
        dev = ctx.device
        cls = torch.zeros(B, n, dtype=torch.long, device=dev)
        counts = torch.zeros(B, n, self.E, dtype=ctx.dtype, device=dev)
        bond = torch.zeros(B, n, n, dtype=torch.long, device=dev)
        reach = torch.eye(n, dtype=torch.bool, device=dev).expand(B, n, n).clone()
        node = ctx.new_zeros(B, n, 1 + self.A)
        pair = ctx.new_zeros(B, n, n, 1 + self.E)
        for k in range(n):
            h = self._states(self._tokens(ctx[:, : k + 1], cls[:, : k + 1], counts[:, : k + 1]))[:, k]
            node[:, k] = self.node_out(h)
            exist = node[:, k, 0] > 0
            cls[:, k] = torch.where(exist, node[:, k, 1:].argmax(-1) + 1, 0)
            used_k = torch.zeros(B, dtype=torch.long, device=dev)
            for j in range(k):
                used_j = bond[:, j, :k].sum(-1)
                logit = self._pair(h, ctx[:, j], cls[:, k], cls[:, j], used_k, used_j, reach[:, k, j])
                pair[:, k, j] = pair[:, j, k] = logit
                b = torch.where(exist & (cls[:, j] > 0), logit.argmax(-1), 0)
                bond[:, k, j] = bond[:, j, k] = b
                used_k = used_k + b
                new = (b > 0)[:, None, None]
                join = (reach[:, :, k, None] & reach[:, None, j]) | (reach[:, :, j, None] & reach[:, None, k])
                reach = reach | (join & new)
            counts[:, k] = F.one_hot(bond[:, k, :k], 1 + self.E)[..., 1:].sum(1).to(ctx.dtype)
        return node, pair
