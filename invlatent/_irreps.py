r"""Helpers shared by everything that handles e3nn ``Irreps`` latents.

One place for: parsing an ``Irreps`` argument (one error message), checking a latent
``(B, irreps.dim)``, building e3nn constants in float64, extracting the ``l = 1`` blocks, and
applying :math:`D(R)` to latents (block by block, exact through Cartesian tensors for
:math:`l \le 2`).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from functools import lru_cache

import torch

from ._validation import check_tensor, describe

#: e3nn irreps of the QM9 equivariant targets: the dipole (``1o``) and the quadrupole (``2e``).
TARGET_IRREPS = "1x1o + 1x2e"

__all__ = ["TARGET_IRREPS", "parse_irreps", "check_irreps_latent", "float64_default", "l1_blocks", "wigner_blocks", "apply_rotation"]


def parse_irreps(irreps, name: str = "irreps", *, allow_empty: bool = False):
    """``o3.Irreps(irreps)``; ``TypeError``/``ValueError`` naming ``name`` on bad input."""
    from e3nn import o3

    if not isinstance(irreps, (str, o3.Irreps, list, tuple)):
        raise TypeError(f"{name} must be an e3nn Irreps (or its string such as '2x0e + 1x1o'), got {type(irreps).__name__}")
    try:
        ir = o3.Irreps(irreps)
    except Exception as exc:  # e3nn raises several kinds
        raise ValueError(f"{name} must be an e3nn Irreps (or its string), got {describe(irreps)}: {exc}") from None
    if ir.dim == 0 and not allow_empty:
        raise ValueError(f"{name} must have positive dimension, got an empty Irreps")
    return ir


def check_irreps_latent(z, irreps, name: str = "z") -> torch.Tensor:
    """Validate ``z`` of shape ``(B, irreps.dim)``."""
    check_tensor(z, name, ndim=2, expected=f"(B, irreps.dim={irreps.dim})")
    if z.shape[1] != irreps.dim:
        raise ValueError(
            f"{name} has {z.shape[1]} features but irreps {irreps} has dimension "
            f"{irreps.dim}; expected (B, {irreps.dim}), got {tuple(z.shape)}"
        )
    return z


@contextmanager
def float64_default():
    """e3nn builds some constants in the default dtype: build them in float64 (restored after)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def l1_blocks(z: torch.Tensor, irreps) -> torch.Tensor:
    """The ``l = 1`` copies of ``z`` (``1o`` and ``1e``) as ``(B, m, 3)``, in e3nn's basis (``m`` may be 0)."""
    blocks = [z[:, sl].reshape(z.shape[0], mul, 3) for (mul, ir), sl in zip(irreps, irreps.slices()) if ir.l == 1]
    return torch.cat(blocks, dim=1) if blocks else z.new_zeros(z.shape[0], 0, 3)


@lru_cache(maxsize=None)
def _cartesian_maps(l: int):
    """``(M, M^+)`` with e3nn's ``Y^l(v) = M vec(v^{(x) l})`` (``normalization="norm"``), fitted once in float64."""
    from e3nn import o3

    v = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = o3.spherical_harmonics(l, v, normalize=False, normalization="norm").double()
    x = v if l == 1 else (v[:, :, None] * v[:, None, :]).reshape(-1, 9)
    M = (torch.linalg.pinv(x) @ y).T  # (2l+1, 3^l), minimum norm (x is rank-deficient for l = 2)
    return M, torch.linalg.pinv(M)


def wigner_blocks(irreps, R: torch.Tensor) -> tuple[dict, torch.Tensor]:
    r"""``({l: D^l(R_+)}, det R)`` for every degree ``l`` in ``irreps``, in float64.

    :math:`R_+ = \det(R)\, R` is the proper part. For ``l <= 2`` the Wigner matrices are
    computed exactly through Cartesian tensors, :math:`D^1 = M_1 R M_1^{-1}` and
    :math:`D^2 = M_2 (R\otimes R) M_2^{+}` with :math:`Y^l(v) = M_l\, v^{\otimes l}` -- no
    Euler angles, so float64-accurate and smooth for gradients; higher ``l`` use e3nn's
    Euler-angle formula, each one-parameter factor by its spectral form (:func:`_wigner_d`).
    """
    R64 = R.to(torch.float64)
    det = torch.linalg.det(R64)
    rot = R64 * det[..., None, None]
    out = {}
    for l in sorted({ir.l for _, ir in irreps}):
        if l == 0:
            out[l] = torch.ones(*rot.shape[:-2], 1, 1, dtype=rot.dtype, device=rot.device)
        elif l <= 2:
            M, Mp = (t.to(rot.device) for t in _cartesian_maps(l))
            big = rot if l == 1 else (rot[..., :, None, :, None] * rot[..., None, :, None, :]).reshape(*rot.shape[:-2], 9, 9)
            out[l] = M @ big @ Mp
        else:
            out[l] = _wigner_d(l, rot)
    return out, det


