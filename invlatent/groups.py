r"""Groups acting on batches of latent codes.

A group object is duck-typed. Every group has

* ``group.sample(B, generator=None, device=None)`` -- ``B`` random elements (a batch);
* ``group.act(g, z)`` -- the ``i``-th element applied to the ``i``-th latent,
  ``z`` of shape ``(B, *latent_shape)``;
* ``group.average(z)`` -- the group average (Reynolds operator)
  :math:`\bar z = \int_G \rho(g) z \, dg`, the orthogonal projection onto the fixed subspace;
* ``group.check_latent(z, name)`` -- validates the layout (raises a clear error).

Finite groups also have ``group.order``, ``group.elements()`` (all elements, one batch)
and ``group.orbit(z)`` of shape ``(B, |G|, *latent_shape)``.

=========================  =====================  ===========================================
group                      latent layout          element batch
=========================  =====================  ===========================================
:class:`Permutation`       ``(B, n, c)``          index tensor ``(B, n)`` (``out[i] = z[g[i]]``)
:class:`Cyclic`            ``(B, ..., N)``        integer shifts ``(B,)``
:class:`SO3`, :class:`O3`  ``(B, irreps.dim)``    rotation matrices ``(B, 3, 3)``
=========================  =====================  ===========================================

Example
-------
>>> import torch
>>> from invlatent import Permutation, Cyclic
>>> z = torch.arange(6.0).reshape(1, 3, 2)
>>> g = torch.tensor([[2, 0, 1]])
>>> Permutation().act(g, z)[0].tolist()
[[4.0, 5.0], [0.0, 1.0], [2.0, 3.0]]
>>> Cyclic(4).act(torch.tensor([1]), torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])).tolist()
[[[4.0, 1.0, 2.0, 3.0]]]
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ._validation import check_mask, check_positive_int, check_tensor, describe

__all__ = [
    "Permutation",
    "Cyclic",
    "CyclicFourier",
    "SO3",
    "O3",
    "LazyPermutations",
    "check_group",
    "permute_sparse",
    "to_dense_nodes",
]


def _check_batch(B, name: str = "B") -> int:
    if not isinstance(B, int) or isinstance(B, bool):
        raise TypeError(f"{name} must be a positive int (number of elements), got {type(B).__name__}")
    if B <= 0:
        raise ValueError(f"{name} must be a positive int (number of elements), got {B}")
    return B


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def check_group(group, name: str = "group", *, finite: bool = False):
    """Raise ``TypeError`` unless ``group`` has ``act`` and ``sample`` (and ``orbit`` if ``finite``)."""
    needed = ("act", "sample", "check_latent") + (("orbit", "order", "elements") if finite else ())
    missing = [m for m in needed if not hasattr(group, m)]
    if missing:
        kind = "a finite group (Permutation, Cyclic, ...)" if finite else "a group (Permutation, Cyclic, SO3, O3, ...)"
        raise TypeError(
            f"{name} must be {kind}; {type(group).__name__} lacks {', '.join(missing)}"
        )
    return group


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


class Permutation:
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
        _check_batch(B)
        _check_generator(generator)
        if self.n is None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
            return LazyPermutations(B, seed)
        gdev = generator.device if generator is not None else "cpu"
        keys = torch.rand(B, self.n, generator=generator, device=gdev)
        return keys.argsort(dim=1).to(device if device is not None else gdev)

    def elements(self, device=None) -> torch.Tensor:
        """All :math:`n!` permutations as a ``(n!, n)`` index tensor (lexicographic order)."""
        n = self._require_n("elements")
        import itertools

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


def _restrict_to_mask(idx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Turn permutations of all ``n`` slots into permutations of the real nodes only."""
    B, n = idx.shape
    ar = torch.arange(n, device=idx.device).expand(B, n)
    pos = torch.empty_like(idx).scatter_(1, idx, ar)  # rank of each node in g
    keys = torch.where(mask, pos, n + ar)
    order = keys.argsort(dim=1, stable=True)  # real nodes in g-order, then padding ascending
    slots = (~mask).to(torch.int8).argsort(dim=1, stable=True)  # real slots ascending, then padding
    return torch.empty_like(idx).scatter_(1, slots, order)


