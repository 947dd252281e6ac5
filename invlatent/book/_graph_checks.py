r"""Checks on padded molecular graphs: symmetry, connectivity, isomorphism hashes.

Graphs are padded dense tensors as :func:`invlatent.models.graph_vae.decode_graphs` returns
them: ``atom`` (B, n) long, ``bond`` (B, n, n) long (0 = no bond), ``mask`` (B, n) bool.

* :func:`automorphism_twins` -- which graphs have a non-trivial automorphism, and whether
  every pair of atoms an automorphism exchanges are *twins* (the same bonds to every other
  atom). A decoder that is equivariant at every code must return a graph fixed by the
  transposition of two atoms with equal codes; the input is such a graph exactly when the
  two are twins, so the share of all-twin graphs bounds its exact reconstruction.
* :func:`disconnected` -- graphs with two or more fragments (transitive closure of the bonds
  by repeated squaring of the reachability matrix; batched).
* :func:`wl_hashes` -- Weisfeiler-Lehman hashes (networkx), equal for isomorphic graphs.
"""

from __future__ import annotations

import numpy as np
import torch

from .._extras import needs

__all__ = ["automorphism_twins", "disconnected", "wl_hashes"]


def _check(atom, bond, mask):
    if not all(isinstance(t, torch.Tensor) for t in (atom, bond, mask)):
        raise TypeError("atom, bond and mask must be tensors")
    if atom.dim() != 2 or mask.shape != atom.shape or bond.shape != atom.shape + atom.shape[-1:]:
        raise ValueError(f"expected atom (B, n), bond (B, n, n), mask (B, n); got {tuple(atom.shape)}, "
                         f"{tuple(bond.shape)}, {tuple(mask.shape)}")


def _nx_graph(atom, bond, idx):
    import networkx as nx

    G = nx.Graph()
    G.add_nodes_from((i, {"t": str(int(atom[i]))}) for i in idx)
    G.add_edges_from((i, j, {"t": str(int(bond[i, j]))}) for i in idx for j in idx if i < j and bond[i, j])
    return G


@needs("molecules", "networkx")
def automorphism_twins(atom: torch.Tensor, bond: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(twins, symmetric)``, two (B,) bool arrays: every automorphic pair of atoms are twins;
    the graph has a non-trivial automorphism (atom and bond labels kept).

    Automorphisms are enumerated by networkx's VF2 matcher (a few per QM9 molecule).

    Example
    -------
    >>> atom = torch.zeros(2, 4, dtype=torch.long); mask = torch.ones(2, 4, dtype=torch.bool)
    >>> bond = torch.zeros(2, 4, 4, dtype=torch.long)
    >>> for i, j in [(0, 1), (1, 2), (2, 3), (3, 0)]:   # a four-membered ring
    ...     bond[0, i, j] = bond[0, j, i] = 1
    >>> bond[1, 0, 1] = bond[1, 1, 0] = bond[1, 1, 2] = bond[1, 2, 1] = 1; mask[1, 3] = False
    >>> twins, symmetric = automorphism_twins(atom, bond, mask)   # ring; propane
    >>> twins.tolist(), symmetric.tolist()
    ([False, True], [True, True])
    """
    from networkx.algorithms.isomorphism import GraphMatcher

    _check(atom, bond, mask)
    twins, symmetric = [], []
    for a, b, m in zip(atom.cpu().numpy(), bond.cpu().numpy(), mask.cpu().numpy()):
        idx = [int(i) for i in np.flatnonzero(m)]
        G = _nx_graph(a, b, idx)
        same = lambda u, v: u == v  # noqa: E731  (node and edge labels)
        is_twin, is_sym = True, False
        for auto in GraphMatcher(G, G, node_match=same, edge_match=same).isomorphisms_iter():
            for i, j in auto.items():
                if i != j:
                    is_sym = True
                    if any(b[i, k] != b[j, k] for k in idx if k not in (i, j)):
                        is_twin = False
            if not is_twin:
                break
        twins.append(is_twin)
        symmetric.append(is_sym)
    return np.array(twins), np.array(symmetric)


def disconnected(atom: torch.Tensor, bond: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the graph's real atoms form two or more fragments.

    Example
    -------
    >>> atom = torch.zeros(1, 3, dtype=torch.long); mask = torch.ones(1, 3, dtype=torch.bool)
    >>> bond = torch.zeros(1, 3, 3, dtype=torch.long); bond[0, 0, 1] = bond[0, 1, 0] = 1
    >>> disconnected(atom, bond, mask).tolist()
    [True]
    """
    _check(atom, bond, mask)
    n = mask.shape[1]
    both = mask[:, :, None] & mask[:, None, :]
    reach = ((bond > 0) & both) | torch.diag_embed(mask)
    for _ in range(max(1, int(np.ceil(np.log2(max(n - 1, 1)))))):  # paths up to length n - 1
        reach = (reach.float() @ reach.float()) > 0
    return (both & ~reach).flatten(1).any(1)


@needs("molecules", "networkx")
def wl_hashes(atom: torch.Tensor, bond: torch.Tensor, mask: torch.Tensor) -> list[str]:
    """Weisfeiler-Lehman hash of each graph (atom and bond types as labels); isomorphic
    graphs get equal hashes (different hashes prove non-isomorphism).

    Example
    -------
    >>> atom = torch.tensor([[0, 1, 0]]); mask = torch.ones(1, 3, dtype=torch.bool)
    >>> bond = torch.zeros(1, 3, 3, dtype=torch.long); bond[0, 0, 1] = bond[0, 1, 0] = 1
    >>> p = torch.tensor([2, 1, 0])   # the same graph, nodes in another order
    >>> h = wl_hashes(torch.cat([atom, atom[:, p]]), torch.cat([bond, bond[:, p][:, :, p]]),
    ...               torch.cat([mask, mask]))
    >>> h[0] == h[1]
    True
    """
    import networkx as nx

    _check(atom, bond, mask)
    out = []
    for a, b, m in zip(atom.cpu().numpy(), bond.cpu().numpy(), mask.cpu().numpy()):
        G = _nx_graph(a, b, [int(i) for i in np.flatnonzero(m)])
        out.append(nx.weisfeiler_lehman_graph_hash(G, node_attr="t", edge_attr="t"))
    return out
