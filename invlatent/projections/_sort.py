r"""Sorting node codes: invariant projections for the permutation group :math:`S_n`.

* :func:`sort_projection` sorts every channel separately. For one channel (``c = 1``) it is
  an **isometric cross-section**: :math:`\lVert \operatorname{sort}(z) - \operatorname{sort}(z')\rVert
  = \min_{\pi} \lVert z - \pi z' \rVert` (rearrangement inequality). For ``c > 1`` it is
  invariant but forgets which values sat on the same node (not injective on orbits).
* :func:`lexsort_projection` sorts the *rows* lexicographically: a cross-section (one
  output per orbit, injective on :math:`\mathbb{R}^{n\times c}/S_n`) but not isometric,
  and discontinuous where rows tie in their first channel.

Padding: with a boolean node ``mask`` ``(B, n)`` (``True`` = real node), only the real rows
are sorted; they come first, and the padded rows are returned as zeros at the end. Between
two graphs with the same number of real nodes, distances of the masked sort are quotient
distances (``c = 1``); across sizes they compare the ``k``-th smallest real nodes, which is
*not* the quotient distance of the zero-padded codes (there the zeros sort among the values).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._validation import check_mask, check_tensor

__all__ = ["sort_projection", "lexsort_projection", "SortProjection", "LexSortProjection"]


def _check(z, mask):
    check_tensor(z, "z", ndim=3, expected="(B, n, c)")
    return check_mask(mask, z)


def _fill_padding(z: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    if mask is None:
        return z, None
    big = torch.finfo(z.dtype).max
    return z.masked_fill(~mask.unsqueeze(-1), big), mask.sum(dim=1)


def _zero_tail(out: torch.Tensor, counts: torch.Tensor | None) -> torch.Tensor:
    if counts is None:
        return out
    rows = torch.arange(out.shape[1], device=out.device).unsqueeze(0)
    keep = (rows < counts.unsqueeze(1)).unsqueeze(-1)
    return torch.where(keep, out, torch.zeros((), dtype=out.dtype, device=out.device))


def sort_projection(z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Sort each channel over the nodes (ascending): :math:`p(z)_{:,k} = \operatorname{sort}(z_{:,k})`.

    Invariant under :math:`S_n` acting on axis ``-2``. For ``c = 1``,
    :math:`\lVert p(z) - p(z')\rVert = d([z],[z'])` exactly (an isometric cross-section).

    Parameters
    ----------
    z : Tensor, shape ``(B, n, c)``
    mask : BoolTensor, shape ``(B, n)``, optional
        Real nodes. Padded rows end up last and are set to 0.

    Returns
    -------
    Tensor, shape ``(B, n, c)``

    Example
    -------
    >>> import torch
    >>> z = torch.tensor([[[3.0, 0.0], [1.0, 2.0], [2.0, 1.0]]])
    >>> sort_projection(z)[0].tolist()
    [[1.0, 0.0], [2.0, 1.0], [3.0, 2.0]]
    >>> mask = torch.tensor([[True, False, True]])
    >>> sort_projection(z, mask)[0].tolist()
    [[2.0, 0.0], [3.0, 1.0], [0.0, 0.0]]
    """
    return _sort_projection(z, _check(z, mask))


def _sort_projection(z: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """:func:`sort_projection` without input checks."""
    filled, counts = _fill_padding(z, mask)
    return _zero_tail(_sort_nodes(filled), counts)


def _sort_nodes(z: torch.Tensor) -> torch.Tensor:
    """Sorted values along axis 1. On a CPU without autograd, NumPy's vectorised sort (zero-copy)
    is several times faster than ``torch.sort`` on short rows (``benchmarks/run.py``); the values
    are the same either way."""
    if (z.device.type == "cpu" and z.dtype in (torch.float32, torch.float64)
            and not (torch.is_grad_enabled() and z.requires_grad)):
        return torch.from_numpy(np.sort(z.detach().numpy(), axis=1))
    return z.sort(dim=1).values


def lexsort_projection(z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Sort the rows (nodes) lexicographically: channel 0 first, ties broken by channel 1, ...

    A cross-section of :math:`\mathbb{R}^{n\times c} / S_n`: :math:`p(\pi z) = p(z)` and
    :math:`p(z) = p(z') \Rightarrow z' \in S_n z`. Implemented as ``c`` stable sorts from the
    last channel to the first (a loop over channels, batched over samples and nodes).

    Parameters
    ----------
    z : Tensor, shape ``(B, n, c)``
    mask : BoolTensor, shape ``(B, n)``, optional
        Real nodes. Padded rows end up last and are set to 0.

    Returns
    -------
    Tensor, shape ``(B, n, c)`` (rows of ``z`` re-ordered)

    Example
    -------
    >>> import torch
    >>> z = torch.tensor([[[1.0, 5.0], [0.0, 9.0], [1.0, 2.0]]])
    >>> lexsort_projection(z)[0].tolist()
    [[0.0, 9.0], [1.0, 2.0], [1.0, 5.0]]
    """
    return _lexsort_projection(z, _check(z, mask))


def _lexsort_projection(z: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """:func:`lexsort_projection` without input checks."""
    filled, counts = _fill_padding(z, mask)
    B, n, c = z.shape
    idx = torch.arange(n, device=z.device).expand(B, n)
    for k in range(c - 1, -1, -1):
        key = filled[..., k].gather(1, idx)
        idx = idx.gather(1, key.argsort(dim=1, stable=True))
    out = filled.gather(1, idx.unsqueeze(-1).expand(B, n, c))
    return _zero_tail(out, counts)


class SortProjection(nn.Module):
    """Module form of :func:`sort_projection`: ``(B, n, c) -> (B, n, c)``.

    Example
    -------
    >>> import torch
    >>> SortProjection()(torch.tensor([[[2.0], [1.0]]]))[0, :, 0].tolist()
    [1.0, 2.0]
    """

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return _sort_projection(z, _check(z, mask))


class LexSortProjection(nn.Module):
    """Module form of :func:`lexsort_projection`: ``(B, n, c) -> (B, n, c)``.

    Example
    -------
    >>> import torch
    >>> LexSortProjection()(torch.tensor([[[2.0, 0.0], [1.0, 3.0]]]))[0].tolist()
    [[1.0, 3.0], [2.0, 0.0]]
    """

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return _lexsort_projection(z, _check(z, mask))
