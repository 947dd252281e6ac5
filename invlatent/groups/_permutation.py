r"""The symmetric group :math:`S_n` acting on node latents ``(B, n, c)``."""

from __future__ import annotations

import itertools
import math

import torch

from .._validation import check_mask, check_positive_int, check_tensor
from ..quotient._assignment import MAX_EXACT_DP_NODES, _assignment_value, _batched_assignment, _scipy_assignment
from .base import Group, check_batch_size, check_generator, exact_small_distances, pairwise_by_pairs

__all__ = ["Permutation", "LazyPermutations"]


class LazyPermutations:
    """``B`` random permutations whose size ``n`` is fixed only when they act.

    Returned by ``Permutation().sample(B)`` when the group was built without ``n``.
    :meth:`materialize` draws the permutations deterministically from a stored seed, so the
    same object always gives the same permutations for the same ``n``.

    Example
    -------
    >>> import torch
    >>> g = Permutation().sample(2, generator=torch.Generator().manual_seed(0))
    >>> g.materialize(4).shape, bool(torch.equal(g.materialize(4), g.materialize(4)))
    (torch.Size([2, 4]), True)
    """

    def __init__(self, B: int, seed: int):
        self.B = B
        self.seed = seed

    def __len__(self) -> int:
        return self.B

    def materialize(self, n: int, device=None) -> torch.Tensor:
        """The ``(B, n)`` index tensor for node sets of size ``n``."""
        gen = torch.Generator().manual_seed(self.seed)
        keys = torch.rand(self.B, n, generator=gen)
        return keys.argsort(dim=1).to(device)

    def __repr__(self) -> str:
        return f"LazyPermutations(B={self.B}, seed={self.seed})"


