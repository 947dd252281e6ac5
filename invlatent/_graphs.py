"""Graph helpers shared by the data loaders and the models (padded point clouds to edge lists)."""

from __future__ import annotations

import torch

from ._validation import check_mask, check_tensor, describe

__all__ = ["ATOM_TYPES", "BOND_TYPES", "MAX_NODES", "radius_graph_dense"]

# The padded heavy-atom graph layout of QM9 (shared by the loader, the graph VAE and the chemistry metrics).
#: Node types, in the order of their index.
ATOM_TYPES: tuple[str, ...] = ("C", "N", "O", "F")
#: Edge types, index ``1..3`` (``0`` means "no bond").
BOND_TYPES: tuple[str, ...] = ("single", "double", "triple")
#: Largest number of heavy atoms in QM9.
MAX_NODES: int = 9


def radius_graph_dense(pos: torch.Tensor, mask: torch.Tensor, r_max: float, *, loop: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Neighbour graph of padded point clouds by batched distances (no ``torch_cluster``).

    Edges :math:`j \to i` for every pair of real atoms of one molecule with
    :math:`\lVert r_i - r_j\rVert \le r_\max` (both directions), computed from one
    ``(B, n, n)`` distance tensor -- cheap for :math:`n \le 29`.

    Parameters
    ----------
    pos : Tensor, shape ``(B, n, 3)``
    mask : BoolTensor, shape ``(B, n)``
    r_max : float
        Cutoff radius (Å), positive.
    loop : bool
        Include self-loops.

    Returns
    -------
    pos_flat : Tensor, shape ``(N, 3)``
        The real atoms, molecule after molecule (``N = mask.sum()``).
    edge_index : LongTensor, shape ``(2, E)``
        ``(source, target)`` indices into ``pos_flat`` (PyG convention).

    Example
    -------
    >>> pos = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [5.0, 0, 0]]])
    >>> _, ei = radius_graph_dense(pos, torch.ones(1, 3, dtype=torch.bool), 1.5)
    >>> ei.tolist()
    [[1, 0], [0, 1]]
    """
    check_tensor(pos, "pos", ndim=3, shape=(None, None, 3), expected="(B, n, 3)")
    check_mask(mask, pos[..., 0])
    if mask is None:
        raise TypeError("mask must be a bool tensor of shape (B, n), got None")
    if not isinstance(r_max, (int, float)) or not r_max > 0:
        raise ValueError(f"r_max must be a positive number, got {describe(r_max)}")
    B, n, _ = pos.shape
    dist = torch.cdist(pos, pos)
    adj = (dist <= r_max) & mask.unsqueeze(1) & mask.unsqueeze(2)
    if not loop:
        adj &= ~torch.eye(n, dtype=torch.bool, device=pos.device)
    flat_id = torch.cumsum(mask.flatten(), 0).view(B, n) - 1  # slot -> index among real atoms
    b, i, j = adj.nonzero(as_tuple=True)  # i: target, j: source
    edge_index = torch.stack([flat_id[b, j], flat_id[b, i]])
    return pos[mask], edge_index


def union_find_root(parent: list[int], v: int) -> int:
    """Root of node ``v`` in the union-find forest ``parent`` (``parent[r] == r`` at a root),
    halving the path on the way (Kruskal's rule in the molecule decoders)."""
    while parent[v] != v:
        parent[v] = parent[parent[v]]
        v = parent[v]
    return v
