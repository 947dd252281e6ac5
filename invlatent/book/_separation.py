r"""How well a representation separates labelled objects: probes, silhouettes and 2-D maps.

The image chapters (rotated MNIST, augmentation) and the landing page compare a raw
equivariant code with an invariant projection of it by the same three measurements:

* :func:`probe_accuracy` -- test accuracy of a logistic regression and a :math:`k`-nearest
  neighbour classifier, both on standardised features, trained on one set and scored on
  another (e.g. trained on upright digits, tested on rotated ones);
* :func:`silhouette` -- the silhouette score by label of standardised features,

  .. math::

      s = \frac{1}{B}\sum_{b} \frac{\beta_b - \alpha_b}{\max(\alpha_b, \beta_b)},

  with :math:`\alpha_b` the mean distance of :math:`b` to its own label and :math:`\beta_b`
  the smallest mean distance to another label (1: tight, separate labels; 0: overlap);
* :func:`embed_2d` -- a seeded 2-D map (t-SNE or UMAP) of standardised features, the
  picture of the paper's Figure 1.

Features are ``(B, d)`` tensors or arrays, labels ``(B,)`` integers. Every estimator runs on
one thread: scikit-learn's OpenMP threads spin-wait, which on a shared machine costs more
than it saves.

Example
-------
>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> y = torch.arange(40) % 2
>>> f = y[:, None] * 4.0 + torch.randn(40, 3, generator=g)   # two well separated labels
>>> acc = probe_accuracy(f[:20], y[:20], f[20:], y[20:])
>>> sorted(acc), acc["LR"]
(['5-NN', 'LR'], 1.0)
>>> silhouette(f, y) > 0.5
True
>>> embed_2d(f, "t-SNE", perplexity=5).shape
(40, 2)
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .._validation import describe

__all__ = ["probe_accuracy", "silhouette", "embed_2d"]

_METHODS = ("t-SNE", "UMAP")


def _features(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array of shape (B, d), "
                        f"got {describe(x)}")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (B, d) with B > 0, got {tuple(x.shape)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _labels(y, n: int, name: str) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{name} must have shape ({n},) to match the features, "
                         f"got {tuple(y.shape)}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold integer labels, got {y.dtype}")
    return y


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every column by the mean and standard deviation of ``train`` (constant: 1)."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train)
    return [scaler.transform(a) for a in (train, *others)]


def probe_accuracy(train, y_train, test, y_test, *, n_neighbors: int = 5,
                   max_iter: int = 1000) -> dict[str, float]:
    r"""Test accuracy of two probes trained on ``train``: logistic regression and k-NN.

    Both see features standardised with the training set's mean and standard deviation.

    Parameters
    ----------
    train, test : Tensor or array, shapes ``(B_train, d)`` and ``(B_test, d)``
    y_train, y_test : integer labels, shapes ``(B_train,)`` and ``(B_test,)``
    n_neighbors : int
        :math:`k` of the nearest-neighbour probe.
    max_iter : int
        Iterations of the logistic regression's solver.

    Returns
    -------
    dict
        ``{"LR": accuracy, f"{k}-NN": accuracy}``, each the fraction of ``test`` classified
        right, in :math:`[0, 1]`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from threadpoolctl import threadpool_limits

    train, test = _features(train, "train"), _features(test, "test")
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"train and test must have the same number of features, got "
                         f"{train.shape[1]} and {test.shape[1]}")
    y_train = _labels(y_train, len(train), "y_train")
    y_test = _labels(y_test, len(test), "y_test")
    if not isinstance(n_neighbors, int) or not 1 <= n_neighbors <= len(train):
        raise ValueError(f"n_neighbors must be an int in [1, {len(train)}], got {n_neighbors!r}")
    tr, te = _standardise(train, test)
    with threadpool_limits(1):
        lr = LogisticRegression(max_iter=max_iter).fit(tr, y_train)
        knn = KNeighborsClassifier(n_neighbors=n_neighbors).fit(tr, y_train)
        return {"LR": float(lr.score(te, y_test)), f"{n_neighbors}-NN": float(knn.score(te, y_test))}


def silhouette(features, labels, *, standardise: bool = True) -> float:
    r"""Silhouette score by label of ``features`` ``(B, d)`` (standardised first by default).

    Returns a float in :math:`[-1, 1]`; higher means the labels form tighter, more separate
    groups. Pass the output of :func:`embed_2d` with ``standardise=False`` to score a map.
    """
    from sklearn.metrics import silhouette_score

    f = _features(features, "features")
    y = _labels(labels, len(f), "labels")
    if len(np.unique(y)) < 2:
        raise ValueError("labels must hold at least two distinct labels")
    if standardise:
        (f,) = _standardise(f)
    return float(silhouette_score(f, y))


def embed_2d(features, method: str = "t-SNE", *, seed: int = 0,
             perplexity: float = 30.0, n_neighbors: int = 15) -> np.ndarray:
    r"""A seeded 2-D map of the standardised ``features`` ``(B, d)``; returns ``(B, 2)``.

    ``method`` is ``"t-SNE"`` (scikit-learn, PCA initialisation, ``perplexity``) or ``"UMAP"``
    (umap-learn, from the ``book`` extra; ``n_neighbors``).
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    from threadpoolctl import threadpool_limits

    (f,) = _standardise(_features(features, "features"))
    with threadpool_limits(1):
        if method == "t-SNE":
            from sklearn.manifold import TSNE

            return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(f)
        with warnings.catch_warnings():  # umap imports tqdm.auto, which warns without ipywidgets
            warnings.filterwarnings("ignore", message="IProgress not found")
            import umap

        return umap.UMAP(n_neighbors=n_neighbors, random_state=seed, n_jobs=1).fit_transform(f)
