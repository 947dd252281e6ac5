r"""A permutation-equivariant graph VAE with one latent vector per node.

Encoder, decoder and loss follow the lineage of the authors' later public code (the PEGVAE of
their graph-counterfactual work, Hansen et al., NLDL 2025,
``abildtrup/latent-graph-counterfactuals``), not the ICML 2024 paper, whose architecture and
sizes are not known here (the sizes are this package's choice): Maron et al. (2019)
linear equivariant layers (:mod:`invlatent.models.maron`) with 1×1 convolutions,
instance norm and LeakyReLU.

* **Encoder** :math:`q(z \mid G)`: atom types and the node mask (1→2) plus one-hot bonds →
  ``depth`` edge blocks (2→2) → 2→1 → node blocks (1→1) → per-node mean and log-variance,
  :math:`z \in \R^{n \times c}` (``latent_channels = c``, default 1). All :math:`n = 9` slots
  get a code; means run over real nodes only, so padding never leaks into real nodes.
* **Decoder** :math:`p(G \mid z)`, by default (``decoder="sort-autoregressive"``) one node
  and its bonds at a time in the order of the sorted codes
  (:class:`~invlatent.models._autoregressive_decoder.AutoregressiveSortDecoder`); sorting
  makes it equivariant. The public code's lineage, ``decoder="maron"``: node blocks (1→1) on all
  slots give node features
  :math:`h_i`; the pair features start from the **outer product of node codes**
  :math:`u_i \odot u_j` (:math:`u = W h`), a 1→2 lift of :math:`h`, and a small MLP of the
  raw code pair :math:`(z_i, z_j)` (which lets later layers compare codes, e.g. rank them);
  ``decoder_depth`` 2→2 blocks refine them; a 2→1 pooling of the result is added to the
  per-node existence and atom-type logits, and the symmetrised pair features give bond
  logits over {no bond, single, double, triple}.
* **ELBO** with KL warm-up :math:`\beta(t) = \beta_\max \min(1, t / T_\text{warm})`:

.. math::

   \mathcal L = {} & \underbrace{\textstyle\sum_i \mathrm{BCE}(e_i, m_i)
   + \sum_{i: m_i} \mathrm{CE}(a_i) + \sum_{i<j: m_i m_j} \mathrm{CE}(b_{ij})}_{-\log p(G\mid z)} \\
   & + \beta(t)\, \mathrm{KL}\big(q(z\mid G)\,\|\,\mathcal N(0, I)\big).

Both maps are equivariant: :math:`\mathrm{enc}(\sigma \cdot G) = \sigma \cdot \mathrm{enc}(G)`
and :math:`\mathrm{dec}(\sigma \cdot z) = \sigma \cdot \mathrm{dec}(z)` for every node
permutation :math:`\sigma \in S_9` (tested to 1e-5 in float32).

Example
-------
>>> import torch
>>> from invlatent.data.qm9 import load_qm9
>>> _ = torch.manual_seed(0)
>>> batch = load_qm9(limit=16).dense()
>>> vae = GraphVAE(hidden=16, depth=1)
>>> mu, logvar = vae.encode(batch["x"], batch["adj"], batch["mask"])
>>> mu.shape                                   # one latent scalar per node slot
torch.Size([16, 9, 1])
>>> out = vae.loss(batch["x"], batch["adj"], batch["mask"], beta=0.1)
>>> sorted(out)
['atom', 'bond', 'exist', 'kl', 'loss']
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .._graphs import union_find_root
from .._validation import check_positive_int, check_tensor, describe
from ._prior_matching import sorted_mmd
from ._autoregressive_decoder import AutoregressiveSortDecoder
from ._sort_decoder import SortDecoder
from .maron import EdgeToEdge, EdgeToNode, MaskedInstanceNorm, NodeToEdge, NodeToNode

__all__ = ["GraphVAE", "train_graph_vae", "decode_graphs", "graph_accuracy", "permute_graphs"]

N_ATOM = 4
N_BOND = 3
#: Decoder choices of :class:`GraphVAE`.
DECODERS = ("maron", "sort-mlp", "sort-transformer", "sort-autoregressive")


class _NodeBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.eq = NodeToNode(cin, cout)
        self.norm = MaskedInstanceNorm(cout)
        self.conv = nn.Linear(cout, cout)

    def forward(self, x, mask):
        h = F.leaky_relu(self.norm(self.eq(x, mask), mask), 0.2)
        return F.leaky_relu(self.conv(h), 0.2)


class _EdgeBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.eq = EdgeToEdge(cin, cout)
        self.norm = MaskedInstanceNorm(cout, edges=True)
        self.conv = nn.Linear(cout, cout)

    def forward(self, a, mask):
        h = F.leaky_relu(self.norm(self.eq(a, mask), mask), 0.2)
        return F.leaky_relu(self.conv(h), 0.2)


class GraphVAE(nn.Module):
    r"""Permutation-equivariant graph VAE on padded graphs (B, n) with a node latent (B, n, c).

    Parameters
    ----------
    latent_channels : int
        :math:`c`, latent channels per node (1 = one scalar per node, the choice of the
        authors' later public code, Hansen et al., NLDL 2025; the ICML paper's is not known).
    hidden : int
        Width of every hidden layer.
    depth : int
        Number of 2→2 blocks in the encoder (and 1→1 blocks in the decoder, plus one).
    decoder_depth : int
        Number of 2→2 blocks that refine the decoder's pair features.
    n_atom_types, n_bond_types : int
        Node and (non-null) edge classes; QM9: 4 (C, N, O, F) and 3 (single, double, triple).
    decoder : {"sort-autoregressive", "maron", "sort-mlp", "sort-transformer"}
        ``"sort-autoregressive"`` (the default since it won the book's decoder comparison):
        see below. ``"maron"``: the Maron-layer decoder described in the module docstring (the paper's
        lineage). ``"sort-mlp"``, ``"sort-transformer"``: a sort-canonicalised decoder
        (:class:`invlatent.models._sort_decoder.SortDecoder`): decode the node codes sorted by
        their first channel with an unconstrained network, then permute the outputs back;
        equivariant because sorting is. Its trunk has ``decoder_depth`` layers.
        ``"sort-autoregressive"``: one node, then its bonds, at a time in the order of the
        sorted codes (:class:`invlatent.models._autoregressive_decoder.AutoregressiveSortDecoder`;
        teacher-forced in :meth:`loss`, greedy in :meth:`decode`, :meth:`reconstruct` and
        :meth:`sample`); ``decoder_depth`` layers in each of its two transformers.
    n_nodes : int
        Number of node slots; the sort decoders have parameters per rank, so their input
        must have exactly this many slots (QM9: 9).
    decoder_width : int
        Hidden width of the ``"sort-mlp"`` trunk.
    """

    def __init__(self, latent_channels: int = 1, hidden: int = 64, depth: int = 2, decoder_depth: int = 2,
                 n_atom_types: int = N_ATOM, n_bond_types: int = N_BOND, decoder: str = "sort-autoregressive",
                 n_nodes: int = 9, decoder_width: int = 512):
        super().__init__()
        for name, v in dict(latent_channels=latent_channels, hidden=hidden, depth=depth,
                            decoder_depth=decoder_depth, n_nodes=n_nodes, decoder_width=decoder_width).items():
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an int, got {type(v).__name__}")
            if v < 1:
                raise ValueError(f"{name} must be a positive int, got {v}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {describe(decoder)}")
        self.config = dict(latent_channels=latent_channels, hidden=hidden, depth=depth,
                           decoder_depth=decoder_depth, n_atom_types=n_atom_types, n_bond_types=n_bond_types,
                           decoder=decoder)
        if decoder != "maron":
            self.config.update(n_nodes=n_nodes, decoder_width=decoder_width)
        H, c = hidden, latent_channels
        self.n_atom_types, self.n_bond_types = n_atom_types, n_bond_types
        # encoder
        self.lift = NodeToEdge(n_atom_types + 1, H)
        self.bond_in = nn.Linear(n_bond_types, H, bias=False)
        self.enc_edges = nn.ModuleList([_EdgeBlock(H, H) for _ in range(depth)])
        self.to_nodes = EdgeToNode(H, H)
        self.enc_nodes = _NodeBlock(H, H)
        self.head = NodeToNode(H, 2 * c)
        # decoder
        self.sort_decoder = None
        if decoder == "sort-autoregressive":
            self.sort_decoder = AutoregressiveSortDecoder(n_nodes, c, H, decoder_depth, n_atom_types,
                                                          n_bond_types)
            return
        if decoder != "maron":
            self.sort_decoder = SortDecoder(n_nodes, c, H, decoder_depth, decoder[len("sort-"):],
                                            n_atom_types, n_bond_types, width=decoder_width)
            return
        self.dec_nodes = nn.ModuleList([_NodeBlock(c if k == 0 else H, H) for k in range(depth + 1)])
        self.node_out = nn.Linear(H, 1 + n_atom_types)
        self.code = nn.Linear(H, H)
        self.dec_lift = NodeToEdge(H, H)
        self.pair_mlp = nn.Sequential(nn.Linear(2 * c, H), nn.LeakyReLU(0.2), nn.Linear(H, H))
        self.dec_edges = nn.ModuleList([_EdgeBlock(H, H) for _ in range(decoder_depth)])
        self.edge_node = EdgeToNode(H, 1 + n_atom_types)
        self.edge_out = nn.Linear(H, 1 + n_bond_types)

    @classmethod
    def from_config(cls, meta: Mapping[str, object]) -> "GraphVAE":
        """The model described by ``meta``: a :attr:`config`, or checkpoint metadata (strings).

        Keys that are not configuration (epochs, scores, ...) are ignored. Metadata written
        before the ``decoder`` key existed describes the Maron-layer decoder, the default
        of those versions.

        >>> vae = GraphVAE(hidden=8, depth=1)
        >>> GraphVAE.from_config(vae.config).config == vae.config
        True
        >>> GraphVAE.from_config({"hidden": "8", "depth": "1"}).config["decoder"]
        'maron'
        """
        if not isinstance(meta, Mapping):
            raise TypeError(f"meta must be a mapping, got {type(meta).__name__}")
        ints = ("latent_channels", "hidden", "depth", "decoder_depth", "n_atom_types", "n_bond_types",
                "n_nodes", "decoder_width")
        config = {}
        for k in ints:
            if k in meta:
                try:
                    config[k] = int(meta[k])
                except (TypeError, ValueError):
                    raise ValueError(f"meta[{k!r}] must be an integer, got {describe(meta[k])}") from None
        return cls(**config, decoder=str(meta.get("decoder", "maron")))

    @property
    def latent_channels(self) -> int:
        return self.config["latent_channels"]

    def _check(self, x, adj, mask):
        x = check_tensor(x, "x", ndim=3, shape=(None, None, self.n_atom_types), expected="(B, n, n_atom_types)")
        B, n = x.shape[:2]
        adj = check_tensor(adj, "adj", ndim=4, shape=(B, n, n, self.n_bond_types),
                           expected="(B, n, n, n_bond_types)")
        _check = mask is None or (isinstance(mask, torch.Tensor) and mask.dtype == torch.bool)
        if not _check:
            raise TypeError(f"mask must be a bool torch.Tensor (B, n), got {getattr(mask, 'dtype', type(mask))}")
        if mask is not None and tuple(mask.shape) != (B, n):
            raise ValueError(f"mask must have shape (B, n) = ({B}, {n}), got {tuple(mask.shape)}")
        return x, adj, mask

    def encode(self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor):
        """Posterior parameters ``(mu, logvar)``, each (B, n, c), from one-hot ``x`` (B, n, 4),
        one-hot ``adj`` (B, n, n, 3) and the bool node ``mask`` (B, n).

        Hidden features are kept at zero in padding slots (and in pairs touching one) and
        padding is excluded from every mean, so real nodes' codes never depend on it. A padding
        slot's code comes from the last layer's pooled term and bias only: one code per
        molecule, a function of the real graph, bounded (normalisation statistics of real nodes
        are never applied to padding values, which could blow up for tiny molecules).
        """
        x, adj, mask = self._check(x, adj, mask)
        m = mask.to(x.dtype)
        pm = (m[:, :, None] * m[:, None, :])[..., None]
        xin = torch.cat([x * m[..., None], m[..., None]], -1)
        nm = m[..., None]
        a = (self.lift(xin, mask) + self.bond_in(adj * pm)) * pm
        for blk in self.enc_edges:
            a = blk(a, mask) * pm
        h = self.enc_nodes(self.to_nodes(a, mask), mask) * nm
        mu, logvar = self.head(h, mask).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 10.0)

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits from node codes ``z`` (B, n, c): ``exist`` (B, n), ``atom`` (B, n, 4),
        ``bond`` (B, n, n, 4) (class 0 = no bond; symmetric). The autoregressive decoder
        decodes greedily here (no gradients): each factor's logits given the greedy choices
        before it, so their argmax is the greedy graph."""
        if self.sort_decoder is not None:
            n = self.sort_decoder.n
            check_tensor(z, "z", ndim=3, shape=(None, n, self.latent_channels), expected=f"(B, {n}, c)")
        else:
            check_tensor(z, "z", ndim=3, shape=(None, None, self.latent_channels), expected="(B, n, c)")
        return self._decode(z)

    def _encode_for_decoding(self, x, adj, mask):
        """:meth:`encode`, and a check that its codes fit the decoder (then :meth:`_decode` needs none)."""
        mu, logvar = self.encode(x, adj, mask)
        if self.sort_decoder is not None and mu.shape[1] != self.sort_decoder.n:
            n = self.sort_decoder.n
            raise ValueError(f"x must have {n} node slots, shape (B, {n}, n_atom_types), for the sort decoder "
                             f"(its parameters are per rank); got {tuple(x.shape)}")
        return mu, logvar

    def _decode(self, z: torch.Tensor, targets=None) -> dict[str, torch.Tensor]:
        """:meth:`decode` without input checks (for codes the model made itself); the
        autoregressive decoder is teacher-forced on ``targets = (x, adj, mask)`` when given."""
        if isinstance(self.sort_decoder, AutoregressiveSortDecoder) and targets is not None:
            return self.sort_decoder(z, *targets)
        if self.sort_decoder is not None:
            return self.sort_decoder(z)
        h = z
        for blk in self.dec_nodes:
            h = blk(h, None)
        u = self.code(h)
        n = z.shape[1]
        zz = torch.cat([z[:, :, None].expand(-1, -1, n, -1), z[:, None].expand(-1, n, -1, -1)], -1)
        e = u[:, :, None] * u[:, None, :] + self.dec_lift(h, None) + self.pair_mlp(zz)
        for blk in self.dec_edges:
            e = blk(e, None)
        node = self.node_out(h) + self.edge_node(e, None)
        e = self.edge_out(e)
        e = 0.5 * (e + e.transpose(1, 2))
        return {"exist": node[..., 0], "atom": node[..., 1:], "bond": e}

    def forward(self, x, adj, mask, *, sample: bool = True, generator: torch.Generator | None = None):
        r"""Encode, sample :math:`z = \mu + \sigma\epsilon` (or take ``mu``), decode; returns
        ``(logits, mu, logvar, z)``."""
        mu, logvar = self._encode_for_decoding(x, adj, mask)
        if sample:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * eps
        else:
            z = mu
        return self._decode(z, (x, adj, mask)), mu, logvar, z

    def loss(self, x, adj, mask, *, beta: float = 1.0, sample: bool = True,
             generator: torch.Generator | None = None, mmd: float = 0.0) -> dict[str, torch.Tensor]:
        """Negative ELBO terms, each averaged over the batch (sums over nodes / pairs).

        Returns ``{"loss", "exist", "atom", "bond", "kl"}``; ``loss = exist + atom + bond +
        beta * kl``. Targets at padding slots never enter (atom and bond terms are masked).
        With ``mmd > 0`` the loss also holds ``mmd * MMD²`` between the batch's codes and as
        many prior draws, compared as orbits (:func:`invlatent.models._prior_matching.sorted_mmd`),
        and the terms gain ``"mmd"``; the prior draws use ``generator`` after the posterior noise.
        """
        logits, mu, logvar, z = self.forward(x, adj, mask, sample=sample, generator=generator)
        terms = elbo_terms(logits, mu, logvar, x, adj, mask, beta)
        if mmd > 0:
            prior = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
            terms["mmd"] = sorted_mmd(z, prior)
            terms["loss"] = terms["loss"] + mmd * terms["mmd"]
        return terms

    @torch.no_grad()
    def reconstruct(self, x, adj, mask, *, connected: bool = False):
        """Decode the posterior means: ``(atom_type, bond_type, mask)`` in the input's node order
        (``connected``: see :func:`decode_graphs`)."""
        mu, _ = self._encode_for_decoding(x, adj, mask)
        return decode_graphs(self._decode(mu), connected=connected)

    @torch.no_grad()
    def sample(self, num: int, n: int = 9, *, generator: torch.Generator | None = None,
               connected: bool = False):
        """Decode ``num`` draws :math:`z \\sim \\mathcal N(0, I)` of shape (num, n, c)
        (``connected``: see :func:`decode_graphs`). The draws are made on ``generator``'s device
        (a CPU generator, or none, gives the same molecules whatever the model's device) and
        the graphs are returned on the model's device."""
        p = next(self.parameters())
        on = generator.device if generator is not None else torch.device("cpu")
        z = torch.randn((num, n, self.latent_channels), generator=generator, dtype=p.dtype, device=on).to(p.device)
        return decode_graphs(self.decode(z), connected=connected)


def permute_graphs(perm: torch.Tensor, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor):
    """Re-order the node slots of padded graphs: ``out[b, i] = in[b, perm[b, i]]``.

    ``perm`` (B, n) long holds one permutation per graph (e.g. from
    ``invlatent.Permutation(n).sample(B)``); ``x`` (B, n, C), ``adj`` (B, n, n, C') and
    ``mask`` (B, n) are permuted consistently (padding slots move too: the model is
    equivariant under all of :math:`S_n`). Returns ``(x, adj, mask)``.

    Example
    -------
    >>> x = torch.eye(3)[None]; adj = torch.zeros(1, 3, 3, 1); adj[0, 0, 1] = 1
    >>> mask = torch.tensor([[True, True, False]])
    >>> px, padj, pm = permute_graphs(torch.tensor([[2, 0, 1]]), x, adj, mask)
    >>> pm.tolist(), padj[0, 1, 2, 0].item()
    ([[False, True, True]], 1.0)
    """
    for name, t in (("perm", perm), ("x", x), ("adj", adj), ("mask", mask)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {describe(t)}")
    if perm.dtype != torch.long or mask.dtype != torch.bool:
        raise TypeError(f"perm must be a long tensor and mask a bool tensor, got {perm.dtype} and {mask.dtype}")
    if perm.shape != mask.shape or x.shape[:2] != mask.shape or adj.shape[:3] != (*mask.shape, mask.shape[1]):
        raise ValueError(f"expected perm (B, n), x (B, n, C), adj (B, n, n, C'), mask (B, n); got "
                         f"{tuple(perm.shape)}, {tuple(x.shape)}, {tuple(adj.shape)}, {tuple(mask.shape)}")
    B, n = perm.shape
    px = x.gather(1, perm[:, :, None].expand_as(x))
    pa = adj.gather(1, perm[:, :, None, None].expand_as(adj))
    pa = pa.gather(2, perm[:, None, :, None].expand_as(adj))
    return px, pa, mask.gather(1, perm)


def elbo_terms(logits, mu, logvar, x, adj, mask, beta):
    """The negative ELBO of :class:`GraphVAE` from decoder ``logits``, posterior ``(mu, logvar)``
    and one-hot targets; see the module docstring for the formula (batch means of sums)."""
    m = mask.to(mu.dtype)
    B, n = mask.shape
    exist = F.binary_cross_entropy_with_logits(logits["exist"], m, reduction="sum") / B
    atom_t = x.argmax(-1)
    atom = (F.cross_entropy(logits["atom"].transpose(1, 2), atom_t, reduction="none") * m).sum() / B
    bond_t = torch.where(adj.sum(-1) > 0, adj.argmax(-1) + 1, torch.zeros_like(atom_t[:, :, None]))
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=mask.device), 1)
    pair = (m[:, :, None] * m[:, None, :]) * upper
    bond = (F.cross_entropy(logits["bond"].permute(0, 3, 1, 2), bond_t, reduction="none") * pair).sum() / B
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum() / B
    return {"loss": exist + atom + bond + beta * kl, "exist": exist, "atom": atom, "bond": bond, "kl": kl}


