r"""Rotations :math:`SO(3)` and :math:`O(3)` acting on e3nn ``Irreps`` latents ``(B, irreps.dim)``."""

from __future__ import annotations

import warnings

import torch

from .._irreps import apply_rotation, check_irreps_latent, float64_default, parse_irreps
from ..quotient._rotation_search import kabsch_align, rotation_search
from .base import Group, check_batch_size, check_generator
from .._validation import describe

__all__ = ["SO3", "O3", "rotation_group"]


def _random_rotation(B: int, generator, dtype, device) -> torch.Tensor:
    from e3nn import o3

    gdev = generator.device if generator is not None else "cpu"
    q = torch.randn(B, 4, generator=generator, device=gdev, dtype=torch.float64)
    q = q / q.norm(dim=1, keepdim=True)
    return o3.quaternion_to_matrix(q).to(device=device if device is not None else gdev, dtype=dtype)


class SO3(Group):
    r"""Rotations :math:`SO(3)` acting on e3nn ``Irreps`` latents ``(B, irreps.dim)``.

    An element is a rotation matrix ``R`` ``(B, 3, 3)``; it acts by the block-diagonal
    Wigner matrix :math:`D(R)` (the matrix of ``irreps.D_from_matrix(R)``):
    :math:`z \mapsto D(R)\, z`, applied block by block in float64.

    :meth:`align` and :meth:`quotient_distance` are exact for irreps with :math:`l \le 1`
    (Kabsch on the ``l = 1`` copies; for :class:`O3` the better of :math:`R` and :math:`-R`).
    For higher :math:`l`, :meth:`quotient_distance` is **approximate**: a Kabsch-initialised
    search over rotations that returns an upper bound (the distance to one orbit point; see
    :func:`invlatent.projections.approx_quotient_distance`), and :meth:`align` raises
    ``NotImplementedError``; the invariants of :func:`~invlatent.complete_invariants` are exact.

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
        self.irreps = parse_irreps(irreps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.irreps)!r})"

    def check_latent(self, z, name: str = "z") -> torch.Tensor:
        """Validate ``z`` of shape ``(B, irreps.dim)``."""
        return check_irreps_latent(z, self.irreps, name)

    def sample(self, B: int, generator: torch.Generator | None = None, device=None, dtype=torch.float64) -> torch.Tensor:
        """``B`` Haar-random rotations ``(B, 3, 3)`` (unit quaternions from a Gaussian)."""
        check_batch_size(B)
        check_generator(generator)
        return _random_rotation(B, generator, dtype, device)

    def _check_element(self, g, z) -> torch.Tensor:
        if not isinstance(g, torch.Tensor) or not g.is_floating_point():
            raise TypeError(f"g must be a float tensor of (B, 3, 3) matrices, got {getattr(g, 'dtype', type(g).__name__)}")
        if g.shape != (z.shape[0], 3, 3):
            raise ValueError(f"g must have shape (B, 3, 3) = ({z.shape[0]}, 3, 3) to match z, got {tuple(g.shape)}")
        return g

    def D(self, g: torch.Tensor) -> torch.Tensor:
        """Wigner matrices ``(B, dim, dim)`` of the elements ``g`` (e3nn's ``D_from_matrix``, built in float64)."""
        with float64_default():
            return self.irreps.D_from_matrix(g.to(torch.float64))

    def act(self, g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r""":math:`z_i \mapsto D(g_i) z_i`."""
        self.check_latent(z)
        self._check_element(g, z)
        return self._act(g, z)

    def _act(self, g, z):
        return apply_rotation(z.to(torch.float64), self.irreps, g.to(z.device)).to(z.dtype)

    @property
    def invariant_irreps(self) -> list[str]:
        """The scalar irreps fixed by the group: ``["0e", "0o"]`` for SO(3), ``["0e"]`` for O(3)."""
        return ["0e"] if self._with_inversion else ["0e", "0o"]

    def invariant_mask(self) -> torch.Tensor:
        """Bool ``(dim,)``: the coordinates fixed by the group (``0e``; also ``0o`` for SO(3))."""
        keep = []
        for mul, ir in self.irreps:
            fixed = ir.l == 0 and (ir.p == 1 or not self._with_inversion)
            keep += [fixed] * (mul * ir.dim)
        return torch.tensor(keep, dtype=torch.bool)

    def average(self, z: torch.Tensor) -> torch.Tensor:
        """Group average: the projection onto the invariant scalars (other coordinates set to 0)."""
        return z * self.invariant_mask().to(z.device).to(z.dtype)

    def quotient_distance(self, z1: torch.Tensor, z2: torch.Tensor, *, steps: int = 30,
                          lr: float = 0.05) -> torch.Tensor:
        r""":math:`\min_R \lVert z_{1,i} - D(R) z_{2,i}\rVert` per pair, ``(B,)``: exact for ``lmax <= 1``,
        an **upper bound** otherwise.

        ``lmax <= 1``: by :meth:`align` (Kabsch), differentiable almost everywhere. ``lmax >= 2``:
        the best of the Kabsch rotation of the ``l <= 1`` part, the latent frames' rotations and
        the identity, refined by ``steps`` Adam steps of rate ``lr`` on the rotation
        (:func:`invlatent.projections.approx_quotient_distance`); detached (no gradient).

        Example
        -------
        >>> G = SO3("1x0e + 2x1o + 1x2e")
        >>> z = torch.randn(2, G.irreps.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> zR = G.act(G.sample(2, generator=torch.Generator().manual_seed(1)), z)
        >>> bool(G.quotient_distance(z, zR).max() < 1e-3)   # a rotated copy: ~0 (an upper bound)
        True
        """
        if self.irreps.lmax <= 1:
            return super().quotient_distance(z1, z2)
        return rotation_search(z1, z2, self.irreps, not self._with_inversion, steps, lr)

    def align(self, z1: torch.Tensor, z2: torch.Tensor):
        """``(aligned, g)`` by Kabsch on the ``l = 1`` copies (exact for ``lmax <= 1``)."""
        if self.irreps.lmax > 1:
            raise NotImplementedError(
                f"exact alignment for {type(self).__name__} is implemented for irreps with l <= 1 "
                f"(Kabsch); got lmax={self.irreps.lmax}. quotient_distance gives an upper bound "
                "(a Kabsch-initialised search); complete_invariants and irrep_norms are exact invariants."
            )
        return kabsch_align(z1, z2, self.irreps, self._with_inversion)


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


def rotation_group(group, kind: str = "SO3", *, name: str = "group", stacklevel: int = 3) -> SO3:
    """``group`` if it is an :class:`SO3`/:class:`O3` group; irreps (a string or ``o3.Irreps``, the old
    calling convention) build ``SO3``/``O3`` by ``kind`` with a ``DeprecationWarning`` (for one release)."""
    if isinstance(group, SO3):
        return group
    if isinstance(group, (str, list, tuple)) or type(group).__name__ == "Irreps":
        if kind not in ("SO3", "O3"):
            raise ValueError(f"group must be 'SO3' or 'O3', got {describe(kind)}")
        warnings.warn(f"passing irreps as {name} is deprecated: pass the group, e.g. {kind}(irreps)",
                      DeprecationWarning, stacklevel=stacklevel)
        return (O3 if kind == "O3" else SO3)(group)
    raise TypeError(f"{name} must be an SO3 or O3 group (e.g. SO3('2x1o')), got {type(group).__name__}")