class Permutation(Group):
    r"""The symmetric group :math:`S_n` permuting the nodes (axis ``-2``) of ``(B, n, c)`` latents.

    An element is an index tensor ``g`` of shape ``(B, n)``; it acts by
    :math:`(g\cdot z)_i = z_{g_i}` (rows re-ordered). With ``n=None`` the size is taken
    from the latents at act time, and :meth:`sample` returns :class:`LazyPermutations`.

    A boolean node ``mask`` of shape ``(B, n)`` (``True`` = real node) restricts the action
    to the real nodes: they are permuted among their own slots, padding stays where it is.

    Parameters
    ----------
    n : int, optional
        Number of nodes. Needed for :meth:`elements` and :meth:`orbit`.

    Example
    -------
    >>> import torch
    >>> z = torch.tensor([[[1.0], [2.0], [3.0], [0.0]]])
    >>> mask = torch.tensor([[True, True, True, False]])
    >>> g = torch.tensor([[3, 2, 1, 0]])
    >>> Permutation().act(g, z, mask=mask)[0, :, 0].tolist()   # padding row stays last
    [3.0, 2.0, 1.0, 0.0]
    >>> Permutation(3).order
    6
    """

    is_finite = True

    def __init__(self, n: int | None = None):
        if n is not None:
            check_positive_int(n, "n")
        self.n = n

    def __repr__(self) -> str:
        return f"Permutation(n={self.n})"

    @property
    def order(self) -> int:
        """:math:`n!` (requires ``n``)."""
        return math.factorial(self._require_n("order"))

    def _require_n(self, what: str) -> int:
        if self.n is None:
            raise ValueError(f"Permutation().{what} needs the number of nodes: build Permutation(n)")
        return self.n

    def check_latent(self, z, name: str = "z") -> torch.Tensor:
        """Validate ``z`` of shape ``(B, n, c)`` (and ``n`` when the group has one)."""
        check_tensor(z, name, ndim=3, expected="(B, n, c)")
        if self.n is not None and z.shape[1] != self.n:
            raise ValueError(
                f"{name} has {z.shape[1]} nodes but the group is Permutation(n={self.n}); "
                f"expected shape (B, {self.n}, c), got {tuple(z.shape)}"
            )
        return z

    def sample(self, B: int, generator: torch.Generator | None = None, device=None):
        """``B`` uniformly random permutations: ``(B, n)`` indices, or :class:`LazyPermutations`."""
        check_batch_size(B)
        check_generator(generator)
        gdev = generator.device if generator is not None else "cpu"
        if self.n is None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=gdev).item())
            return LazyPermutations(B, seed)
        keys = torch.rand(B, self.n, generator=generator, device=gdev)
        return keys.argsort(dim=1).to(device if device is not None else gdev)

    def elements(self, device=None) -> torch.Tensor:
        """All :math:`n!` permutations as a ``(n!, n)`` index tensor (lexicographic order)."""
        n = self._require_n("elements")
        return torch.tensor(list(itertools.permutations(range(n))), dtype=torch.long, device=device)

    def _index(self, g, z: torch.Tensor, name: str = "g") -> torch.Tensor:
        B, n = z.shape[:2]
        if isinstance(g, LazyPermutations):
            if len(g) != B:
                raise ValueError(f"{name} holds {len(g)} permutations but z has batch size {B}")
            return g.materialize(n, device=z.device)
        if not isinstance(g, torch.Tensor):
            raise TypeError(f"{name} must be a (B, n) long tensor of permutations, got {type(g).__name__}")
        if g.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"{name} must be an integer (long) tensor of shape (B, n), got {g.dtype}")
        if g.shape != (B, n):
            raise ValueError(f"{name} must have shape (B, n) = ({B}, {n}) to match z, got {tuple(g.shape)}")
        g = g.long().to(z.device)
        ok = torch.zeros(B, n, dtype=torch.bool, device=z.device)
        if (g < 0).any() or (g >= n).any() or not bool(ok.scatter_(1, g.clamp(0, n - 1), True).all()):
            raise ValueError(f"{name} must hold permutations of range({n}) in every row")
        return g

    def act(self, g, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the ``i``-th permutation to the ``i``-th node set: ``out[b, i] = z[b, g[b, i]]``."""
        self.check_latent(z)
        mask = check_mask(mask, z)
        idx = self._index(g, z)
        if mask is not None:
            idx = _restrict_to_mask(idx, mask)
        return z.gather(1, idx.unsqueeze(-1).expand_as(z))

    def orbit(self, z: torch.Tensor) -> torch.Tensor:
        """All :math:`n!` permutations of each node set: ``(B, n!, n, c)``."""
        self.check_latent(z)
        els = self.elements(z.device)
        return z[:, els]

    def average(self, z: torch.Tensor) -> torch.Tensor:
        r"""Group average: every row replaced by the mean row, :math:`\bar z_i = \frac1n\sum_j z_j`."""
        self.check_latent(z)
        return z.mean(dim=1, keepdim=True).expand_as(z)

    # -- protocol: alignment, quotient distance, max filters ---------------------------------
    def align(self, z1: torch.Tensor, z2: torch.Tensor):
        """``(aligned, g)``: sorting for one channel, exact batched assignment for ``c > 1``."""
        if z1.shape[-1] == 1:
            i1 = z1[..., 0].argsort(dim=1)
            i2 = z2[..., 0].argsort(dim=1)
            # place the k-th smallest of z2 where the k-th smallest of z1 sits
            g = torch.empty_like(i1).scatter_(1, i1, i2)
        else:
            cost = torch.cdist(z1, z2).square()  # (B, n, n), cost[i, j] = |z1_i - z2_j|^2
            _, g = _batched_assignment(cost.detach())
        return z2.gather(1, g.unsqueeze(-1).expand_as(z2)), g

    def quotient_distance(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Sorting (``c = 1``), the value-only assignment program (``n <= 9``), else :meth:`align`."""
        if z1.shape[-1] == 1:
            return (_sorted(z1) - _sorted(z2)).flatten(1).norm(dim=1)
        if z1.shape[-2] <= MAX_EXACT_DP_NODES:
            def value(a, b):
                cost = (a.unsqueeze(2) - b.unsqueeze(1)).square().sum(-1)  # (b, n, n), exact differences
                # on a CPU a compiled solver (lapx's batch call, else scipy) beats the subset dynamic
                # program (benchmarks/run.py: assignment_solvers); elsewhere the program, which needs
                # only the optimal cost and runs batched on the device
                return _scipy_assignment(cost)[0] if cost.device.type == "cpu" else _assignment_value(cost)

            # CPU: chunks of pairs keep the (b, n, n, c) differences in cache, so time grows linearly
            step = 4096 if z1.device.type == "cpu" else max(1, z1.shape[0])
            sq = torch.cat([value(z1[s:s + step], z2[s:s + step]) for s in range(0, z1.shape[0], step)]) \
                if z1.shape[0] > step else value(z1, z2)
            return torch.where(sq > 0, sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt(), torch.zeros_like(sq))
        aligned, _ = self.align(z1, z2)
        return (z1 - aligned).flatten(1).norm(dim=1)

    def pairwise_quotient_distance(self, Z1, Z2, chunk_size: int = 4096) -> torch.Tensor:
        """Sorted codes and one matmul for ``c = 1``, the small distances recomputed by the direct
        difference of sorted codes (:func:`~invlatent.groups.base.exact_small_distances`); all pairs
        in chunks otherwise."""
        if Z1.shape[-1] == 1:
            s1 = _sorted(Z1).flatten(1)
            s2 = s1 if Z2 is None else _sorted(Z2).flatten(1)
            sq = s1.square().sum(1, keepdim=True) + s2.square().sum(1) - 2 * (s1 @ s2.T)
            return exact_small_distances(sq, Z1, Z2, self.quotient_distance, chunk_size)
        return pairwise_by_pairs(self.quotient_distance, Z1, Z2, chunk_size)

    def knn(self, Z: torch.Tensor, k: int, *, mask: torch.Tensor | None = None, block_size: int = 256,
            first_candidates: int | None = None, solver: str = "auto", stats: dict | None = None,
            memory_budget: int | None = None, workers: int | None = None, **options):
        """Exact quotient k-NN pruned by Chamfer and dual lower bounds (:mod:`invlatent.quotient._knn`),
        within ``memory_budget`` bytes of working memory (default 1 GiB), its query blocks on
        ``workers`` threads (default: PyTorch's thread count); padded slots of ``mask``
        count as zero nodes. Complex latents: all pairs, block by block. (``**options``: the
        protocol's; Permutation knows none beyond those named.)"""
        from .._blockwise import knn_by_blocks
        from ..quotient._knn import knn_permutation

        if options.get("method") == "faiss":  # quotient_knn(method="faiss"): FAISS + exact re-ranking
            from ..quotient._index import QuotientIndex

            index = QuotientIndex(**options.get("index_options", {}))
            index.add(Z, mask=mask)
            d, i = index.search(Z, k, mask=mask, exclude=torch.arange(Z.shape[0]), stats=stats, workers=workers)
            return d.to(device=Z.device, dtype=Z.dtype), i.to(Z.device)
        if options:
            raise TypeError(f"Permutation.knn got unexpected options {sorted(options)}")

        if mask is not None:
            check_mask(mask, Z, z_name="Z")
            Z = Z.masked_fill(~mask.to(Z.device)[..., None], 0)
        if Z.is_complex():
            return knn_by_blocks(Z, k, lambda rows: self.pairwise_quotient_distance(rows, Z), block_size, stats)
        first = max(2 * k, k + 8) if first_candidates is None else first_candidates
        budget = {} if memory_budget is None else {"memory_budget": memory_budget}
        d, i = knn_permutation(Z, k, block_size, first, solver, stats, workers=workers, **budget)
        return d.to(device=Z.device, dtype=Z.dtype), i.to(Z.device)

    def template_orbit(self, templates: torch.Tensor) -> None:
        """Nothing to cache: the max over :math:`n!` permutations is an assignment problem."""
        return None

    def max_inner(self, z: torch.Tensor, templates: torch.Tensor, template_orbit=None, chunk: int = 1 << 15) -> torch.Tensor:
        r""":math:`\max_\pi \langle w_t, \pi z_b\rangle`: sorted with sorted for ``c = 1``, assignment for ``c > 1``."""
        B, n, c = z.shape
        T = templates.shape[0]
        if c == 1:  # rearrangement inequality: the max pairs sorted with sorted
            return _sorted(z)[..., 0] @ _sorted(templates)[..., 0].T
        scores = torch.einsum("tic,bjc->btij", templates, z).reshape(B * T, n, n)  # <w_i, z_j>
        vals = [-_batched_assignment(-scores[s:s + chunk])[0] for s in range(0, B * T, chunk)]
        return torch.cat(vals).view(B, T)


def _sorted(z: torch.Tensor) -> torch.Tensor:
    """Every channel sorted over the nodes (axis 1): the one-channel cross-section of :math:`S_n`."""
    return z.sort(dim=1).values


def _restrict_to_mask(idx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Turn permutations of all ``n`` slots into permutations of the real nodes only."""
    B, n = idx.shape
    ar = torch.arange(n, device=idx.device).expand(B, n)
    pos = torch.empty_like(idx).scatter_(1, idx, ar)  # rank of each node in g
    keys = torch.where(mask, pos, n + ar)
    order = keys.argsort(dim=1, stable=True)  # real nodes in g-order, then padding ascending
    slots = (~mask).to(torch.int8).argsort(dim=1, stable=True)  # real slots ascending, then padding
    return torch.empty_like(idx).scatter_(1, slots, order)