def decode_graphs(logits: Mapping[str, torch.Tensor], *, connected: bool = False):
    r"""Most likely graph from decoder logits: ``(atom_type (B, n), bond_type (B, n, n), mask (B, n))``.

    A node exists where its existence logit is positive; bonds are kept only between
    existing nodes; padding slots get atom type 0 and no bonds.

    With ``connected=False`` (the default, plain argmax) every pair takes its most likely
    class independently, so the graph may fall apart into fragments. With ``connected=True``
    the bonds are the **most likely connected graph** on the existing nodes under the same
    factorised distribution, :math:`\max_{G\ \text{connected}} \sum_{i<j}\log p_{ij}(G_{ij})`
    (nodes and atom types stay the argmax). Write :math:`g_{ij} = \max_{k\ge1}\log p_{ij}(k)
    - \log p_{ij}(0)` for the gain of bonding a pair with its best bond order. The optimum
    keeps every pair with :math:`g_{ij} > 0` (the argmax bonds: adding a bond never
    disconnects) and joins the resulting fragments by a maximum spanning tree of the
    remaining gains, which Kruskal's rule over gains in decreasing order finds. It is a
    decoding rule, not valence repair: valences may still be exceeded (compare
    :func:`invlatent.molecules.valence_decode`). A Python loop over graphs.

    Example
    -------
    >>> bond = torch.zeros(1, 3, 3, 4); bond[..., 0] = 2.0   # "no bond" is likeliest ...
    >>> bond[0, 0, 1, 1] = bond[0, 1, 0, 1] = 3.0             # ... except for pair (0, 1)
    >>> bond[0, 1, 2, 2] = bond[0, 2, 1, 2] = 1.5             # (1, 2): a double bond is next best
    >>> logits = {"exist": torch.ones(1, 3), "atom": torch.zeros(1, 3, 4), "bond": bond}
    >>> decode_graphs(logits)[1][0].tolist()
    [[0, 1, 0], [1, 0, 0], [0, 0, 0]]
    >>> decode_graphs(logits, connected=True)[1][0].tolist()
    [[0, 1, 0], [1, 0, 2], [0, 2, 0]]
    """
    if not isinstance(connected, bool):
        raise TypeError(f"connected must be a bool, got {describe(connected)}")
    mask = logits["exist"] > 0
    atom = logits["atom"].argmax(-1) * mask
    if connected:
        return atom, _connected_bonds(logits["bond"], mask), mask
    bond = logits["bond"].argmax(-1)
    bond = bond * (mask[:, :, None] & mask[:, None, :])
    bond = bond * (1 - torch.eye(bond.shape[-1], dtype=bond.dtype, device=bond.device))
    return atom, bond, mask


