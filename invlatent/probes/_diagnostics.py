r"""Diagnostics: equivariance and invariance errors, ambiguity, information retention.

* :func:`invariance_error` -- :math:`\max_{g,i} |p(\rho(g) z_i) - p(z_i)|` of a projection;
* :func:`equivariance_error` -- :math:`\max |f(g\cdot x) - \rho(g) f(x)|` of a model, in float64
  like e3nn's ``assert_equivariant``;
* :func:`ambiguity_index` -- spread of a representation within orbits relative to the spread
  between objects (0 for invariant codes);
* :func:`retention` -- how much of the quotient geometry a projection keeps: distance
  correlation, k-NN agreement and distortion against the quotient metric, in one call.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch

from .._validation import check_positive_int, check_tensor
from ..groups.base import check_group, check_group_latent

__all__ = ["invariance_error", "equivariance_error", "ambiguity_index", "retention", "distance_correlation", "knn_agreement"]


def _gen(seed):
    if isinstance(seed, torch.Generator) or seed is None:
        return seed
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"generator must be a torch.Generator, an int seed or None, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def invariance_error(fn: Callable, z: torch.Tensor, group, n_elements: int = 4, generator=0, relative: bool = False) -> float:
    r"""Largest change of ``fn`` over random group elements: :math:`\max_{g, i} |p(\rho(g) z_i) - p(z_i)|`.

    Parameters
    ----------
    fn : callable
        A projection (function or module) mapping ``(B, *latent_shape)`` to a tensor.
    z : Tensor, shape ``(B, *latent_shape)``
    group : group object
    n_elements : int
        Random elements per latent.
    generator : torch.Generator or int seed
    relative : bool
        Divide by :math:`\max |p(z)|` (useful across scales).

    Returns
    -------
    float

    Example
    -------
    >>> import torch
    >>> from invlatent import Permutation, sort_projection
    >>> z = torch.randn(8, 5, 1, generator=torch.Generator().manual_seed(0))
    >>> invariance_error(sort_projection, z, Permutation())
    0.0
    >>> invariance_error(lambda z: z, z, Permutation()) > 0.1   # the raw code is not invariant
    True
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable (a projection), got {type(fn).__name__}")
    check_group(group)
    check_group_latent(group, z, "z")
    check_positive_int(n_elements, "n_elements")
    gen = _gen(generator)
    with torch.no_grad():
        base = fn(z)
        if not isinstance(base, torch.Tensor):
            raise TypeError(f"fn must return a torch.Tensor, got {type(base).__name__}")
        err = 0.0
        for _ in range(n_elements):  # loop over group elements, batched over latents
            g = group.sample(z.shape[0], generator=gen, device=z.device)
            out = fn(group.act(g, z))
            err = max(err, float((out - base).abs().max()))
        if relative:
            err /= max(float(base.abs().max()), torch.finfo(z.dtype).tiny)
    return err


def equivariance_error(model: Callable, x: torch.Tensor, input_group, latent_group, n_elements: int = 4,
                       generator=0, float64: bool = True) -> float:
    r"""Largest equivariance violation :math:`\max |f(g\cdot x) - \rho(g) f(x)|` of a model.

    The same sampled elements act on the input (``input_group.act``) and on the output
    (``latent_group.act``), so the two groups must share the element format (e.g.
    :class:`~invlatent.groups.Permutation` on node features and on node latents). With
    ``float64=True`` the model (a deep copy if it is an ``nn.Module``) and the input are cast to
    float64 first, as in e3nn's ``assert_equivariant``, so the error measures the model and not
    float32 rounding. A plain callable cannot be cast: it must accept float64 input (or pass
    ``float64=False``).

    Parameters
    ----------
    model : callable or nn.Module
    x : Tensor, shape ``(B, *input_shape)``
    input_group, latent_group : group objects
    n_elements : int
    generator : torch.Generator or int seed
    float64 : bool

    Returns
    -------
    float

    Example
    -------
    >>> import torch
    >>> from invlatent import Permutation
    >>> lin = torch.nn.Linear(3, 2)   # a node-wise map is permutation equivariant
    >>> x = torch.randn(4, 6, 3, generator=torch.Generator().manual_seed(0))
    >>> equivariance_error(lin, x, Permutation(), Permutation()) < 1e-12
    True
    """
    model, x, gen = check_equivariance_args(model, x, input_group, latent_group, n_elements, generator)
    return _equivariance_error(model, x, input_group, latent_group, n_elements, gen, float64)


