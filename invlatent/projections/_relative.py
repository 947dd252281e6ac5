r"""Relative representations and Gram/MDS representations of irreps latents.

**Relative representations** (Moschella et al.) describe a latent by its cosine similarities
to a fixed set of anchor latents :math:`a_1, \dots, a_K`:

.. math::

    r(z) = \Big(\frac{\langle z, a_k\rangle}{\lVert z\rVert\, \lVert a_k\rVert}\Big)_{k=1}^K .

They are invariant to a **global** isometry or rescaling of the latent space (the same
:math:`Q` applied to every latent *and* every anchor) -- the symmetry between two training
runs -- but **not** to a per-object group action :math:`z \mapsto \rho(g) z` with fixed
anchors. Applied after an invariant projection they are invariant to both.

**Gram / MDS representations** (the TinvNN idea, Zhang et al.): a set of ``m`` vectors
:math:`V \in \mathbb R^{m\times 3}` (here the ``l = 1`` copies of an irreps latent) has the
:math:`O(3)`-invariant Gram matrix :math:`G = V V^\top`, complete for :math:`V` up to
:math:`O(3)`. Classical multidimensional scaling turns :math:`G` back into coordinates
:math:`X = U_3 \Lambda_3^{1/2}` (top-3 eigenpairs), with :math:`X X^\top = G` -- invariant,
and distance-preserving *within* the set -- once the sign of each eigenvector is fixed (here
by its third moment, as in :func:`invlatent.frames.pca_frame`; TinvNN's exact rule is not
reproduced). ``l = 0`` scalars are kept as they are; ``l >= 2`` parts are not represented.

Example
-------
>>> import torch
>>> z = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
>>> relative_projection(z, anchors=torch.tensor([[1.0, 1.0]])).round(decimals=4).tolist()
[[0.7071], [0.7071]]
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_tensor, describe
from ._frames import _check_latent, _irreps, _sign, _vectors

__all__ = ["relative_projection", "RelativeProjection", "gram_mds", "gram_mds_projection", "GramMDSProjection"]


def relative_projection(z: torch.Tensor, anchors: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    r"""Cosine similarity of every latent to every anchor, ``(B, D), (K, D) -> (B, K)``.

    Parameters
    ----------
    z : Tensor, shape ``(B, D)``
    anchors : Tensor, shape ``(K, D)``
        Anchor latents (e.g. the codes of ``K`` training molecules), same dtype as ``z``.
    eps : float
        Guards the division for zero vectors.

    Example
    -------
    >>> import torch
    >>> z = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    >>> A = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    >>> Q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(2)))
    >>> bool(torch.allclose(relative_projection(z @ Q.T, A @ Q.T), relative_projection(z, A), atol=1e-5))
    True
    """
    check_tensor(z, "z", ndim=2, expected="(B, D)")
    check_tensor(anchors, "anchors", ndim=2, expected="(K, D)")
    if anchors.shape[1] != z.shape[1]:
        raise ValueError(f"anchors must have shape (K, {z.shape[1]}) to match z, got {tuple(anchors.shape)}")
    if anchors.dtype != z.dtype:
        raise TypeError(f"anchors must have the dtype of z ({z.dtype}), got {anchors.dtype}")
    return _relative_projection(z, anchors, eps)


def _relative_projection(z: torch.Tensor, anchors: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """:func:`relative_projection` without input checks."""
    zn = z / z.norm(dim=1, keepdim=True).clamp_min(eps)
    an = anchors.to(z.device) / anchors.norm(dim=1, keepdim=True).to(z.device).clamp_min(eps)
    return zn @ an.T


class RelativeProjection(nn.Module):
    """Module form of :func:`relative_projection` with the anchors stored as a buffer ``(K, D)``."""

    anchors: torch.Tensor

    def __init__(self, anchors: torch.Tensor):
        super().__init__()
        check_tensor(anchors, "anchors", ndim=2, expected="(K, D)")
        self.register_buffer("anchors", anchors.detach().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        D = self.anchors.shape[1]
        check_tensor(z, "z", ndim=2, expected=f"(B, {D})")
        if z.shape[1] != D:
            raise ValueError(f"z must have shape (B, {D}) to match the anchors, got {tuple(z.shape)}")
        return _relative_projection(z, self.anchors.to(z.dtype))


def gram_mds(vectors: torch.Tensor, dim: int = 3) -> torch.Tensor:
    r"""Classical MDS of the Gram matrix of each vector set, signs fixed by third moments.

    Parameters
    ----------
    vectors : Tensor, shape ``(B, m, d)``
        ``m`` vectors in :math:`\mathbb R^d` per sample (rows), about the origin.
    dim : int
        Number of MDS coordinates kept (``d`` keeps everything).

    Returns
    -------
    Tensor, shape ``(B, m, dim)``: :math:`X` with :math:`X X^\top \approx V V^\top`, invariant to
    :math:`V \mapsto V Q^\top` for every orthogonal :math:`Q` (generic :math:`V`).

    Example
    -------
    >>> import torch
    >>> from e3nn import o3
    >>> V = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> Q = -o3.rand_matrix(2, dtype=torch.float64)                   # rotation times inversion
    >>> X = gram_mds(V)
    >>> bool(torch.allclose(X, gram_mds(V @ Q.transpose(1, 2)), atol=1e-8))
    True
    >>> bool(torch.allclose(X @ X.transpose(1, 2), V @ V.transpose(1, 2), atol=1e-8))
    True
    """
    check_tensor(vectors, "vectors", ndim=3, expected="(B, m, d)")
    if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= vectors.shape[1]:
        raise ValueError(f"dim must be an int between 1 and m={vectors.shape[1]}, got {describe(dim)}")
    return _gram_mds(vectors, dim)


def _gram_mds(vectors: torch.Tensor, dim: int) -> torch.Tensor:
    """:func:`gram_mds` without input checks."""
    G = vectors @ vectors.transpose(1, 2)  # (B, m, m), O(d)-invariant
    lam, U = torch.linalg.eigh(G)
    lam, U = lam.flip(-1)[:, :dim], U.flip(-1)[:, :, :dim]
    X = U * lam.clamp_min(0).sqrt().unsqueeze(1)
    s = _sign(X.pow(3).sum(1))  # (B, dim): third-moment sign of each coordinate
    return X * s.unsqueeze(1)


def gram_mds_projection(z: torch.Tensor, irreps) -> torch.Tensor:
    r"""TinvNN-style invariant of an irreps latent: ``0e`` scalars + MDS coordinates of the ``l=1`` vectors.

    Parameters
    ----------
    z : Tensor, shape ``(B, irreps.dim)``
    irreps : e3nn Irreps (or string) with ``0e`` scalars and/or at least 3 ``l = 1`` vectors

    Returns
    -------
    Tensor, shape ``(B, n_0e + 3 m)`` where ``m`` is the number of ``l = 1`` copies.

    Example
    -------
    >>> import torch
    >>> z = torch.randn(4, 2 + 12, generator=torch.Generator().manual_seed(0))
    >>> gram_mds_projection(z, "2x0e + 4x1o").shape
    torch.Size([4, 14])
    """
    irreps = _irreps(irreps)
    _check_latent(z, irreps)
    return _gram_mds_projection(z, irreps)


def _gram_mds_projection(z: torch.Tensor, irreps) -> torch.Tensor:
    """:func:`gram_mds_projection` without the checks of ``z`` (``irreps`` parsed)."""
    scalars = [z[:, sl] for (mul, ir), sl in zip(irreps, irreps.slices()) if ir.l == 0 and ir.p == 1]
    V = _vectors(z, irreps)
    if V.shape[1] < 3:
        raise ValueError(f"irreps must contain at least 3 l = 1 vectors for 3 MDS coordinates, got {irreps}")
    return torch.cat(scalars + [_gram_mds(V, 3).flatten(1)], dim=1)


class GramMDSProjection(nn.Module):
    """Module form of :func:`gram_mds_projection` for a fixed ``irreps`` layout."""

    def __init__(self, irreps):
        super().__init__()
        self.irreps = _irreps(irreps)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        _check_latent(z, self.irreps)
        return _gram_mds_projection(z, self.irreps)
