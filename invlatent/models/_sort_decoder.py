r"""Sort-canonicalised graph decoders: decode the sorted node codes, then permute back.

For node codes :math:`z \in \R^{n \times c}` let :math:`\pi_z` be the permutation that sorts
the first channel, :math:`z_{\pi_z(1),0} \le \dots \le z_{\pi_z(n),0}`. Any function
:math:`g` of the *sorted* sequence :math:`s(z) = (z_{\pi_z(1)}, \dots, z_{\pi_z(n)})`
becomes a permutation-equivariant decoder when its outputs are put back in place:

.. math::

   \mathrm{dec}(z)_i = g\big(s(z)\big)_{\pi_z^{-1}(i)},\qquad
   \mathrm{dec}(z)_{ij} = g\big(s(z)\big)_{\pi_z^{-1}(i)\,\pi_z^{-1}(j)}.

Because :math:`s(\sigma\cdot z) = s(z)`, and the sorting permutation of :math:`\sigma\cdot z`
is that of :math:`z` with the slots relabelled by :math:`\sigma`, the same per-rank outputs land
on the relabelled slots: :math:`\mathrm{dec}(\sigma\cdot z) = \sigma\cdot\mathrm{dec}(z)` for every
:math:`\sigma \in S_n` whenever the first channel has no ties (a set of measure zero; tied
codes, such as the shared code of padding slots, are ordered by slot index).
:math:`g` itself needs no symmetry at all: it sees each rank at a fixed position, which is
what makes it easy to learn. Sorting is the isometric cross-section of :math:`\R^n / S_n`
(chapter 2), so for :math:`c = 1` the decoder is a function on the quotient space itself.

Two choices of :math:`g` (this package's; the paper's decoder is not known in detail):

* ``"sort-mlp"``: an MLP of the flattened sorted codes gives one feature vector per rank;
* ``"sort-transformer"``: a transformer over the sorted codes with learned rank embeddings.

Both share the heads: node logits (existence, atom type) from each rank's features, and
symmetric pair logits from :math:`(h_k \odot h_l,\ h_k + h_l)`.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SortDecoder", "sort_nodes", "unsort_nodes"]


def sort_nodes(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort node codes (B, n, c) by their first channel: ``(sorted (B, n, c), perm (B, n))``
    with ``sorted[b, k] = z[b, perm[b, k]]`` (stable: ties keep slot order)."""
    perm = torch.argsort(z[..., 0], dim=1, stable=True)
    return z.gather(1, perm[..., None].expand_as(z)), perm


def unsort_nodes(perm: torch.Tensor, node: torch.Tensor, pair: torch.Tensor | None = None):
    """Put per-rank outputs back in slot order: ``out[b, perm[b, k]] = node[b, k]`` (and the
    same on both axes of ``pair`` (B, n, n, C)). Returns ``(node, pair)``."""
    inv = torch.argsort(perm, dim=1)
    node = node.gather(1, inv[..., None].expand_as(node))
    if pair is not None:
        pair = pair.gather(1, inv[:, :, None, None].expand_as(pair))
        pair = pair.gather(2, inv[:, None, :, None].expand_as(pair))
    return node, pair


class SortDecoder(nn.Module):
    r"""Decoder :math:`z` (B, n, c) -> logits ``exist`` (B, n), ``atom`` (B, n, A), ``bond``
    (B, n, n, 1 + E), equivariant by sorting (module docstring).

    Parameters
    ----------
    n : int
        Number of node slots (fixed: each rank has its own parameters).
    latent_channels : int
        :math:`c`.
    hidden : int
        Per-rank feature width :math:`H`.
    depth : int
        Hidden layers of the MLP trunk, or transformer layers.
    mixer : {"mlp", "transformer"}
        The function :math:`g` of the sorted sequence.
    width : int
        Width of the MLP trunk's hidden layers (``mixer="mlp"``).
    """

    def __init__(self, n: int, latent_channels: int, hidden: int, depth: int, mixer: str,
                 n_atom_types: int, n_bond_types: int, width: int = 512):
        super().__init__()
        self.n, self.c, self.mixer = n, latent_channels, mixer
        H = hidden
        if mixer == "mlp":
            layers: list[nn.Module] = []
            d = n * latent_channels
            for _ in range(depth):
                layers += [nn.Linear(d, width), nn.LayerNorm(width), nn.LeakyReLU(0.2)]
                d = width
            layers.append(nn.Linear(d, n * H))
            self.trunk = nn.Sequential(*layers)
        elif mixer == "transformer":
            self.inp = nn.Sequential(nn.Linear(latent_channels, H), nn.LeakyReLU(0.2), nn.Linear(H, H))
            self.rank = nn.Parameter(torch.randn(n, H) * 0.1)
            layer = nn.TransformerEncoderLayer(H, nhead=4, dim_feedforward=2 * H, dropout=0.0,
                                               batch_first=True, norm_first=True)
            self.trunk = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        else:
            raise ValueError(f"mixer must be 'mlp' or 'transformer', got {mixer!r}")
        self.norm = nn.LayerNorm(H)
        self.node_out = nn.Sequential(nn.Linear(H, H), nn.LeakyReLU(0.2), nn.Linear(H, 1 + n_atom_types))
        self.pair_out = nn.Sequential(nn.Linear(2 * H, H), nn.LeakyReLU(0.2), nn.Linear(H, 1 + n_bond_types))

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        B, n, c = z.shape
        zs, perm = sort_nodes(z)
        if self.mixer == "mlp":
            h = self.trunk(zs.reshape(B, n * c)).reshape(B, n, -1)
        else:
            h = self.trunk(self.inp(zs) + self.rank)
        h = self.norm(h)
        node = self.node_out(h)
        pair = self.pair_out(torch.cat([h[:, :, None] * h[:, None, :], h[:, :, None] + h[:, None, :]], -1))
        node, pair = unsort_nodes(perm, node, pair)
        return {"exist": node[..., 0], "atom": node[..., 1:], "bond": pair}
