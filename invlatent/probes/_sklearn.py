r"""A scikit-learn transformer for invariant projections, so they slot into pipelines.

>>> import numpy as np
>>> from sklearn.decomposition import PCA
>>> from sklearn.pipeline import make_pipeline
>>> from invlatent import Cyclic, InvariantProjector
>>> X = np.random.default_rng(0).normal(size=(20, 2 * 8))        # flattened (c=2, N=8) latents
>>> pipe = make_pipeline(InvariantProjector(Cyclic(8), (2, 8), n_out=16), PCA(2))
>>> pipe.fit_transform(X).shape
(20, 2)
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from ..groups.base import check_group, check_group_latent
from .._validation import describe

__all__ = ["InvariantProjector"]

_METHODS = ("max_filter", "reynolds", "align", "sort", "lexsort", "power_spectrum", "bispectrum")


class InvariantProjector(TransformerMixin, BaseEstimator):
    r"""scikit-learn ``fit``/``transform`` wrapper around the invariant projections.

    ``fit`` checks the data and builds the (seeded, random where applicable) projection;
    ``transform`` maps ``(N, *latent_shape)`` or flattened ``(N, prod(latent_shape))`` arrays
    (NumPy or torch) to a float64 NumPy array ``(N, n_features_out)``. Nothing is learned from
    the data: the random projections are data-independent, which is what makes them invariant.

    Parameters
    ----------
    group : group object
    latent_shape : tuple of int
    method : str
        ``"max_filter"`` (:class:`~invlatent.projections.MaxFilter`), ``"reynolds"``
        (:class:`~invlatent.projections.ReynoldsProjection`), ``"align"``
        (:class:`~invlatent.projections.AlignToTemplate`, output flattened), ``"sort"``,
        ``"lexsort"``, ``"power_spectrum"`` or ``"bispectrum"``.
    n_out : int
        (``n_components=`` still works for one release, with a ``DeprecationWarning``.)
        Number of templates / output features for the random methods.
    seed : int
    dtype : torch.dtype
        Computation dtype (float64 by default).

    Example
    -------
    >>> import numpy as np
    >>> from invlatent import Permutation
    >>> X = np.random.default_rng(0).normal(size=(4, 3, 2))
    >>> proj = InvariantProjector(Permutation(), (3, 2), n_out=5).fit(X)
    >>> bool(np.allclose(proj.transform(X), proj.transform(X[:, ::-1])))   # rows reversed
    True
    >>> proj.transform(X).shape
    (4, 5)
    """

    def __init__(self, group, latent_shape, method: str = "max_filter", n_out: int = 64, seed: int = 0,
                 dtype=torch.float64, n_components: int | None = None):
        self.group = group
        self.latent_shape = latent_shape
        self.method = method
        self.n_out = n_out
        self.n_components = n_components
        self.seed = seed
        self.dtype = dtype

    def _as_tensor(self, X) -> torch.Tensor:
        shape = tuple(self.latent_shape)
        if isinstance(X, np.ndarray):
            if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
                raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
            X = torch.from_numpy(np.ascontiguousarray(X))
        if not isinstance(X, torch.Tensor):
            raise TypeError(f"X must be a numpy array or torch tensor of shape (N, *{shape}), got {type(X).__name__}")
        X = X.to(self.dtype)
        D = int(np.prod(shape))
        if X.dim() == 2 and X.shape[1] == D and len(shape) > 1:
            X = X.reshape(X.shape[0], *shape)
        if tuple(X.shape[1:]) != shape:
            raise ValueError(f"X must have shape (N, *{shape}) or (N, {D}), got {tuple(X.shape)}")
        if X.shape[0] == 0:
            raise ValueError("X is empty (no samples)")
        return X

    def fit(self, X, y=None):
        """Validate ``X`` and build the projection module (``projection_``)."""
        from ..projections import (AlignToTemplate, Bispectrum, LexSortProjection, MaxFilter, PowerSpectrum,
                                  ReynoldsProjection, SortProjection)

        check_group(self.group)
        n_out = self.n_out
        if self.n_components is not None:
            warnings.warn("n_components= is deprecated: use n_out=", DeprecationWarning, stacklevel=2)
            n_out = self.n_components
        if self.method not in _METHODS:
            raise ValueError(f"method must be one of {', '.join(_METHODS)}, got {describe(self.method)}")
        X = self._as_tensor(X)
        check_group_latent(self.group, X, "X")
        builders = {
            "max_filter": lambda: MaxFilter(self.group, self.latent_shape, n_out, seed=self.seed),
            "reynolds": lambda: ReynoldsProjection(self.group, self.latent_shape, n_out, seed=self.seed),
            "align": lambda: AlignToTemplate(self.group, self.latent_shape, seed=self.seed),
            "sort": SortProjection,
            "lexsort": LexSortProjection,
            "power_spectrum": PowerSpectrum,
            "bispectrum": Bispectrum,
        }
        self.projection_ = builders[self.method]().to(self.dtype)
        self.n_features_in_ = int(np.prod(self.latent_shape))
        with torch.no_grad():
            self.n_features_out_ = int(self.projection_(X[:1]).flatten(1).shape[1])
        return self

    def transform(self, X) -> np.ndarray:
        """Project ``X``: ``(N, *latent_shape)`` -> ``(N, n_features_out_)`` (float64 NumPy)."""
        if not hasattr(self, "projection_"):
            raise RuntimeError("InvariantProjector is not fitted yet: call fit(X) first")
        X = self._as_tensor(X)
        with torch.no_grad():
            return self.projection_(X).flatten(1).double().cpu().numpy()