def _connected_bonds(bond_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Bond classes (B, n, n) of the most likely connected graph on each ``mask``; see
    :func:`decode_graphs`. Ties are broken by pair order (stable sort)."""
    import numpy as np

    logp = torch.log_softmax(bond_logits.detach().double().cpu(), -1)
    best, order = logp[..., 1:].max(-1)
    gain = (best - logp[..., 0]).numpy()
    order = (order + 1).numpy()
    real = mask.detach().cpu().numpy()
    B, n = real.shape
    iu, ju = np.triu_indices(n, 1)
    out = np.zeros((B, n, n), dtype=np.int64)
    for b in range(B):
        keep = real[b, iu] & real[b, ju]
        I, J = iu[keep], ju[keep]
        g = gain[b, I, J]
        parent = list(range(n))

        for k in np.argsort(-g, kind="stable"):
            i, j = I[k], J[k]
            ri, rj = union_find_root(parent, i), union_find_root(parent, j)
            if ri != rj:
                parent[ri] = rj
            elif g[k] <= 0:
                continue
            out[b, i, j] = out[b, j, i] = order[b, i, j]
    return torch.from_numpy(out).to(mask.device)


def graph_accuracy(pred, target) -> dict[str, float]:
    """Slot-wise reconstruction scores of ``pred`` vs ``target``, each ``(atom_type, bond_type, mask)``.

    ``node_mask`` — fraction of slots whose existence is right; ``atom`` — atom-type accuracy
    over real target nodes; ``bond`` — accuracy of the bond class (incl. no bond) over pairs
    :math:`i<j` of real target nodes; ``exact`` — fraction of graphs reproduced exactly.
    """
    pa, pb, pm = pred
    ta, tb, tm = target
    n = tm.shape[1]
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=tm.device), 1)
    pair = tm[:, :, None] & tm[:, None, :] & upper
    atom_ok = (pa == ta) | ~tm
    bond_ok = (pb == tb) | ~pair
    exact = (pm == tm).all(1) & atom_ok.all(1) & ((pb == tb) | ~upper).flatten(1).all(1)
    return {
        "node_mask": (pm == tm).float().mean().item(),
        "atom": ((pa == ta) & tm).sum().item() / max(tm.sum().item(), 1),
        "bond": ((pb == tb) & pair).sum().item() / max(pair.sum().item(), 1),
        "exact": exact.float().mean().item(),
    }


def train_graph_vae(
    model: GraphVAE,
    data: Mapping[str, torch.Tensor],
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    beta: float = 0.1,
    warmup_epochs: float = 2.0,
    schedule: str = "constant",
    mmd: float = 0.0,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    time_limit: float | None = None,
    device: torch.device | str | None = None,
    eval_fn: Callable[[GraphVAE], Mapping[str, float]] | None = None,
    eval_every: int = 0,
    extra_metadata: Mapping[str, object] | None = None,
) -> dict[str, object]:
    r"""Train ``model`` on dense data ``{"x", "adj", "mask"}`` with Adam; seeded and resumable.

    Runs the package's one training loop, :func:`invlatent.models._training.fit`: one progress
    bar over epochs (:func:`invlatent.utils.progress`, quiet under CI), gradient norm clipped to
    10, loss terms accumulated on the device and read once per epoch (no host sync per step).
    Pair it with :func:`invlatent.io.train_or_load` to train once and load afterwards.

    Parameters
    ----------
    epochs, batch_size, lr : training schedule (Adam).
    beta : float
        Final KL weight :math:`\beta_\max`; the weight rises linearly from 0 during the first
        ``warmup_epochs`` epochs (KL warm-up).
    schedule : {"constant", "cosine"}
        Learning rate: constant, or cosine decay per step from ``lr`` to ``lr / 100`` at the
        end of ``epochs`` (computed from the step number, so a resumed run is unchanged).
    mmd : float
        Weight of the orbit MMD between the codes and the prior (see :meth:`GraphVAE.loss`);
        0 (default) leaves the plain ELBO and its random stream unchanged.
    seed : int
        Seeds the shuffling and the reparameterisation noise (same seed, same run on CPU): epoch
        :math:`e` draws both from one generator seeded with ``seed * 100003 + e``, so a resumed
        run repeats an uninterrupted one. PyTorch's global generators are left alone.
    checkpoint : path, optional
        If given, the model and optimizer are saved there (safetensors) after every epoch,
        and with ``resume=True`` a run continues from the epoch stored in it.
    time_limit : float, optional
        Stop after the first epoch that ends later than this many seconds (with a warning
        that says how many epochs ran).
    eval_fn, eval_every : optional
        Every ``eval_every`` epochs (and after the last), ``eval_fn(model)`` returns held-out
        scores; they are kept, with the epoch and molecules seen, in the ``evals`` list of the
        result (and of the checkpoint's metadata, as JSON).
    extra_metadata : mapping, optional
        Stored in every checkpoint (e.g. hardware, command line).

    Returns
    -------
    dict
        Metadata: ``epochs`` done, final ``loss`` terms (``final_<term>``), ``seconds`` (of this
        call) and ``total_seconds`` (over resumed calls), ``history`` (per-epoch loss),
        ``evals`` and the model's config.
    """
    import json

    from ._training import fit

    if not isinstance(model, GraphVAE):
        raise TypeError(f"model must be a GraphVAE, got {describe(model)}")
    if not isinstance(data, Mapping) or not all(isinstance(data.get(k), torch.Tensor) for k in ("x", "adj", "mask")):
        raise TypeError(f"data must be a mapping with tensors 'x', 'adj', 'mask', got {describe(data)}")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {describe(schedule)}")
    check_positive_int(batch_size, "batch_size")
    if isinstance(mmd, bool) or not isinstance(mmd, (int, float)) or not math.isfinite(mmd) or mmd < 0:
        raise ValueError(f"mmd must be a finite number >= 0, got {describe(mmd)}")
    x, adj, mask = data["x"], data["adj"], data["mask"]
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    M = x.shape[0]
    steps_per_epoch = math.ceil(M / batch_size)
    warm_steps = max(1, int(warmup_epochs * steps_per_epoch))
    evals: list[dict] = []

    def batches(epoch: int, gen: torch.Generator):
        order = torch.randperm(M, generator=gen)
        noise = gen if device.type == "cpu" else None  # the reparameterisation noise follows the shuffle
        chunks = [order[k * batch_size : (k + 1) * batch_size] for k in range(steps_per_epoch)]
        return [((idx, noise), len(idx)) for idx in chunks]

    def step(batch, k: int):
        idx, noise = batch
        return model.loss(x[idx].to(device), adj[idx].to(device), mask[idx].to(device),
                          beta=beta * min(1.0, k / warm_steps), generator=noise, mmd=mmd)

    def on_resume(meta: dict[str, str]) -> None:
        evals[:] = json.loads(meta.get("evals", "[]"))

    def on_epoch_end(done: int, terms: dict[str, float], clock) -> dict[str, str]:
        if eval_fn is not None and eval_every > 0 and (done % eval_every == 0 or done == epochs):
            model.eval()
            scores = {k: round(float(v), 5) for k, v in eval_fn(model).items()}
            evals.append({"epoch": done, "molecules_seen": done * M, "seconds": round(clock(), 1), **scores})
        return {"evals": json.dumps(evals)}

    out = fit(model, batches, step, epochs=epochs, lr=lr, schedule=schedule, seed=seed,
              epoch_seed=lambda epoch: seed * 100_003 + epoch, manual_seed=False, clip_grad_norm=10.0,
              checkpoint=checkpoint, resume=resume, time_limit=time_limit, desc="GraphVAE", show=("loss", "kl"),
              metadata={**(extra_metadata or {}), **model.config}, on_resume=on_resume, on_epoch_end=on_epoch_end)
    return {"epochs": out["epochs"], "seconds": out["seconds"], "total_seconds": out["total_seconds"],
            "history": out["history"], "evals": json.dumps(evals),
            **{k: v for k, v in out.items() if k.startswith("final_")}, **model.config}