class Cyclic:
    r"""The cyclic group :math:`C_N` shifting the last axis of ``(B, ..., N)`` latents.

    An element is an integer shift ``s``; :math:`(s\cdot z)_k = z_{(k-s) \bmod N}`
    (``torch.roll`` by ``s``). This is the regular representation, the layout of group
    convolution fibers (a ``c x N`` latent has ``c`` channels over the ``N`` rotations).

    Example
    -------
    >>> import torch
    >>> C = Cyclic(3)
    >>> C.orbit(torch.tensor([[[1.0, 2.0, 3.0]]]))[0, :, 0].tolist()
    [[1.0, 2.0, 3.0], [3.0, 1.0, 2.0], [2.0, 3.0, 1.0]]
    """

    is_finite = True

    def __init__(self, N: int):
        self.N = check_positive_int(N, "N")

    def __repr__(self) -> str:
        return f"Cyclic({self.N})"

    @property
    def order(self) -> int:
        return self.N

    def check_latent(self, z, name: str = "z") -> torch.Tensor:
        """Validate ``z`` of shape ``(B, ..., N)``."""
        check_tensor(z, name, min_ndim=2, expected=f"(B, c, N={self.N})")
        if z.shape[-1] != self.N:
            raise ValueError(
                f"{name} must have its last axis of size N={self.N} for Cyclic({self.N}), "
                f"expected (B, c, {self.N}), got {tuple(z.shape)}"
            )
        return z

    def sample(self, B: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``B`` uniformly random shifts in ``{0, ..., N-1}``: a long tensor ``(B,)``."""
        _check_batch(B)
        _check_generator(generator)
        gdev = generator.device if generator is not None else "cpu"
        s = torch.randint(0, self.N, (B,), generator=generator, device=gdev)
        return s.to(device if device is not None else gdev)

    def elements(self, device=None) -> torch.Tensor:
        """All shifts ``0..N-1``: ``(N,)``."""
        return torch.arange(self.N, device=device)

    def _index(self, s: torch.Tensor) -> torch.Tensor:
        k = torch.arange(self.N, device=s.device)
        return (k.unsqueeze(0) - s.unsqueeze(-1)) % self.N  # (B, N)

    def act(self, g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Shift the ``i``-th latent by ``g[i]`` along the last axis."""
        self.check_latent(z)
        if not isinstance(g, torch.Tensor):
            raise TypeError(f"g must be a (B,) integer tensor of shifts, got {type(g).__name__}")
        if g.is_floating_point() or g.is_complex() or g.dtype == torch.bool:
            raise TypeError(f"g must be an integer tensor of shifts, got {g.dtype}")
        if g.shape != (z.shape[0],):
            raise ValueError(f"g must have shape (B,) = ({z.shape[0]},) to match z, got {tuple(g.shape)}")
        idx = self._index(g.long().to(z.device))  # (B, N)
        idx = idx.view(z.shape[0], *([1] * (z.dim() - 2)), self.N).expand_as(z)
        return z.gather(-1, idx)

    def orbit(self, z: torch.Tensor) -> torch.Tensor:
        """All ``N`` shifts of each latent: ``(B, N, ..., N)``."""
        self.check_latent(z)
        idx = self._index(self.elements(z.device))  # (N shifts, N)
        return z[..., idx].movedim(-2, 1)

    def average(self, z: torch.Tensor) -> torch.Tensor:
        """Group average: the mean over the last axis, broadcast back."""
        self.check_latent(z)
        return z.mean(dim=-1, keepdim=True).expand_as(z)


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
    _check_generator(generator)
    gdev = generator.device if generator is not None else "cpu"
    keys = torch.rand(x.shape[0], generator=generator, device=gdev, dtype=torch.float64).to(x.device)
    order = (batch.to(torch.float64) + keys).argsort()
    return x[order], order


def to_dense_nodes(x: torch.Tensor, batch: torch.Tensor, size: int, max_num_nodes: int | None = None):
    r"""PyG-style node batch ``(x, batch, size)`` to dense latents ``(size, n, c)`` and a node mask.

    A thin checked wrapper of ``torch_geometric.utils.to_dense_batch``; the result is what
    :class:`Permutation`, :func:`~invlatent.projections.sort_projection` and the quotient
    functions take.

    Example
    -------
    >>> import torch
    >>> z, mask = to_dense_nodes(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([0, 0, 1]), 2)
    >>> z[..., 0].tolist(), mask.tolist()
    ([[1.0, 2.0], [3.0, 0.0]], [[True, True], [True, False]])
    """
    from torch_geometric.utils import to_dense_batch

    _check_sparse(x, batch, size)
    if max_num_nodes is not None:
        check_positive_int(max_num_nodes, "max_num_nodes")
    return to_dense_batch(x, batch, batch_size=size, max_num_nodes=max_num_nodes)


class CyclicFourier:
    r""":math:`C_N` in its Fourier (irreps) view: complex coefficients ``(B, ..., N)``.

    If :math:`\hat z = \operatorname{DFT}(z)` of a regular fiber, a shift by ``s`` multiplies
    frequency :math:`k` by the character :math:`e^{-2\pi i ks/N}`: the action is diagonal, one
    irrep per frequency. Elements are integer shifts ``(B,)`` exactly as for :class:`Cyclic`, so
    ``CyclicFourier(N).act(s, torch.fft.fft(z)) == torch.fft.fft(Cyclic(N).act(s, z))``.

    Example
    -------
    >>> import torch
    >>> z = torch.tensor([[[1.0, 2.0, 0.0, 0.0]]])
    >>> s = torch.tensor([1])
    >>> lhs = CyclicFourier(4).act(s, torch.fft.fft(z))
    >>> bool(torch.allclose(lhs, torch.fft.fft(Cyclic(4).act(s, z))))
    True
    """

    is_finite = True

    def __init__(self, N: int):
        self.N = check_positive_int(N, "N")
        self._cyclic = Cyclic(N)

    def __repr__(self) -> str:
        return f"CyclicFourier({self.N})"

    @property
    def order(self) -> int:
        return self.N

    def check_latent(self, z, name: str = "z") -> torch.Tensor:
        """Validate complex ``z`` of shape ``(B, ..., N)``."""
        check_tensor(z, name, min_ndim=2, expected=f"(B, c, N={self.N}) complex")
        if not z.is_complex():
            raise TypeError(f"{name} must be complex Fourier coefficients for CyclicFourier({self.N}), got {z.dtype}")
        if z.shape[-1] != self.N:
            raise ValueError(f"{name} must have its last axis of size N={self.N}, got {tuple(z.shape)}")
        return z

    def sample(self, B: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``B`` random shifts ``(B,)``, as :meth:`Cyclic.sample`."""
        return self._cyclic.sample(B, generator=generator, device=device)

    def elements(self, device=None) -> torch.Tensor:
        return torch.arange(self.N, device=device)

    def _characters(self, s: torch.Tensor, dtype) -> torch.Tensor:
        k = torch.arange(self.N, device=s.device, dtype=torch.float64)
        phase = -2 * math.pi * s.to(torch.float64).unsqueeze(-1) * k / self.N  # (B, N)
        return torch.polar(torch.ones_like(phase), phase).to(dtype)

    def act(self, g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r"""Multiply frequency ``k`` of the ``i``-th latent by :math:`e^{-2\pi i k g_i/N}`."""
        self.check_latent(z)
        if not isinstance(g, torch.Tensor) or g.is_floating_point() or g.is_complex() or g.dtype == torch.bool:
            raise TypeError(f"g must be a (B,) integer tensor of shifts, got {getattr(g, 'dtype', type(g).__name__)}")
        if g.shape != (z.shape[0],):
            raise ValueError(f"g must have shape (B,) = ({z.shape[0]},) to match z, got {tuple(g.shape)}")
        chi = self._characters(g.to(z.device), z.dtype)
        return z * chi.view(z.shape[0], *([1] * (z.dim() - 2)), self.N)

    def orbit(self, z: torch.Tensor) -> torch.Tensor:
        """All ``N`` shifts: ``(B, N, ..., N)``."""
        self.check_latent(z)
        chi = self._characters(self.elements(z.device), z.dtype)  # (N shifts, N)
        return z.unsqueeze(1) * chi.view(1, self.N, *([1] * (z.dim() - 2)), self.N)

    def average(self, z: torch.Tensor) -> torch.Tensor:
        """Group average: keep frequency 0, zero the rest."""
        self.check_latent(z)
        keep = torch.zeros(self.N, dtype=z.dtype, device=z.device)
        keep[0] = 1
        return z * keep


def _random_rotation(B: int, generator, dtype, device) -> torch.Tensor:
    from e3nn import o3

    gdev = generator.device if generator is not None else "cpu"
    q = torch.randn(B, 4, generator=generator, device=gdev, dtype=torch.float64)
    q = q / q.norm(dim=1, keepdim=True)
    return o3.quaternion_to_matrix(q).to(device=device if device is not None else gdev, dtype=dtype)


class SO3:
    r"""Rotations :math:`SO(3)` acting on e3nn ``Irreps`` latents ``(B, irreps.dim)``.

    An element is a rotation matrix ``R`` ``(B, 3, 3)``; it acts by the block-diagonal
    Wigner matrix ``irreps.D_from_matrix(R)``: :math:`z \mapsto D(R)\, z`.

    Example
    -------
    >>> import torch
    >>> G = SO3("1x0e + 1x1o")
    >>> R = G.sample(2, generator=torch.Generator().manual_seed(0))
    >>> z = torch.tensor([[1.0, 0.0, 0.0, 2.0]] * 2)
    >>> gz = G.act(R, z)
    >>> [round(float(v), 4) for v in gz[:, 1:].norm(dim=1)]   # vector norm kept
    [2.0, 2.0]
    >>> G.average(z).tolist()                                  # only the scalar survives
    [[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]
    """

    is_finite = False
    _with_inversion = False

    def __init__(self, irreps):
        from e3nn import o3

        try:
            self.irreps = o3.Irreps(irreps)
        except Exception as exc:  # e3nn raises several kinds
            raise ValueError(f"irreps must be an e3nn Irreps (or its string), got {describe(irreps)}: {exc}") from None
        if self.irreps.dim == 0:
            raise ValueError("irreps must have positive dimension, got an empty Irreps")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.irreps)!r})"

    def check_latent(self, z, name: str = "z") -> torch.Tensor:
        """Validate ``z`` of shape ``(B, irreps.dim)``."""
        check_tensor(z, name, ndim=2, expected=f"(B, irreps.dim={self.irreps.dim})")
        if z.shape[1] != self.irreps.dim:
            raise ValueError(
                f"{name} has {z.shape[1]} features but irreps {self.irreps} has dimension "
                f"{self.irreps.dim}; expected (B, {self.irreps.dim}), got {tuple(z.shape)}"
            )
        return z

    def sample(self, B: int, generator: torch.Generator | None = None, device=None, dtype=torch.float64) -> torch.Tensor:
        """``B`` Haar-random rotations ``(B, 3, 3)`` (unit quaternions from a Gaussian)."""
        _check_batch(B)
        _check_generator(generator)
        return _random_rotation(B, generator, dtype, device)

    def _check_element(self, g, z) -> torch.Tensor:
        if not isinstance(g, torch.Tensor) or not g.is_floating_point():
            raise TypeError(f"g must be a float tensor of (B, 3, 3) matrices, got {getattr(g, 'dtype', type(g).__name__)}")
        if g.shape != (z.shape[0], 3, 3):
            raise ValueError(f"g must have shape (B, 3, 3) = ({z.shape[0]}, 3, 3) to match z, got {tuple(g.shape)}")
        return g

    def D(self, g: torch.Tensor) -> torch.Tensor:
        """Wigner matrices ``(B, dim, dim)`` of the elements ``g`` (computed in float64).

        e3nn builds some constants in the default dtype, so the default dtype is float64
        while the matrices are built (restored afterwards): the action is then exact to
        ~1e-15 rather than ~1e-7.
        """
        old = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            return self.irreps.D_from_matrix(g.to(torch.float64))
        finally:
            torch.set_default_dtype(old)

    def act(self, g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r""":math:`z_i \mapsto D(g_i) z_i`."""
        self.check_latent(z)
        self._check_element(g, z)
        D = self.D(g).to(device=z.device, dtype=z.dtype)
        return torch.einsum("bij,bj->bi", D, z)

    def invariant_mask(self) -> torch.Tensor:
        """Bool ``(dim,)``: the coordinates fixed by the group (``0e``; also ``0o`` for SO(3))."""
        keep = []
        for mul, ir in self.irreps:
            fixed = ir.l == 0 and (ir.p == 1 or not self._with_inversion)
            keep += [fixed] * (mul * ir.dim)
        return torch.tensor(keep, dtype=torch.bool)

    def average(self, z: torch.Tensor) -> torch.Tensor:
        """Group average: the projection onto the invariant scalars (other coordinates set to 0)."""
        self.check_latent(z)
        return z * self.invariant_mask().to(z.device).to(z.dtype)


class O3(SO3):
    r"""Rotations and reflections :math:`O(3)` on e3nn ``Irreps`` latents ``(B, irreps.dim)``.

    Elements are orthogonal matrices ``(B, 3, 3)`` with determinant :math:`\pm 1`
    (``D_from_matrix`` applies the parity of each irrep).

    Example
    -------
    >>> import torch
    >>> G = O3("1x0o")
    >>> G.act(-torch.eye(3).unsqueeze(0), torch.tensor([[1.5]])).tolist()  # a pseudoscalar flips
    [[-1.5]]
    """

    _with_inversion = True

    def sample(self, B: int, generator: torch.Generator | None = None, device=None, dtype=torch.float64) -> torch.Tensor:
        """``B`` Haar-random elements of O(3): a random rotation times :math:`\\pm I`."""
        R = super().sample(B, generator=generator, device=device, dtype=dtype)
        gdev = generator.device if generator is not None else "cpu"
        sign = torch.randint(0, 2, (B,), generator=generator, device=gdev).to(R) * 2 - 1
        return R * sign.to(R.device).view(B, 1, 1)