def check_equivariance_args(model, x, input_group, latent_group, n_elements, generator):
    """The checks of :func:`equivariance_error` (shared with :func:`invlatent.testing.assert_equivariant`)."""
    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    check_group(input_group, "input_group")
    check_group(latent_group, "latent_group")
    check_tensor(x, "x", min_ndim=1, expected="(B, *input_shape)")
    check_positive_int(n_elements, "n_elements")
    return model, x, _gen(generator)


def _equivariance_error(model, x, input_group, latent_group, n_elements, gen, float64, with_scale=False):
    if float64:
        x = x.double()
        if isinstance(model, torch.nn.Module):
            model = copy.deepcopy(model).double()
    with torch.no_grad():
        try:
            fx = model(x)
        except RuntimeError as exc:
            msg = str(exc).lower()
            if float64 and not isinstance(model, torch.nn.Module) and ("dtype" in msg or "double" in msg):
                raise TypeError(
                    "model failed on float64 input; pass an nn.Module (it is cast to float64) "
                    f"or float64=False. Original error: {exc}"
                ) from exc
            raise
        err = 0.0
        for _ in range(n_elements):
            g = input_group.sample(x.shape[0], generator=gen, device=x.device)
            lhs = model(input_group.act(g, x))
            rhs = latent_group.act(g, fx)
            err = max(err, float((lhs - rhs).abs().max()))
    if with_scale:
        return err, float(fx.abs().max())
    return err


def ambiguity_index(z: torch.Tensor, group, fn: Callable | None = None, n_elements: int = 4, generator=0) -> float:
    r"""Within-orbit spread over between-object spread of a representation.

    .. math::

        A = \frac{\mathbb{E}_{i,g} \lVert r(\rho(g) z_i) - r(z_i)\rVert^2}
                 {\mathbb{E}_{i,j} \lVert r(z_i) - r(z_j)\rVert^2}, \qquad r = \texttt{fn}
        \text{ (identity by default)} .

    :math:`A = 0` for an invariant representation; :math:`A \approx 1` when moving one object
    within its orbit changes the code as much as swapping it for another object -- the
    situation in which raw equivariant latents mislead PCA, t-SNE or k-NN.

    Parameters
    ----------
    z : Tensor, shape ``(B, *latent_shape)``, ``B >= 2``
    group : group object
    fn : callable, optional
        The representation to assess (e.g. a projection); the raw latent by default.
    n_elements : int
    generator : torch.Generator or int seed

    Returns
    -------
    float

    Example
    -------
    >>> import torch
    >>> from invlatent import Permutation, sort_projection
    >>> z = torch.randn(64, 6, 1, generator=torch.Generator().manual_seed(0))
    >>> round(ambiguity_index(z, Permutation()), 1), ambiguity_index(z, Permutation(), fn=sort_projection)
    (0.8, 0.0)
    """
    check_group(group)
    check_group_latent(group, z, "z")
    if z.shape[0] < 2:
        raise ValueError(f"z must hold at least 2 latents to compare objects, got batch size {z.shape[0]}")
    check_positive_int(n_elements, "n_elements")
    if fn is not None and not callable(fn):
        raise TypeError(f"fn must be callable or None, got {type(fn).__name__}")
    rep = (lambda t: t) if fn is None else fn
    gen = _gen(generator)
    with torch.no_grad():
        base = rep(z).flatten(1)
        within = 0.0
        for _ in range(n_elements):
            g = group.sample(z.shape[0], generator=gen, device=z.device)
            within += float((rep(group.act(g, z)).flatten(1) - base).square().sum(1).mean())
        within /= n_elements
        # mean squared distance over all pairs = 2 * total variance
        between = float(2 * base.var(dim=0, unbiased=False).sum() * base.shape[0] / (base.shape[0] - 1))
    if between == 0.0:
        return 0.0 if within == 0.0 else float("inf")
    return within / between


