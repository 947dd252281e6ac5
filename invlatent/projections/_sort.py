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

from functools import lru_cache

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


#: Sorting networks against NumPy's per-row sort, float32 ``(B, n)`` rows, one thread, CPU time,
#: medians of 7 interleaved runs (B = 1e5): speed-up 13.5 (n = 2), 8.0 (3), 5.5 (5), 2.1 (9),
#: 1.7 (10), 1.4 (11), 1.2 (12), 1.13 (13), 1.05 (14), 0.91 (15), 0.85 (16); n = 9 with 2000, 4000,
#: 8000 rows: 0.86, 1.23, 1.57; n = 12 with 8000 rows: 1.05. Hence: n <= 12 and at least 8192 rows.
_NETWORK_MAX_N = 12
_NETWORK_MIN_ROWS = 8192
#: Independent sorts per step of the network (n arrays of 32 KB in float32: together in L2).
_NETWORK_BLOCK = 8192


@lru_cache(maxsize=32)
def _comparators(n: int) -> tuple[tuple[int, int], ...]:
    r"""Batcher's odd-even merge sorting network on the next power of two ``>= n``, without the
    comparators that touch a position ``>= n``: padded with :math:`+\infty`, those positions keep
    their values through every comparator, so the pruned network sorts ``n`` values."""
    size = 1 << max(0, (n - 1).bit_length())
    pairs, p = [], 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return tuple(pairs)


def _network_sort(x: np.ndarray) -> np.ndarray:
    r"""``np.sort(x, axis=1)`` for ``x`` ``(B, n, c)`` by a sorting network, vectorised over the ``B c`` sorts.

    Each comparator is an elementwise min and max of two of the ``n`` rows of a block laid out as
    ``(n, b c)``: :math:`O(n \log^2 n)` vector operations instead of ``B c`` calls of a scalar sort,
    which wins for short rows (the measurements above). The values are those of ``np.sort``; a zero
    may come out with the other sign (``min(-0, +0) = +0``), which compares equal.
    """
    B, n, c = x.shape
    out = np.empty_like(x)
    step = max(1, _NETWORK_BLOCK // c)
    for s in range(0, B, step):
        rows = list(x[s:s + step].transpose(1, 0, 2).copy().reshape(n, -1))  # a copy (never x itself): n rows of b c
        spare = np.empty_like(rows[0])
        for i, j in _comparators(n):
            np.minimum(rows[i], rows[j], out=spare)
            np.maximum(rows[i], rows[j], out=rows[j])
            rows[i], spare = spare, rows[i]
        block = out[s:s + step].transpose(1, 0, 2)  # (n, b, c) view of the output
        for i in range(n):
            block[i] = rows[i].reshape(-1, c)
    return out


def _sort_nodes(z: torch.Tensor) -> torch.Tensor:
    """Sorted values along axis 1. On a CPU without autograd, through NumPy: a sorting network for
    short rows (above), else NumPy's vectorised sort, both several times faster than ``torch.sort``
    on short rows (``benchmarks/run.py``); the values are the same either way."""
    if (z.device.type == "cpu" and z.dtype in (torch.float32, torch.float64)
            and not (torch.is_grad_enabled() and z.requires_grad)):
        x = z.detach().numpy()
        B, n, c = x.shape
        if 1 < n <= _NETWORK_MAX_N and B * c >= _NETWORK_MIN_ROWS:
            return torch.from_numpy(_network_sort(x))
        return torch.from_numpy(np.sort(x, axis=1))
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
