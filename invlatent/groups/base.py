r"""The group protocol: what every group acting on latents implements.

A *group acting on latents* is an object with the small interface below. Every projection,
metric and diagnostic of ``invlatent`` talks to groups only through it, so a user-defined
group that implements it (subclass :class:`Group` or write the methods yourself) works with
:func:`~invlatent.quotient_distance`, :func:`~invlatent.align`, :func:`~invlatent.max_filter`,
:func:`~invlatent.invariance_error`, :func:`~invlatent.retention` and the rest.

=============================================  ================================================
member                                         meaning
=============================================  ================================================
``is_finite``                                  ``True`` for finite groups
``check_latent(z, name="z")``                  validate the layout of ``z`` ``(B, *shape)``; return ``z``
``sample(B, generator=None, device=None)``     ``B`` random elements (one batch, any format)
``act(g, z)``                                  :math:`\rho(g_i) z_i` for every ``i``
``elements(device=None)``                      all elements as one batch (finite groups)
``orbit(z)``                                   :math:`(\rho(g) z_i)_{g\in G}`: ``(B, |G|, *shape)`` (finite)
``average(z)``                                 the Reynolds operator :math:`\int_G \rho(g) z\,dg`
``align(z1, z2)``                              ``(aligned, g)``: the point :math:`\rho(g^\star) z_2`
                                               of :math:`z_2`'s orbit closest to :math:`z_1`
``quotient_distance(z1, z2)``                  :math:`\min_g\lVert z_1-\rho(g) z_2\rVert`, ``(B,)`` (exact, or an
                                               upper bound where the group documents it: SO3/O3, ``l >= 2``)
``pairwise_quotient_distance(Z1, Z2, chunk)``  the ``(N1, N2)`` matrix (``Z2=None``: ``Z1`` vs itself)
``max_inner(z, w, template_orbit=None)``       :math:`\max_g \langle w_t, \rho(g) z_b\rangle`, ``(B, T)``
``template_orbit(w)``                          what ``max_inner`` may reuse for fixed templates
``argmax_inner(z, w)``                         ``(best, k)``: ``max_inner`` and the index ``k`` into
                                               ``elements()`` of the maximizing :math:`g` (finite)
``align_to_template(z, w)``                    :math:`\rho(g^\star_b) z_b`, :math:`g^\star_b` maximizing
                                               :math:`\langle w, \rho(g) z_b\rangle` (optional; default ``align``)
=============================================  ================================================

:class:`Group` implements everything after ``elements`` for a finite group from ``elements``
and ``act`` alone (one matmul against the whole orbit, then a max or min over the group
axis); built-in groups override the members where they know a faster or exact method (sorting
and assignment for :math:`S_n`, Kabsch for :math:`SO(3)`). The methods after ``check_latent``
assume valid input: the public functions (:func:`~invlatent.quotient_distance`, ...) check
once and then call them.

Example
-------
A custom finite group needs only ``check_latent``, ``sample``, ``act`` and ``elements``:

>>> import torch
>>> class Flip(Group):            # Z_2 flipping the sign of a vector
...     is_finite = True
...     def check_latent(self, z, name="z"):
...         return z
...     def elements(self, device=None):
...         return torch.tensor([1.0, -1.0], device=device)
...     def sample(self, B, generator=None, device=None):
...         return self.elements(device)[torch.randint(2, (B,), generator=generator)]
...     def act(self, g, z):
...         return g.view(-1, 1) * z
>>> z1, z2 = torch.tensor([[1.0, 2.0]]), torch.tensor([[-1.0, -2.0]])
>>> float(Flip().quotient_distance(z1, z2))
0.0
"""

from __future__ import annotations

import torch
from .._validation import all_finite, describe

__all__ = ["Group", "check_group", "check_group_latent"]

#: Largest number of elements of a ``(b, T, |G|)`` inner-product block computed at once (64 MB in float32).
_MAX_INTERMEDIATE = 1 << 24

