r"""The quotient metric, orbit alignment and aligned interpolation.

For a group :math:`G` acting by isometries on latents, the distance between two orbits is

.. math::

    d([z], [z']) = \min_{g\in G} \lVert z - \rho(g) z' \rVert .

How the minimum is found depends on the group:

* :class:`~invlatent.groups.Permutation`, one channel (``c = 1``): sort both codes
  (rearrangement inequality) -- :math:`O(n \log n)`;
* :class:`~invlatent.groups.Permutation`, ``c > 1``: a linear assignment problem with costs
  :math:`C_{ij} = \lVert z_i - z'_j \rVert^2`, solved exactly and batched by dynamic
  programming over subsets (:func:`batched_assignment`, :math:`n \le 9`) and by
  ``scipy.optimize.linear_sum_assignment`` one pair at a time for larger ``n``;
* :class:`~invlatent.groups.Cyclic` (and any finite group with ``orbit``): one matmul
  against the whole orbit, then a min over the group axis;
* :class:`~invlatent.groups.SO3` / :class:`~invlatent.groups.O3` on irreps with
  :math:`l \le 1`: the Kabsch / orthogonal Procrustes solution (exact).

Example
-------
>>> import torch
>>> from invlatent import Permutation, quotient_distance, align
>>> z1 = torch.tensor([[[0.0], [1.0], [5.0]]])
>>> z2 = torch.tensor([[[5.0], [0.0], [1.0]]])   # the same set, re-ordered
>>> float(quotient_distance(z1, z2, Permutation()))
0.0
>>> align(z1, z2, Permutation())[0, :, 0].tolist()
[0.0, 1.0, 5.0]
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np
import torch

from ._fft_correlation import cyclic_max_inner, use_fft
from ._validation import check_same_shape, check_tensor
from .groups import O3, SO3, Cyclic, Permutation, check_group

__all__ = [
    "quotient_distance",
    "pairwise_quotient_distance",
    "align",
    "aligned_interpolation",
    "batched_assignment",
    "assignment_value",
    "MAX_EXACT_DP_NODES",
]

#: Largest node count solved by the batched subset dynamic program (2^n states).
MAX_EXACT_DP_NODES = 9


# --------------------------------------------------------------------------------------
# exact batched linear assignment
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _dp_tables(n: int):
    """Per popcount layer k: (masks (m,), predecessors (m, k), columns (m, k))."""
    layers = []
    for k in range(1, n + 1):
        masks, preds, cols = [], [], []
        for combo in itertools.combinations(range(n), k):
            m = sum(1 << j for j in combo)
            masks.append(m)
            preds.append([m ^ (1 << j) for j in combo])
            cols.append(list(combo))
        layers.append((torch.tensor(masks), torch.tensor(preds), torch.tensor(cols)))
    return layers


def batched_assignment(cost: torch.Tensor, method: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact minimum-cost perfect matching for a batch of square cost matrices.

    Solves :math:`\min_{\pi\in S_n} \sum_i C_{i,\pi(i)}` for every matrix in the batch by
    dynamic programming over subsets: :math:`D[S]` is the best cost of assigning rows
    :math:`0..|S|-1` to the column set :math:`S`, and
    :math:`D[S] = \min_{j\in S} D[S\setminus\{j\}] + C_{|S|-1, j}`. All ``B`` problems run at
    once with :math:`n 2^{n-1}` gathers each; no Python loop over samples. The alternative
    calls ``scipy.optimize.linear_sum_assignment`` (C code, Hungarian-type) once per matrix.

    Which is faster depends on the device: on a CPU the scipy loop was measured about 10x
    faster than the dynamic program for ``n = 9`` (2 shared cores, batches of 400-4096),
    so ``method="auto"`` uses scipy on CPU and the dynamic program on accelerators (where a
    per-matrix loop would copy every matrix to the host). Both are exact; both return values
    differentiable in ``cost``.

    Parameters
    ----------
    cost : Tensor, shape ``(B, n, n)``
        Finite float costs.
    method : ``"auto"``, ``"dp"`` or ``"scipy"``
        ``"dp"`` needs ``n <= 9`` (:data:`MAX_EXACT_DP_NODES`); ``"auto"`` picks the dynamic
        program on non-CPU devices when ``n <= 9`` and scipy otherwise.

    Returns
    -------
    value : Tensor, shape ``(B,)``
        The minimal total cost (differentiable in ``cost`` almost everywhere).
    perm : LongTensor, shape ``(B, n)``
        An optimal assignment: row ``i`` goes to column ``perm[b, i]``.

    Example
    -------
    >>> import torch
    >>> C = torch.tensor([[[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]]])
    >>> value, perm = batched_assignment(C)
    >>> float(value), perm.tolist()
    (5.0, [[1, 0, 2]])
    """
    check_tensor(cost, "cost", ndim=3, expected="(B, n, n)")
    B, n, m = cost.shape
    if n != m:
        raise ValueError(f"cost must be square, shape (B, n, n), got {tuple(cost.shape)}")
    if method not in ("auto", "dp", "scipy"):
        raise ValueError(f"method must be 'auto', 'dp' or 'scipy', got {method!r}")
    if method == "dp" and n > MAX_EXACT_DP_NODES:
        raise ValueError(f"method='dp' needs n <= {MAX_EXACT_DP_NODES} (2^n states), got n={n}; use 'scipy'")
    if method == "scipy" or (method == "auto" and (n > MAX_EXACT_DP_NODES or cost.device.type == "cpu")):
        return _scipy_assignment(cost)
    return _dp_assignment(cost)