@lru_cache(maxsize=None)
def _exp_terms(l: int) -> torch.Tensor:
    r"""``(2, 2, l + 1, 2l+1, 2l+1)`` float64 (CPU): the matrices :math:`C_m, S_m` with
    :math:`\exp(\theta X_k) = \sum_{m=0}^{l} \cos(m\theta)\, C^{(k)}_m + \sin(m\theta)\, S^{(k)}_m`
    for e3nn's generators :math:`X_0, X_1` of degree ``l`` (index ``[k, 0]``: the :math:`C`, ``[k, 1]``:
    the :math:`S`).

    :math:`X_k` is real and skew-symmetric with eigenvalues :math:`i m`, :math:`m = -l..l`; with
    :math:`\Pi_m` the projector on the eigenvalue :math:`i m` (and :math:`\Pi_{-m} = \bar\Pi_m`),
    :math:`\exp(\theta X) = \sum_m e^{i m \theta}\Pi_m = \Pi_0 + \sum_{m>0}
    2\,\mathrm{Re}(e^{i m\theta}\Pi_m)`, so :math:`C_0 = \Pi_0`, :math:`C_m = 2\,\mathrm{Re}\,\Pi_m`,
    :math:`S_m = -2\,\mathrm{Im}\,\Pi_m`.
    """
    from e3nn import o3

    with float64_default():  # e3nn builds them in the default dtype
        X = o3.so3_generators(l).to(torch.float64)
    d = 2 * l + 1
    out = torch.zeros(2, 2, l + 1, d, d, dtype=torch.float64)
    for k in (0, 1):
        w, V = torch.linalg.eigh(-1j * X[k].to(torch.complex128))  # Hermitian, eigenvalues m = -l..l
        m = torch.round(w)
        if float((w - m).abs().max()) > 1e-8:
            raise RuntimeError(f"e3nn's generator X_{k} of degree {l} has non-integer eigenvalues {w.tolist()}")
        for mm in range(l + 1):
            Vm = V[:, m == mm]
            P = Vm @ Vm.conj().T
            out[k, 0, mm] = P.real if mm == 0 else 2 * P.real
            out[k, 1, mm] = 0.0 if mm == 0 else -2 * P.imag
    return out


def _exp_generator(terms: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``exp(theta X)`` ``(..., d, d)`` for angles ``theta (...)`` from one generator's ``terms (2, l+1, d, d)``."""
    m = torch.arange(terms.shape[1], dtype=theta.dtype, device=theta.device)
    mt = theta[..., None] * m
    return (torch.einsum("...m,mij->...ij", torch.cos(mt), terms[0])
            + torch.einsum("...m,mij->...ij", torch.sin(mt), terms[1]))


def _wigner_d(l: int, rot: torch.Tensor) -> torch.Tensor:
    r"""e3nn's ``Irrep(l, 1).D_from_matrix(rot)`` for proper ``rot`` ``(..., 3, 3)``, on ``rot``'s device and dtype.

    e3nn's formula :math:`D^l = \exp(a X_1) \exp(b X_0) \exp(c X_1)` with its own Euler angles and
    generators; each factor comes from the cached spectral terms of :func:`_exp_terms` (a few
    cosines and sines and two small matmuls), not from ``matrix_exp`` and generators rebuilt at
    every call (e3nn 0.6 also builds those on the CPU, which fails for angles on a GPU).
    """
    from e3nn import o3

    terms = _exp_terms(l).to(device=rot.device, dtype=rot.dtype)
    a, b, c = o3.matrix_to_angles(rot)
    return _exp_generator(terms[1], a) @ _exp_generator(terms[0], b) @ _exp_generator(terms[1], c)


def apply_rotation(z: torch.Tensor, irreps, R: torch.Tensor) -> torch.Tensor:
    r""":math:`D(R)\, z` for one orthogonal matrix per latent, block by block (parity included).

    Same result as ``irreps.D_from_matrix(R) @ z`` without forming the ``(B, dim, dim)``
    matrix. ``R`` has shape ``(B, 3, 3)`` (or ``(B, K, 3, 3)``: then ``z`` is broadcast to
    ``(B, K, dim)``). ``irreps`` must already be an ``o3.Irreps``.
    """
    lead = R.shape[:-2]
    Rf = R.reshape(-1, 3, 3)
    zf = z.unsqueeze(1).expand(*lead, z.shape[-1]).reshape(-1, z.shape[-1]) if R.dim() == 4 else z
    blocks, det = wigner_blocks(irreps, Rf)
    out = []
    for (mul, ir), sl in zip(irreps, irreps.slices()):
        D = blocks[ir.l].to(dtype=z.dtype, device=z.device)
        part = zf[:, sl].reshape(-1, mul, ir.dim) @ D.transpose(1, 2)
        if ir.p == -1:  # e3nn: D(g) = p^k D^l(det(g) g), k = 1 for improper g
            part = part * det.to(device=z.device, dtype=z.dtype).view(-1, 1, 1)
        out.append(part.reshape(part.shape[0], -1))
    return torch.cat(out, dim=1).reshape(*lead, z.shape[-1])