def _check_dist_matrix(D: torch.Tensor, name: str) -> torch.Tensor:
    check_tensor(D, name, ndim=2, expected="(N, N)")
    if D.shape[0] != D.shape[1]:
        raise ValueError(f"{name} must be a square (N, N) distance matrix, got {tuple(D.shape)}")
    if (D < 0).any():
        raise ValueError(f"{name} must hold non-negative distances")
    return D


def distance_correlation(D1: torch.Tensor, D2: torch.Tensor) -> float:
    r"""Distance correlation (Székely et al.) of two samples given by their distance matrices.

    Double-centre :math:`A = HD_1H`, :math:`B = HD_2H` (:math:`H = I - \tfrac1n 11^\top`) and return
    Székely's distance correlation, the square root of the normalised distance covariance
    :cite:`szekely2007measuring`:

    .. math::

        \operatorname{dCor} = \sqrt{\frac{\langle A,B\rangle}{\sqrt{\langle A,A\rangle\langle B,B\rangle}}}

    in :math:`[0,1]`; 1 when one distance is a multiple of the other, 0 for independent
    samples in the limit. (:math:`\langle A,B\rangle/\sqrt{\langle A,A\rangle\langle B,B\rangle}`
    alone is :math:`\operatorname{dCor}^2`.) ``D1`` and ``D2`` are ``(n, n)`` distance matrices.

    Example
    -------
    >>> import torch
    >>> D = torch.cdist(torch.arange(5.0)[:, None], torch.arange(5.0)[:, None])
    >>> round(distance_correlation(D, 3 * D), 6)
    1.0
    >>> round(distance_correlation(D, D ** 2), 3)     # dCor; its square would be 0.943
    0.971
    """
    _check_dist_matrix(D1, "D1")
    _check_dist_matrix(D2, "D2")
    if D1.shape != D2.shape:
        raise ValueError(f"D1 and D2 must have the same shape, got {tuple(D1.shape)} and {tuple(D2.shape)}")
    A, B = D1.double(), D2.double().to(D1.device)

    def centre(M):
        return M - M.mean(0, keepdim=True) - M.mean(1, keepdim=True) + M.mean()

    A, B = centre(A), centre(B)
    den = float((A * A).mean().sqrt() * (B * B).mean().sqrt())
    if den == 0.0:
        return 0.0
    dcor2 = float((A * B).mean()) / den  # squared distance correlation (a V-statistic, >= 0)
    return max(dcor2, 0.0) ** 0.5


def knn_agreement(D1: torch.Tensor, D2: torch.Tensor, k: int = 10) -> float:
    """Mean overlap of the ``k`` nearest neighbours (self excluded) under two distance matrices.

    Example
    -------
    >>> import torch
    >>> D = torch.cdist(torch.arange(6.0)[:, None], torch.arange(6.0)[:, None])
    >>> knn_agreement(D, D ** 2, k=2)
    1.0
    """
    _check_dist_matrix(D1, "D1")
    _check_dist_matrix(D2, "D2")
    if D1.shape != D2.shape:
        raise ValueError(f"D1 and D2 must have the same shape, got {tuple(D1.shape)} and {tuple(D2.shape)}")
    N = D1.shape[0]
    check_positive_int(k, "k")
    if k >= N:
        raise ValueError(f"k must be smaller than the number of points N={N}, got k={k}")
    eye = torch.eye(N, dtype=torch.bool, device=D1.device)
    n1 = D1.double().masked_fill(eye, float("inf")).topk(k, largest=False).indices
    n2 = D2.double().to(D1.device).masked_fill(eye, float("inf")).topk(k, largest=False).indices
    hit = (n1.unsqueeze(2) == n2.unsqueeze(1)).any(2).sum(1)
    return float(hit.double().mean() / k)