def _dp_assignment(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    B, n, _ = cost.shape
    dev = cost.device
    # batch-last layout: every gather below copies whole contiguous rows of B values
    cost_t = cost.permute(1, 2, 0)  # (n, n, B)
    dp = cost.new_zeros(1 << n, B)
    choice = torch.zeros(1 << n, B, dtype=torch.long, device=dev)
    for k, (masks, preds, cols) in enumerate(_dp_tables(n), start=1):
        masks, preds, cols = masks.to(dev), preds.to(dev), cols.to(dev)
        m = len(masks)
        cand = dp.index_select(0, preds.reshape(-1)).view(m, k, B)
        cand = cand + cost_t[k - 1].index_select(0, cols.reshape(-1)).view(m, k, B)
        best, arg = cand.min(dim=1)  # (m, B)
        dp.index_copy_(0, masks, best)  # index_select saves no input for backward: in place is safe
        choice.index_copy_(0, masks, torch.gather(cols.unsqueeze(-1).expand(m, k, B), 1, arg.unsqueeze(1)).squeeze(1))
    full = (1 << n) - 1
    perm = torch.empty(B, n, dtype=torch.long, device=dev)
    state = torch.full((B,), full, dtype=torch.long, device=dev)
    ar = torch.arange(B, device=dev)
    for row in range(n - 1, -1, -1):
        j = choice[state, ar]
        perm[:, row] = j
        state = state ^ (1 << j)
    return dp[full], perm


def assignment_value(cost: torch.Tensor, *, chunk_size: int | None = None) -> torch.Tensor:
    r"""Minimal assignment cost only, :math:`\min_{\pi\in S_n}\sum_i C_{i,\pi(i)}`, for ``n <= 9``.

    The subset dynamic program of :func:`batched_assignment` without the bookkeeping needed
    to recover the permutation: per popcount layer, a running elementwise minimum over the
    :math:`k` predecessors (contiguous ``(m, b)`` tensors, batch last) instead of a reduction
    over a middle axis, in batch chunks that keep the ``2^n x b`` table in cache on a CPU.
    This is what quotient *distances* need; it is several times faster than
    :func:`batched_assignment`'s dynamic program and, on a CPU, about as fast as scipy's
    compiled Hungarian solver called once per matrix (memory-bound gathers, measured in
    ``benchmarks/run.py``). Differentiable in ``cost`` almost everywhere.

    Parameters
    ----------
    cost : Tensor, shape ``(B, n, n)`` with ``n <= 9``
    chunk_size : int, optional
        Problems per chunk (default 512 on CPU, 65,536 on accelerators).

    Returns
    -------
    Tensor, shape ``(B,)``

    Example
    -------
    >>> import torch
    >>> C = torch.tensor([[[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]]])
    >>> float(assignment_value(C))
    5.0
    """
    check_tensor(cost, "cost", ndim=3, expected="(B, n, n)")
    B, n, m = cost.shape
    if n != m:
        raise ValueError(f"cost must be square, shape (B, n, n), got {tuple(cost.shape)}")
    if n > MAX_EXACT_DP_NODES:
        raise ValueError(f"assignment_value needs n <= {MAX_EXACT_DP_NODES} (2^n states), got n={n}; "
                         "use batched_assignment(cost, method='scipy')")
    if chunk_size is None:
        chunk_size = 512 if cost.device.type == "cpu" else 1 << 16
    if not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    tables = [(mk.to(cost.device), pr.to(cost.device), co.to(cost.device)) for mk, pr, co in _dp_tables(n)]
    out = []
    for start in range(0, B, chunk_size):
        c = cost[start:start + chunk_size]
        cost_t = c.permute(1, 2, 0).contiguous()  # (n, n, b): every gather copies contiguous rows
        dp = c.new_zeros(1 << n, c.shape[0])
        for k, (masks, preds, cols) in enumerate(tables, start=1):
            row = cost_t[k - 1]
            best = dp.index_select(0, preds[:, 0]) + row.index_select(0, cols[:, 0])
            for t in range(1, k):
                best = torch.minimum(best, dp.index_select(0, preds[:, t]) + row.index_select(0, cols[:, t]))
            dp = dp.index_copy(0, masks, best)
        out.append(dp[-1])
    return torch.cat(out)


def _scipy_assignment(cost: torch.Tensor):
    from ._batched_assignment import solve_assignment

    c = cost.detach().cpu().double().numpy()
    perm = solve_assignment(c)  # lapx's batch solver when installed, else one scipy call per matrix
    perm_t = torch.as_tensor(perm, dtype=torch.long, device=cost.device)
    value = cost.gather(2, perm_t.unsqueeze(-1)).squeeze(-1).sum(-1)
    return value, perm_t


# --------------------------------------------------------------------------------------
# alignment per group
# --------------------------------------------------------------------------------------


def _check_pair(z1, z2, group):
    check_group(group)
    group.check_latent(z1, "z1")
    group.check_latent(z2, "z2")
    check_same_shape(z1, z2, "z1", "z2")


def _align_permutation(z1, z2):
    """Return (element g, aligned g.z2) minimising ||z1 - g.z2||."""
    B, n, c = z1.shape
    if c == 1:
        i1 = z1[..., 0].argsort(dim=1)
        i2 = z2[..., 0].argsort(dim=1)
        # place the k-th smallest of z2 where the k-th smallest of z1 sits
        g = torch.empty_like(i1).scatter_(1, i1, i2)
    else:
        cost = torch.cdist(z1, z2).square()  # (B, n, n), cost[i, j] = |z1_i - z2_j|^2
        _, g = batched_assignment(cost.detach())
    return g, z2.gather(1, g.unsqueeze(-1).expand_as(z2))


def _align_finite(z1, z2, group):
    orb = group.orbit(z2)  # (B, |G|, *shape)
    diff = (orb - z1.unsqueeze(1)).flatten(2).abs().square().sum(-1)  # (B, |G|); abs: complex fibers too
    k = diff.argmin(dim=1)
    els = group.elements(z1.device)[k]
    aligned = orb[torch.arange(z1.shape[0], device=z1.device), k]
    return els, aligned


def _kabsch(P: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """Rotations R (B,3,3) in SO(3) minimising sum ||P_k - R Q_k||^2; P, Q (B, m, 3)."""
    H = Q.transpose(1, 2) @ P  # (B, 3, 3)
    U, S, Vh = torch.linalg.svd(H)
    d = torch.sign(torch.linalg.det(Vh.transpose(1, 2) @ U.transpose(1, 2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    E = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=1))
    return Vh.transpose(1, 2) @ E @ U.transpose(1, 2)


def _vector_blocks(group: SO3, z: torch.Tensor) -> torch.Tensor:
    """The l=1 copies of z (1o and 1e) as (B, m, 3), in e3nn's l=1 basis."""
    blocks, start = [], 0
    for mul, ir in group.irreps:
        width = mul * ir.dim
        if ir.l == 1:
            blocks.append(z[:, start:start + width].reshape(z.shape[0], mul, 3))
        start += width
    return torch.cat(blocks, dim=1) if blocks else z.new_zeros(z.shape[0], 0, 3)


@lru_cache(maxsize=None)
def _l1_basis() -> torch.Tensor:
    """The permutation P with ``Irreps("1o").D_from_matrix(R) = P R P^T`` (e3nn-version proof)."""
    from e3nn import o3

    R = o3.angles_to_matrix(*torch.tensor([0.3, 1.1, -0.7], dtype=torch.float64))
    D = o3.Irreps("1o").D_from_matrix(R)
    best = min(
        itertools.permutations(range(3)),
        key=lambda p: float((D - torch.eye(3, dtype=torch.float64)[list(p)] @ R @ torch.eye(3, dtype=torch.float64)[list(p)].T).abs().max()),
    )
    return torch.eye(3, dtype=torch.float64)[list(best)]


def _align_rotation(z1, z2, group: SO3):
    if group.irreps.lmax > 1:
        raise NotImplementedError(
            f"exact alignment for {type(group).__name__} is implemented for irreps with l <= 1 "
            f"(Kabsch); got lmax={group.irreps.lmax}. Use complete_invariants or irrep_norms instead."
        )
    P = _l1_basis().to(z1.device)
    B = z1.shape[0]
    signs = (1.0, -1.0) if isinstance(group, O3) else (1.0,)
    candidates = []
    for s in signs:
        inv = (s * torch.eye(3, dtype=torch.float64, device=z1.device)).expand(B, 3, 3)
        z2s = group.act(inv, z2) if s < 0 else z2
        D = _kabsch(_vector_blocks(group, z1).double(), _vector_blocks(group, z2s).double())
        g = s * (P.T @ D @ P)  # rotation in xyz coordinates, times the inversion if s < 0
        candidates.append((g, group.act(g, z2)))
    if len(candidates) == 1:
        return candidates[0]
    d = torch.stack([(a - z1).square().sum(-1) for _, a in candidates])  # (2, B)
    k = d.argmin(dim=0)
    g = torch.where(k.view(-1, 1, 1) == 0, candidates[0][0], candidates[1][0])
    aligned = torch.where(k.view(-1, 1) == 0, candidates[0][1], candidates[1][1])
    return g, aligned


def _align(z1, z2, group):
    if isinstance(group, Permutation):
        return _align_permutation(z1, z2)
    if isinstance(group, SO3):
        return _align_rotation(z1, z2, group)
    if hasattr(group, "orbit"):
        return _align_finite(z1, z2, group)
    raise TypeError(f"group {group!r} has no exact alignment: it is neither finite nor SO3/O3")


def align(z1: torch.Tensor, z2: torch.Tensor, group, *, return_element: bool = False):
    r"""The point of :math:`z_2`'s orbit closest to :math:`z_1` (pairwise over the batch).

    .. math::

        \operatorname{align}(z_1, z_2) = \rho(g^\star) z_2,\qquad
        g^\star = \arg\min_{g\in G} \lVert z_1 - \rho(g) z_2\rVert .

    Parameters
    ----------
    z1, z2 : Tensor, shape ``(B, *latent_shape)``
        Same shape and dtype; the layout of ``group``.
    group : group object
        :class:`~invlatent.groups.Permutation`, :class:`~invlatent.groups.Cyclic`, another
        finite group with ``orbit``, or :class:`~invlatent.groups.SO3`/:class:`~invlatent.groups.O3`
        with :math:`l\le 1` irreps.
    return_element : bool
        Also return :math:`g^\star` (a batch of elements in the group's format).

    Returns
    -------
    Tensor, shape ``(B, *latent_shape)`` (and the elements if ``return_element``).

    Example
    -------
    >>> import torch
    >>> from invlatent import Cyclic
    >>> z1 = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])
    >>> z2 = torch.tensor([[[0.0, 0.0, 0.9, 0.0]]])
    >>> aligned, g = align(z1, z2, Cyclic(4), return_element=True)
    >>> aligned.tolist(), g.tolist()
    ([[[0.9, 0.0, 0.0, 0.0]]], [2])
    """
    _check_pair(z1, z2, group)
    g, aligned = _align(z1, z2, group)
    return (aligned, g) if return_element else aligned


def quotient_distance(z1: torch.Tensor, z2: torch.Tensor, group) -> torch.Tensor:
    r"""Exact quotient distance, one per pair: :math:`d_i = \min_g \lVert z_{1,i} - \rho(g) z_{2,i}\rVert`.

    Parameters
    ----------
    z1, z2 : Tensor, shape ``(B, *latent_shape)``
    group : group object (see :func:`align` for the supported groups)

    Returns
    -------
    Tensor, shape ``(B,)``, differentiable almost everywhere.

    Example
    -------
    >>> import torch
    >>> from invlatent import Permutation
    >>> z1 = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    >>> z2 = torch.tensor([[[1.0, 0.0], [0.0, 1.5]]])   # c = 2: an assignment problem
    >>> round(float(quotient_distance(z1, z2, Permutation())), 4)
    0.5
    """
    _check_pair(z1, z2, group)
    if isinstance(group, Permutation) and z1.shape[-1] == 1:
        s1 = z1.sort(dim=1).values
        s2 = z2.sort(dim=1).values
        return (s1 - s2).flatten(1).norm(dim=1)
    if isinstance(group, Permutation) and z1.shape[-2] <= MAX_EXACT_DP_NODES:
        # distances need only the optimal cost, not the permutation: value-only dynamic program
        cost = (z1.unsqueeze(2) - z2.unsqueeze(1)).square().sum(-1)  # (B, n, n), exact differences
        sq = assignment_value(cost)
        pos = sq > 0
        return torch.where(pos, sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt(), torch.zeros_like(sq))
    _, aligned = _align(z1, z2, group)
    return (z1 - aligned).flatten(1).norm(dim=1)


def pairwise_quotient_distance(Z1: torch.Tensor, Z2: torch.Tensor | None, group, *, chunk_size: int = 4096) -> torch.Tensor:
    r"""Matrix of quotient distances :math:`D_{ij} = d([Z_{1,i}], [Z_{2,j}])`.

    Finite groups with ``orbit`` use one matmul of ``Z1`` against the whole orbit of ``Z2``
    (:math:`\lVert a-b\rVert^2 = \lVert a\rVert^2 + \lVert b\rVert^2 - 2\langle a,b\rangle`) and a
    max over the group axis; permutations sort (``c = 1``) or solve all assignments in
    chunks of ``chunk_size`` pairs.

    Parameters
    ----------
    Z1 : Tensor, shape ``(N1, *latent_shape)``
    Z2 : Tensor, shape ``(N2, *latent_shape)``, or ``None`` for ``Z1`` against itself
    group : group object

    Returns
    -------
    Tensor, shape ``(N1, N2)``

    Example
    -------
    >>> import torch
    >>> from invlatent import Cyclic
    >>> Z = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]], [[2.0, 0.0, 0.0]]])
    >>> pairwise_quotient_distance(Z, None, Cyclic(3)).round(decimals=3).tolist()
    [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
    """
    check_group(group)
    group.check_latent(Z1, "Z1")
    if Z2 is None:
        Z2 = Z1
    group.check_latent(Z2, "Z2")
    if Z1.shape[1:] != Z2.shape[1:]:
        raise ValueError(f"Z1 and Z2 must share the latent shape, got {tuple(Z1.shape)} and {tuple(Z2.shape)}")
    if Z1.dtype != Z2.dtype:
        raise TypeError(f"Z1 and Z2 must have the same dtype, got {Z1.dtype} and {Z2.dtype}")
    if not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    N1, N2 = Z1.shape[0], Z2.shape[0]
    if isinstance(group, Permutation) and Z1.shape[-1] == 1:
        s1 = Z1.sort(dim=1).values.flatten(1)
        s2 = Z2.sort(dim=1).values.flatten(1)
        return torch.cdist(s1, s2)
    if (not isinstance(group, Permutation) and hasattr(group, "orbit") and getattr(group, "is_finite", True)
            and not Z1.is_complex()):
        a = Z1.flatten(1)  # (N1, D)
        if isinstance(group, Cyclic) and use_fft(group.N, math.prod(Z1.shape[1:-1]), N2):
            best = cyclic_max_inner(Z1, Z2, method="fft")  # max_g <Z1_i, g Z2_j> by the real DFT
        else:
            orb = group.orbit(Z2).flatten(2)  # (N2, G, D)
            G = orb.shape[1]
            inner = a @ orb.reshape(N2 * G, -1).T  # (N1, N2*G)
            best = inner.view(N1, N2, G).amax(dim=2)
        sq = a.square().sum(1, keepdim=True) + Z2.flatten(1).square().sum(1).unsqueeze(0) - 2 * best
        return sq.clamp_min(0).sqrt()
    # generic: all pairs, in chunks; a set against itself needs only the upper triangle
    symmetric = Z2 is Z1
    if symmetric:
        i1, i2 = torch.triu_indices(N1, N1, offset=1)
    else:
        i1, i2 = torch.meshgrid(torch.arange(N1), torch.arange(N2), indexing="ij")
        i1, i2 = i1.reshape(-1), i2.reshape(-1)
    i1, i2 = i1.to(Z1.device), i2.to(Z1.device)
    out = []
    for start in range(0, len(i1), chunk_size):
        sl = slice(start, start + chunk_size)
        out.append(quotient_distance(Z1[i1[sl]], Z2[i2[sl]], group))
    vals = torch.cat(out) if out else Z1.new_zeros(0).real
    if not symmetric:
        return vals.view(N1, N2)
    D = vals.new_zeros(N1, N1)
    D = D.index_put((i1, i2), vals).index_put((i2, i1), vals)
    return D


def aligned_interpolation(z1: torch.Tensor, z2: torch.Tensor, group, t) -> torch.Tensor:
    r"""Interpolate from :math:`z_1` to the aligned :math:`z_2`: :math:`(1-t) z_1 + t\,\operatorname{align}(z_1, z_2)`.

    Straight lines between *aligned* codes are geodesics of the quotient (for finite groups
    near generic points): the path never passes through a mixture of two poses.

    Parameters
    ----------
    z1, z2 : Tensor, shape ``(B, *latent_shape)``
    group : group object
    t : float or 1-D Tensor/sequence of ``T`` values

    Returns
    -------
    Tensor, shape ``(B, *latent_shape)`` for a float ``t``, ``(B, T, *latent_shape)`` otherwise.

    Example
    -------
    >>> import torch
    >>> from invlatent import Permutation
    >>> z1 = torch.tensor([[[0.0], [2.0]]]); z2 = torch.tensor([[[4.0], [0.0]]])
    >>> aligned_interpolation(z1, z2, Permutation(), 0.5)[0, :, 0].tolist()
    [0.0, 3.0]
    """
    aligned = align(z1, z2, group)
    if isinstance(t, (float, int)) and not isinstance(t, bool):
        return (1 - t) * z1 + t * aligned
    tt = torch.as_tensor(t, dtype=z1.dtype, device=z1.device) if not isinstance(t, torch.Tensor) else t
    if not tt.is_floating_point() or tt.dim() != 1 or tt.numel() == 0:
        raise ValueError(f"t must be a float or a non-empty 1-D float tensor/sequence, got {t!r}")
    tt = tt.to(dtype=z1.dtype, device=z1.device).view(1, -1, *([1] * (z1.dim() - 1)))
    return (1 - tt) * z1.unsqueeze(1) + tt * aligned.unsqueeze(1)
