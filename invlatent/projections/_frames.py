r"""Canonical frames for 3D rotations: PCA frames, canonicalisation, frame averaging.

A **frame** of a point cloud :math:`X` is an orthogonal matrix :math:`F(X)` (rows = axes)
that turns with the cloud, :math:`F(R X) = F(X) R^\top`. For an equivariant latent
:math:`z(RX) = D(R)\, z(X)` (e3nn irreps), the latent **expressed in the frame**

.. math::

    c(z, X) = D(F(X))\, z \qquad\Rightarrow\qquad c(z(RX), RX) = D(F(X)) D(R)^{-1} D(R)\, z(X) = c(z(X), X)

is invariant: a canonical pose (a cross-section of the orbits). The PCA frame uses the
eigenvectors of the (weighted, centred) second moment, ordered by decreasing eigenvalue;
each eigenvector is only defined up to sign, fixed here by the sign of the third moment
:math:`\sum_i w_i (e_k\cdot r_i)^3` (``proper=True`` takes :math:`e_3 = e_1\times e_2` instead,
so :math:`F \in SO(3)` and mirror images stay distinct). Where eigenvalues are equal or
third moments vanish (symmetric molecules) the frame is ill-defined and the canonical form
jumps: the price of a cross-section for a group with no isometric one.

**Frame averaging** (Puny et al.) averages over the whole *set* of frames instead of
choosing one: the :math:`2^3` sign choices of the PCA axes (4 with ``proper=True``),

.. math::

    \langle z\rangle_{\mathcal F}(X) = \frac{1}{|\mathcal F(X)|}\sum_{F\in\mathcal F(X)} D(F)\, z ,

which is invariant without any sign rule, but averages away every component that is odd
under an axis flip (e.g. all of ``1o`` for the 8-element frame).

Frames may be computed from the **input** coordinates (:func:`pca_frame` of ``pos``) or from
the **latent** itself (:func:`latent_frame`, from its ``l = 1`` vectors): the latter makes a
projection of the latent alone, comparable with the others of :mod:`invlatent.projections`.

Example
-------
>>> import torch
>>> from e3nn import o3
>>> g = torch.Generator().manual_seed(0)
>>> X = torch.randn(4, 6, 3, generator=g, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
>>> R = o3.rand_matrix(4, dtype=torch.float64)
>>> F, FR = pca_frame(X), pca_frame(X @ R.transpose(1, 2))
>>> bool(torch.allclose(FR, F @ R.transpose(1, 2), atol=1e-8))      # the frame turns with the cloud
True
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .._irreps import apply_rotation as _apply_rotation
from .._irreps import check_irreps_latent as _check_latent
from .._irreps import wigner_blocks
from .._irreps import parse_irreps as _irreps
from .._validation import check_mask, check_tensor
from ..groups._rotation import rotation_group
from ..groups.base import check_group_latent
from ..quotient._rotation_search import (_frame_set, _latent_frame, _pca_frame, _sign, _vectors,  # noqa: F401
                                         _weights)

__all__ = [
    "pca_frame",
    "frame_set",
    "latent_frame",
    "canonicalize",
    "frame_average",
    "wigner_blocks",
    "apply_rotation",
    "PCACanonicalization",
    "FrameAveraging",
    "LatentFrameCanonicalization",
    "approx_quotient_distance",
]


def _check_frames(frame, B, name="frame"):
    check_tensor(frame, name, min_ndim=3, expected="(B, 3, 3) or (B, K, 3, 3)")
    if frame.shape[0] != B or frame.shape[-2:] != (3, 3):
        raise ValueError(f"{name} must have shape ({B}, 3, 3) or ({B}, K, 3, 3), got {tuple(frame.shape)}")
    return frame


def _moments(points, mask, weights):
    """The normalised point weights ``(B, n)`` of checked ``points``, ``mask`` and ``weights``."""
    check_tensor(points, "points", ndim=3, shape=(None, None, 3), expected="(B, n, 3)")
    check_mask(mask, points, z_name="points")
    if weights is not None:
        check_tensor(weights, "weights", ndim=2, shape=points.shape[:2], expected="(B, n)")
        if (weights < 0).any():
            raise ValueError("weights must be non-negative")
    return _weights(points, mask, weights)


def pca_frame(points: torch.Tensor, mask: torch.Tensor | None = None, weights: torch.Tensor | None = None, *,
              proper: bool = True, center: bool = True) -> torch.Tensor:
    r"""Canonical PCA frame of each point cloud, signs fixed by third moments.

    Parameters
    ----------
    points : Tensor, shape ``(B, n, 3)``
    mask : BoolTensor, shape ``(B, n)``, optional
        ``True`` for real points (padding ignored).
    weights : Tensor, shape ``(B, n)``, optional
        Non-negative point weights (e.g. atomic masses); uniform by default.
    proper : bool
        ``True``: :math:`e_3 = e_1 \times e_2`, the frame is a rotation (``SO(3)``-canonical);
        ``False``: every sign from its third moment (``O(3)``-canonical, mirror images merge).
    center : bool
        Subtract the weighted centroid first (``False`` for vectors about the origin).

    Returns
    -------
    Tensor, shape ``(B, 3, 3)``: rows are the axes; ``points @ F.T`` are canonical coordinates.

    Example
    -------
    >>> import torch
    >>> X = torch.tensor([[[3.0, 0, 0], [-1.0, 0, 0], [-1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -0.5, 0]]])
    >>> pca_frame(X).round(decimals=3).abs().tolist()[0][0]   # first axis: x
    [1.0, 0.0, 0.0]
    """
    return _pca_frame(points, _moments(points, mask, weights), proper, center)


def frame_set(points: torch.Tensor, mask: torch.Tensor | None = None, weights: torch.Tensor | None = None, *,
              proper: bool = True, center: bool = True) -> torch.Tensor:
    r"""The PCA frame set of Puny et al.: all sign choices of the principal axes.

    Returns
    -------
    Tensor, shape ``(B, K, 3, 3)`` with ``K = 4`` (``proper=True``, rotations only) or ``8``.

    Example
    -------
    >>> import torch
    >>> X = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0))
    >>> F = frame_set(X)
    >>> F.shape, bool(torch.allclose(torch.linalg.det(F), torch.ones(2, 4), atol=1e-5))
    (torch.Size([2, 4, 3, 3]), True)
    """
    return _frame_set(points, _moments(points, mask, weights), proper, center)


def latent_frame(z: torch.Tensor, irreps, *, proper: bool = True) -> torch.Tensor:
    r"""PCA frame of the latent's own ``l = 1`` vectors (about the origin), ``(B, 3, 3)``.

    Needs at least two linearly independent ``l = 1`` vectors for a well-defined frame. For
    ``1o`` vectors the third-moment sign rule is parity-odd, so with ``proper=False`` the
    canonical form is also invariant to the inversion.

    Example
    -------
    >>> import torch
    >>> from e3nn import o3
    >>> z = torch.randn(3, 2 + 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> R = o3.rand_matrix(3, dtype=torch.float64)
    >>> D = o3.Irreps("2x0e + 3x1o").D_from_matrix(R)
    >>> F, FR = latent_frame(z, "2x0e + 3x1o"), latent_frame(torch.einsum("bij,bj->bi", D, z), "2x0e + 3x1o")
    >>> bool(torch.allclose(FR, F @ R.transpose(1, 2), atol=1e-5))
    True
    """
    irreps = _irreps(irreps)
    _check_latent(z, irreps)
    return _latent_frame(z, irreps, proper)


def apply_rotation(z: torch.Tensor, irreps, R: torch.Tensor) -> torch.Tensor:
    r""":math:`D(R)\, z` for one orthogonal matrix per latent, block by block (parity included).

    Same result as ``irreps.D_from_matrix(R) @ z`` without forming the ``(B, dim, dim)``
    matrix. ``R`` has shape ``(B, 3, 3)`` (or ``(B, K, 3, 3)``: then ``z`` is broadcast to
    ``(B, K, dim)``). The one implementation is shared with :class:`~invlatent.groups.SO3`.
    """
    return _apply_rotation(z, _irreps(irreps), R)


def canonicalize(z: torch.Tensor, irreps, frame: torch.Tensor) -> torch.Tensor:
    r"""Express each latent in its frame: :math:`c = D(F)\, z`.

    Parameters
    ----------
    z : Tensor, shape ``(B, irreps.dim)``
    irreps : e3nn Irreps (or string)
    frame : Tensor, shape ``(B, 3, 3)``
        From :func:`pca_frame` (input coordinates) or :func:`latent_frame`.

    Returns
    -------
    Tensor, shape ``(B, irreps.dim)``.
    """
    irreps = _irreps(irreps)
    _check_latent(z, irreps)
    _check_frames(frame, z.shape[0])
    if frame.dim() != 3:
        raise ValueError(f"frame must have shape (B, 3, 3), got {tuple(frame.shape)}")
    return _apply_rotation(z, irreps, frame)


def frame_average(z: torch.Tensor, irreps, frames: torch.Tensor) -> torch.Tensor:
    r"""Average the latent over a frame set: :math:`\frac1K \sum_k D(F_k)\, z`.

    Parameters
    ----------
    z : Tensor, shape ``(B, irreps.dim)``
    frames : Tensor, shape ``(B, K, 3, 3)`` (from :func:`frame_set`)

    Returns
    -------
    Tensor, shape ``(B, irreps.dim)``.
    """
    irreps = _irreps(irreps)
    _check_latent(z, irreps)
    _check_frames(frames, z.shape[0], "frames")
    if frames.dim() != 4:
        raise ValueError(f"frames must have shape (B, K, 3, 3), got {tuple(frames.shape)}")
    return _apply_rotation(z, irreps, frames).mean(1)


def _check_points_for(z, points, mask, weights, irreps):
    """Check the input of the frame modules; return the normalised point weights ``(B, n)``."""
    w = _moments(points, mask, weights)
    _check_latent(z, irreps)
    if points.shape[0] != z.shape[0]:
        raise ValueError(f"points must have shape (B, n, 3) with B = {z.shape[0]} (one cloud per latent z), "
                         f"got {tuple(points.shape)}")
    return w


class PCACanonicalization(nn.Module):
    """Module form of :func:`canonicalize` with the :func:`pca_frame` of the input coordinates.

    ``forward(z (B, dim), points (B, n, 3), mask=None, weights=None)`` -> ``(B, dim)``.
    """

    def __init__(self, irreps, proper: bool = True):
        super().__init__()
        self.irreps, self.proper = _irreps(irreps), proper

    def forward(self, z, points, mask=None, weights=None):
        w = _check_points_for(z, points, mask, weights, self.irreps)
        return _apply_rotation(z, self.irreps, _pca_frame(points, w, self.proper, center=True))


class FrameAveraging(nn.Module):
    """Module form of :func:`frame_average` over the PCA :func:`frame_set` of the input coordinates."""

    def __init__(self, irreps, proper: bool = True):
        super().__init__()
        self.irreps, self.proper = _irreps(irreps), proper

    def forward(self, z, points, mask=None, weights=None):
        w = _check_points_for(z, points, mask, weights, self.irreps)
        return _apply_rotation(z, self.irreps, _frame_set(points, w, self.proper, center=True)).mean(1)


class LatentFrameCanonicalization(nn.Module):
    """Module form of :func:`canonicalize` with the :func:`latent_frame` (a projection of ``z`` alone)."""

    def __init__(self, irreps, proper: bool = True):
        super().__init__()
        self.irreps, self.proper = _irreps(irreps), proper

    def forward(self, z):
        _check_latent(z, self.irreps)
        return _apply_rotation(z, self.irreps, _latent_frame(z, self.irreps, self.proper))


def approx_quotient_distance(z1: torch.Tensor, z2: torch.Tensor, group, *, steps: int = 30, lr: float = 0.05,
                             proper: bool | None = None) -> torch.Tensor:
    r"""Upper bound on :math:`\min_{R} \lVert z_1 - D(R) z_2\rVert` for irreps with any ``lmax``.

    The checked form of ``group.quotient_distance(z1, z2, steps=steps, lr=lr)``
    (:meth:`invlatent.groups.SO3.quotient_distance`): exact for ``lmax <= 1`` (Kabsch,
    :func:`invlatent.quotient.align`); with ``l >= 2`` parts the minimum over :math:`SO(3)` (or
    :math:`O(3)`) is found numerically: start from the best of the Kabsch rotation of the
    ``l <= 1`` part (exact for it), the frame-to-frame rotations :math:`F_1^\top S F_2`
    (:func:`latent_frame`, all sign choices :math:`S`) and the identity, then ``steps`` Adam steps
    on :math:`R \exp([\omega]_\times)`. Batched over pairs. The result is never below the true
    quotient distance (it is the distance to one orbit point).

    Parameters
    ----------
    z1, z2 : Tensor, shape ``(P, group.irreps.dim)``
        Pairs (same shape).
    group : :class:`~invlatent.groups.SO3` or :class:`~invlatent.groups.O3`
        Irreps (the old ``approx_quotient_distance(z1, z2, irreps, proper=...)``) still work for
        one release, with a ``DeprecationWarning``.
    steps, lr : the local search (Adam on the rotation; unused for ``lmax <= 1``).

    Returns
    -------
    Tensor, shape ``(P,)`` (detached).

    Example
    -------
    >>> import torch
    >>> from invlatent import SO3
    >>> G = SO3("1x0e + 2x1o + 1x2e")
    >>> z = torch.randn(3, G.irreps.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> zR = G.act(G.sample(3, generator=torch.Generator().manual_seed(1)), z)  # rotated copies
    >>> bool(approx_quotient_distance(z, zR, G).max() < 1e-3)
    True
    """
    if proper is not None:
        warnings.warn("proper= is deprecated: pass SO3(irreps) (proper) or O3(irreps)", DeprecationWarning,
                      stacklevel=2)
    group = rotation_group(group, "SO3" if proper in (None, True) else "O3", stacklevel=3)
    check_group_latent(group, z1, "z1")
    check_group_latent(group, z2, "z2")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    return group.quotient_distance(z1, z2, steps=steps, lr=lr).detach()