def retention(projected: torch.Tensor, reference: torch.Tensor, group=None, k: int = 10) -> dict:
    r"""How much of the quotient geometry a projection keeps, in one call.

    Compares the Euclidean distances between projected codes with the quotient distances
    :math:`d([z_i],[z_j])` (given as a matrix, or computed here from the latents and
    ``group`` with :func:`~invlatent.quotient.pairwise_quotient_distance`).

    Returns a dict with

    * ``distance_correlation`` -- :func:`distance_correlation` of the two distance matrices
      (1 for an isometry up to scale);
    * ``knn_agreement`` -- :func:`knn_agreement` with ``k`` neighbours (1 = same neighbourhoods);
    * ``distortion`` -- :math:`q_{0.95}(r) / q_{0.05}(r)` of the ratios
      :math:`r_{ij} = \lVert p_i - p_j\rVert / d_{ij}` over pairs with :math:`d_{ij} > 0`
      (1 for an isometry up to scale; large when the projection merges or tears orbits).
      Quantiles rather than max/min keep it finite and robust.

    Parameters
    ----------
    projected : Tensor, shape ``(N, *)``
        Projected codes (flattened per sample).
    reference : Tensor
        ``(N, N)`` quotient distance matrix, or latents ``(N, *latent_shape)`` when ``group`` is given.
    group : group object, optional
    k : int

    Example
    -------
    >>> import torch
    >>> from invlatent import Permutation, sort_projection
    >>> z = torch.randn(40, 5, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> r = retention(sort_projection(z), z, Permutation(), k=5)
    >>> {key: round(v, 6) for key, v in r.items()}
    {'distance_correlation': 1.0, 'knn_agreement': 1.0, 'distortion': 1.0}
    """
    check_tensor(projected, "projected", min_ndim=1, expected="(N, *)")
    N = projected.shape[0]
    if N < 3:
        raise ValueError(f"projected must hold at least 3 codes, got {N}")
    if group is not None:
        from ..quotient import pairwise_quotient_distance

        check_tensor(reference, "reference", min_ndim=2, expected="(N, *latent_shape)")
        if reference.shape[0] != N:
            raise ValueError(f"reference latents must hold N={N} codes like projected, got {tuple(reference.shape)}")
        Dq = pairwise_quotient_distance(reference, None, group)
    else:
        Dq = reference
        _check_dist_matrix(Dq, "reference")
        if Dq.shape[0] != N:
            raise ValueError(f"reference must be an (N, N) = ({N}, {N}) distance matrix to match projected, got {tuple(Dq.shape)}")
    P = projected.reshape(N, -1).double()
    Dp = torch.cdist(P, P)
    Dq = Dq.double().to(Dp.device)
    off = ~torch.eye(N, dtype=torch.bool, device=Dp.device) & (Dq > 1e-12 * Dq.max())
    ratios = Dp[off] / Dq[off]
    if ratios.numel() == 0:
        raise ValueError("reference has no pair of distinct orbits (all quotient distances are 0)")
    q = torch.quantile(ratios, torch.tensor([0.05, 0.95], dtype=torch.float64, device=ratios.device))
    distortion = float("inf") if q[0] <= 0 else float(q[1] / q[0])
    return {
        "distance_correlation": distance_correlation(Dp, Dq),
        "knn_agreement": knn_agreement(Dp, Dq, k=min(k, N - 1)),
        "distortion": distortion,
    }