_REQUIRED = ("check_latent", "sample", "act", "is_finite")
#: Methods a Group subclass must override (the base class has only stubs raising NotImplementedError).
_STUBS = ("check_latent", "sample", "act")
_FINITE = ("elements", "orbit", "align", "quotient_distance", "max_inner", "template_orbit")


def check_group(group, name: str = "group", *, finite: bool = False):
    """Return ``group`` if it implements the group protocol (and is finite, if ``finite``).

    Raises ``TypeError`` naming the missing members (or saying the group is infinite). For a
    :class:`Group` subclass, a protocol method left as the base class's stub (``check_latent``,
    ``sample``, ``act``; ``elements`` too when ``finite``) counts as missing.
    """
    missing = [m for m in _REQUIRED if not hasattr(group, m)]
    if missing:
        raise TypeError(
            f"{name} must be a group (Permutation, Cyclic, SO3, O3, ImageRotation or an "
            f"invlatent.groups.Group); {type(group).__name__} lacks {', '.join(missing)}"
        )
    stubs = _base_stubs(group, _STUBS)
    if stubs:
        raise TypeError(f"{name}: {type(group).__name__} subclasses Group but does not implement "
                        f"{', '.join(stubs)} (the base class has only stubs for them)")
    if finite:
        if not group.is_finite:
            raise TypeError(f"{name} must be a finite group (Permutation, Cyclic, ...), got {describe(group)}")
        missing = [m for m in _FINITE if not hasattr(group, m)] + _base_stubs(group, ("elements",))
        if missing:
            raise TypeError(f"{name} must be a finite group; {type(group).__name__} lacks {', '.join(missing)}")
    return group


def _base_stubs(group, names) -> list[str]:
    """The members of ``names`` that ``group`` (a :class:`Group` subclass) inherits unchanged from :class:`Group`."""
    if not isinstance(group, Group):
        return []
    return [m for m in names if getattr(type(group), m, None) is getattr(Group, m)]


def check_group_latent(group, z, name: str = "z"):
    """``group.check_latent(z, name)``, then NaN and inf, whatever the group's own check looks for.

    The public functions call this once for each latent argument (``ValueError`` naming it).
    """
    group.check_latent(z, name)
    if isinstance(z, torch.Tensor) and (z.is_floating_point() or z.is_complex()) and z.numel() > 0:
        if not torch.compiler.is_compiling() and not all_finite(z):
            raise ValueError(f"{name} contains NaN or inf")
    return z


