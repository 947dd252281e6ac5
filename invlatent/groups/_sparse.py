r"""PyG-style node batches ``(x, batch, size)``: random permutation within graphs, dense conversion."""

from __future__ import annotations

import torch

from .._validation import check_positive_int, check_tensor
from .base import check_generator

__all__ = ["permute_sparse", "to_dense_nodes"]


def _check_sparse(x, batch, size):
    check_tensor(x, "x", ndim=2, expected="(num_nodes, c)")
    if not isinstance(batch, torch.Tensor) or batch.dtype != torch.long:
        raise TypeError(f"batch must be a long tensor of graph indices (num_nodes,), got {getattr(batch, 'dtype', type(batch).__name__)}")
    if batch.shape != (x.shape[0],):
        raise ValueError(f"batch must have shape (num_nodes,) = ({x.shape[0]},) to match x, got {tuple(batch.shape)}")
    check_positive_int(size, "size")
    if batch.numel() and (int(batch.min()) < 0 or int(batch.max()) >= size):
        raise ValueError(f"batch must hold graph indices in [0, size={size}), got range [{int(batch.min())}, {int(batch.max())}]")
    if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch must be sorted (non-decreasing), as in a PyG Batch")


def permute_sparse(x: torch.Tensor, batch: torch.Tensor, size: int, generator: torch.Generator | None = None):
    r"""Randomly permute the nodes *within* each graph of a PyG-style node batch ``(x, batch, size)``.

    Parameters
    ----------
    x : Tensor, shape ``(num_nodes, c)``
    batch : LongTensor, shape ``(num_nodes,)``, sorted graph index of every node (PyG ``Batch.batch``)
    size : int
        Number of graphs (pass it, as in PyG, to avoid a device sync).
    generator : torch.Generator, optional

    Returns
    -------
    x_perm : Tensor, shape ``(num_nodes, c)``
        ``x[order]``: every graph's nodes in a uniformly random order, graphs kept in place.
    order : LongTensor, shape ``(num_nodes,)``

    Example
    -------
    >>> import torch
    >>> x = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0]])
    >>> batch = torch.tensor([0, 0, 0, 1, 1])
    >>> xp, order = permute_sparse(x, batch, 2, generator=torch.Generator().manual_seed(0))
    >>> batch[order].tolist(), sorted(xp[:3, 0].tolist())
    ([0, 0, 0, 1, 1], [0.0, 1.0, 2.0])
    """
    _check_sparse(x, batch, size)
    check_generator(generator)
    gdev = generator.device if generator is not None else "cpu"
    keys = torch.rand(x.shape[0], generator=generator, device=gdev, dtype=torch.float64).to(x.device)
    order = (batch.to(torch.float64) + keys).argsort()
    return x[order], order


def to_dense_nodes(x: torch.Tensor, batch: torch.Tensor, size: int, max_num_nodes: int | None = None):
    r"""PyG-style node batch ``(x, batch, size)`` to dense latents ``(size, n, c)`` and a node mask.

    The same result as ``torch_geometric.utils.to_dense_batch(x, batch, batch_size=size,
    max_num_nodes=max_num_nodes)`` (plain torch here, so the core install needs no PyG): graph ``b``'s
    nodes fill rows ``0..n_b-1`` of ``z[b]`` in order, the rest is zero; nodes past
    ``max_num_nodes`` are dropped. The result is what :class:`Permutation`,
    :func:`~invlatent.projections.sort_projection` and the quotient functions take.

    Returns
    -------
    z : Tensor, shape ``(size, n, c)`` (``n = max_num_nodes`` or the largest graph)
    mask : BoolTensor, shape ``(size, n)``, ``True`` for real nodes

    Example
    -------
    >>> import torch
    >>> z, mask = to_dense_nodes(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([0, 0, 1]), 2)
    >>> z[..., 0].tolist(), mask.tolist()
    ([[1.0, 2.0], [3.0, 0.0]], [[True, True], [True, False]])
    """
    _check_sparse(x, batch, size)
    if max_num_nodes is not None:
        check_positive_int(max_num_nodes, "max_num_nodes")
    batch = batch.to(x.device)
    counts = torch.bincount(batch, minlength=size)
    n = max_num_nodes if max_num_nodes is not None else (int(counts.max()) if batch.numel() else 0)
    start = counts.cumsum(0) - counts  # first node of every graph
    pos = torch.arange(batch.numel(), device=x.device) - start[batch]
    keep = pos < n
    b, p = batch[keep], pos[keep]
    z = x.new_zeros(size, n, *x.shape[1:]).index_put((b, p), x[keep])
    mask = torch.zeros(size, n, dtype=torch.bool, device=x.device).index_put((b, p), torch.ones_like(b, dtype=torch.bool))
    return z, mask