def template_alignment(group, z: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """``group.align_to_template(z, template)``, or, for a group written to the protocol by hand
    without that optional method, :meth:`Group.align` against the template broadcast over the
    batch (the default the base class implements)."""
    method = getattr(group, "align_to_template", None)
    if method is not None:
        return method(z, template)
    w = template.to(dtype=z.dtype, device=z.device).unsqueeze(0).expand_as(z)
    return group.align(w, z)[0]


def check_batch_size(B, name: str = "B") -> int:
    """``B`` must be a positive int (the number of elements to draw)."""
    if not isinstance(B, int) or isinstance(B, bool):
        raise TypeError(f"{name} must be a positive int (number of elements), got {type(B).__name__}")
    if B <= 0:
        raise ValueError(f"{name} must be a positive int (number of elements), got {B}")
    return B


def check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


class Group:
    r"""Base class of the groups acting on latents (see the module docstring for the protocol).

    Subclasses implement ``check_latent``, ``sample`` and ``act``; finite groups also
    ``elements``. The rest has generic finite-group implementations here:

    * ``orbit`` -- every element applied to every latent;
    * ``average`` -- the orbit mean;
    * ``align`` / ``quotient_distance`` -- :math:`\arg\min_g \lVert z_1 - \rho(g) z_2\rVert`
      over the orbit (exact);
    * ``pairwise_quotient_distance`` -- one matmul of ``Z1`` against the orbits of ``Z2``
      (:math:`\lVert a-b\rVert^2 = \lVert a\rVert^2+\lVert b\rVert^2-2\langle a,b\rangle`) for real
      latents, the small distances recomputed by the direct difference
      (:func:`exact_small_distances`), otherwise pair by pair in chunks;
    * ``max_inner`` -- one matmul against the group-transformed templates and a max over the group.

    Infinite groups override ``align``/``quotient_distance`` (and raise in ``elements``).
    """

    is_finite: bool = True

    # -- to implement -----------------------------------------------------------------------
    def check_latent(self, z, name: str = "z") -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, B: int, generator: torch.Generator | None = None, device=None):  # pragma: no cover
        raise NotImplementedError

    def act(self, g, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def elements(self, device=None):
        raise TypeError(f"{self!r} is not a finite group: it has no list of elements")

    # -- generic finite-group implementations --------------------------------------------------
    @property
    def order(self) -> int:
        """:math:`|G|` (finite groups)."""
        return len(self.elements())

    def orbit(self, z: torch.Tensor) -> torch.Tensor:
        """All elements applied to every latent: ``(B, |G|, *latent_shape)``."""
        els = self.elements(z.device)
        G, B = len(els), z.shape[0]
        g = els.repeat(B, *([1] * (els.dim() - 1)))  # element k of latent b at b*G + k
        return self.act(g, z.repeat_interleave(G, dim=0)).reshape(B, G, *z.shape[1:])

    def average(self, z: torch.Tensor) -> torch.Tensor:
        r"""Group average :math:`\frac{1}{|G|}\sum_g \rho(g) z` (the orthogonal projection onto the fixed subspace)."""
        if not self.is_finite:
            raise NotImplementedError(f"{self!r} has no group average; implement average() for it")
        return self.orbit(z).mean(dim=1)

    def align(self, z1: torch.Tensor, z2: torch.Tensor):
        """``(aligned, g)``: the orbit point of ``z2`` closest to ``z1``, and its element (exact)."""
        if not self.is_finite:
            raise NotImplementedError(f"{self!r} has no alignment; implement align() for it")
        orb = self.orbit(z2)  # (B, |G|, *shape)
        diff = (orb - z1.unsqueeze(1)).flatten(2).abs().square().sum(-1)  # abs: complex latents too
        k = diff.argmin(dim=1)
        aligned = orb[torch.arange(z1.shape[0], device=z1.device), k]
        return aligned, self.elements(z1.device)[k]

    def quotient_distance(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        r""":math:`\min_g \lVert z_{1,i} - \rho(g) z_{2,i}\rVert` per pair, ``(B,)``."""
        aligned, _ = self.align(z1, z2)
        return (z1 - aligned).flatten(1).norm(dim=1)

    def pairwise_quotient_distance(self, Z1: torch.Tensor, Z2: torch.Tensor | None, chunk_size: int = 4096) -> torch.Tensor:
        """``(N1, N2)`` quotient distances; ``Z2=None`` compares ``Z1`` with itself."""
        Zb = Z1 if Z2 is None else Z2
        if self.is_finite and not Z1.is_complex():
            a = Z1.flatten(1)
            orb = self.orbit(Zb).flatten(2)  # (N2, G, D)
            N1, (N2, G) = a.shape[0], orb.shape[:2]
            best = (a @ orb.reshape(N2 * G, -1).T).view(N1, N2, G).amax(dim=2)
            sq = a.square().sum(1, keepdim=True) + Zb.flatten(1).square().sum(1).unsqueeze(0) - 2 * best
            return exact_small_distances(sq, Z1, Z2, self.quotient_distance, chunk_size)
        return pairwise_by_pairs(self.quotient_distance, Z1, Z2, chunk_size)

    def knn(self, Z: torch.Tensor, k: int, *, mask: torch.Tensor | None = None, block_size: int = 256,
            stats: dict | None = None, **options):
        """Exact ``k`` nearest neighbours in the quotient (``(N, k)`` distances and indices, ties by
        index), from :meth:`pairwise_quotient_distance` one block of rows at a time. Groups with a
        faster exact search (:class:`~invlatent.groups.Permutation`) override it."""
        from .._blockwise import knn_by_blocks

        if mask is not None:
            raise ValueError(f"mask is only defined for node-set groups (Permutation), got group {self!r}")
        return knn_by_blocks(Z, k, lambda rows: self.pairwise_quotient_distance(rows, Z), block_size, stats)

    def template_orbit(self, templates: torch.Tensor) -> torch.Tensor | None:
        """What :meth:`max_inner` can reuse for fixed templates (here: their orbit)."""
        return self.orbit(templates)

    def max_inner(self, z: torch.Tensor, templates: torch.Tensor, template_orbit: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`\max_{g} \langle w_t, \rho(g) z_b\rangle` as ``(B, T)`` (for an isometric action)."""
        if not self.is_finite:
            raise TypeError(f"max filters need a finite group, got {self!r}")
        orb = self.orbit(templates) if template_orbit is None else template_orbit
        T, G = orb.shape[:2]
        # group-major columns: max over g = elementwise max of |G| contiguous (b, T) slices
        flat = orb.transpose(0, 1).reshape(G * T, -1).T
        step = max(1, _MAX_INTERMEDIATE // (T * G))  # rows per block of (b, |G|, T) values
        zf = z.flatten(1)
        if zf.shape[0] <= step:
            return (zf @ flat).view(-1, G, T).amax(dim=1)
        starts = range(0, zf.shape[0], step)
        return torch.cat([(zf[i:i + step] @ flat).view(-1, G, T).amax(dim=1) for i in starts])

    def argmax_inner(self, z: torch.Tensor, templates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``(best, k)``: :math:`\max_g \langle w_t, \rho(g) z_b\rangle` ``(B, T)`` and the index ``k``
        ``(B, T)`` into :meth:`elements` of the maximizing element (the first on ties).

        Generic finite-group version: the orbit of ``z`` (in blocks) against the templates. The
        real part of the inner product for complex latents. Not differentiable.
        """
        if not self.is_finite:
            raise TypeError(f"argmax_inner needs a finite group, got {self!r}")
        with torch.no_grad():
            wf = templates.detach().to(dtype=z.dtype, device=z.device).flatten(1)
            T, D = wf.shape
            wf = wf.conj().T if wf.is_complex() else wf.T
            G = self.order
            step = max(1, _MAX_INTERMEDIATE // (G * max(T, D)))  # bounded (b, |G|, D) orbit and (b, |G|, T) block
            vals, idx = [], []
            for i in range(0, z.shape[0], step):
                ip = self.orbit(z[i:i + step].detach()).flatten(2) @ wf  # (b, |G|, T)
                v, k = (ip.real if ip.is_complex() else ip).max(dim=1)
                vals.append(v)
                idx.append(k)
            if not vals:
                return z.new_zeros(0, T).real, torch.zeros(0, T, dtype=torch.long, device=z.device)
            return torch.cat(vals), torch.cat(idx)

    def align_to_template(self, z: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        r"""Every ``z_b`` moved to the point of its orbit closest to ``template`` (shape ``latent_shape``).

        Default: :meth:`align` against the template broadcast over the batch (exact for every
        group with an exact ``align``); groups with a faster argmax override it.
        """
        w = template.to(dtype=z.dtype, device=z.device).unsqueeze(0).expand_as(z)
        return self.align(w, z)[0]


def pairwise_by_pairs(distance, Z1: torch.Tensor, Z2: torch.Tensor | None, chunk_size: int) -> torch.Tensor:
    """All pairs through a per-pair ``distance(z1, z2) -> (P,)``, in chunks (upper triangle when ``Z2`` is None)."""
    N1 = Z1.shape[0]
    symmetric = Z2 is None
    if Z2 is None:
        Z2 = Z1
        i1, i2 = torch.triu_indices(N1, N1, offset=1)
    else:
        i1, i2 = torch.meshgrid(torch.arange(N1), torch.arange(Z2.shape[0]), indexing="ij")
        i1, i2 = i1.reshape(-1), i2.reshape(-1)
    i1, i2 = i1.to(Z1.device), i2.to(Z1.device)
    out = [distance(Z1[i1[s:s + chunk_size]], Z2[i2[s:s + chunk_size]]) for s in range(0, len(i1), chunk_size)]
    vals = torch.cat(out) if out else Z1.new_zeros(0).real
    if not symmetric:
        return vals.view(N1, Z2.shape[0])
    D = vals.new_zeros(N1, N1)
    return D.index_put((i1, i2), vals).index_put((i2, i1), vals)


def exact_small_distances(sq: torch.Tensor, Z1: torch.Tensor, Z2: torch.Tensor | None, distance,
                          chunk_size: int = 4096) -> torch.Tensor:
    r"""Distances from squared distances of the one-matmul form, with the small ones made exact.

    ``sq`` ``(N1, N2)`` holds :math:`\hat s = \lVert a\rVert^2 + \lVert b\rVert^2 - 2\max_g\langle a,
    \rho(g) b\rangle` as computed in floating point. Its absolute error is at most
    :math:`\gamma(\lVert a\rVert^2+\lVert b\rVert^2)` with :math:`\gamma = 2(D+2)u` (:math:`D` the latent
    size, :math:`u` the unit roundoff of the dtype; the standard bound for inner products), so
    :math:`\sqrt{\hat s}` is worthless near zero: its error there is about
    :math:`\sqrt{u}\,\lVert z\rVert`. Every pair with
    :math:`\hat s \le \tau(\lVert a\rVert^2+\lVert b\rVert^2)`, :math:`\tau = \gamma(1 + u^{-1/2})`, is
    recomputed by ``distance(z1, z2) -> (P,)`` (the group's ``quotient_distance``, by direct
    differences), in chunks of ``chunk_size`` pairs; every other entry then has relative error at
    most :math:`\gamma/(\tau-\gamma) = \sqrt{u}` (float64 :math:`1.1\cdot 10^{-8}`, float32
    :math:`2.4\cdot 10^{-4}`). With ``Z2 is None`` the diagonal is exactly 0 and the matrix exactly
    symmetric (upper triangle mirrored).

    Example
    -------
    >>> import torch
    >>> from invlatent import Cyclic
    >>> Z = 1e4 + torch.tensor([[[0.0, 1.0, 2.0]], [[2.0, 0.0, 1.0 + 1e-9]]], dtype=torch.float64)
    >>> b = Z.flatten(1).square().sum(1)
    >>> sq = b[:, None] + b[None, :] - 2 * (Z.flatten(1) @ Z.flatten(1).T)   # no group: a stand-in
    >>> D = exact_small_distances(sq, Z, None, Cyclic(3).quotient_distance)
    >>> D.diagonal().tolist(), f"{float(D[0, 1]):.1e}"
    ([0.0, 0.0], '1.0e-09')
    """
    symmetric = Z2 is None
    Zb = Z1 if Z2 is None else Z2
    real = sq.real if sq.is_complex() else sq
    u = torch.finfo(real.dtype).eps / 2
    gamma = 2 * (Z1[0].numel() + 2) * u
    tau = gamma * (1 + u ** -0.5)
    with torch.no_grad():
        scale = Z1.detach().flatten(1).abs().square().sum(1)[:, None] + Zb.detach().flatten(1).abs().square().sum(1)
        small = real.detach() <= tau * scale.to(real.dtype)
        if symmetric:
            small = small.triu(diagonal=1)
            eye = torch.eye(sq.shape[0], dtype=torch.bool, device=sq.device)
    if symmetric:
        real = real.masked_fill(eye, 0)
    d = torch.where(real > 0, real.clamp_min(torch.finfo(real.dtype).tiny).sqrt(), torch.zeros_like(real))
    i, j = small.nonzero(as_tuple=True)
    if len(i):
        vals = torch.cat([distance(Z1[i[s:s + chunk_size]], Zb[j[s:s + chunk_size]])
                          for s in range(0, len(i), chunk_size)]).to(d.dtype)
        d = d.index_put((i, j), vals)
    if symmetric:
        upper = d.triu(diagonal=1)
        d = upper + upper.T
    return d
