r"""What a latent predicts: property regression and 2-D maps scored by held-out error.

* :func:`pooled_invariants` -- sum, mean and maximum of node codes over the real nodes, a
  simple (lossy) permutation invariant, (B, n, c) -> (B, 3c);
* :func:`map_r2` -- how much of a property a 2-D map's coordinates carry: the
  cross-validated :math:`R^2` of a :math:`k`-nearest-neighbour regression from the map;
* :func:`regression_scores` -- fit every regressor on every feature set for every target on
  one train/test split, and score the held-out :math:`R^2` and mean absolute error.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch

__all__ = ["pooled_invariants", "map_r2", "regression_scores"]


def pooled_invariants(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[sum, mean, max]`` of the codes ``z`` (B, n, c) over the nodes where ``mask`` (B, n)
    is true: (B, 3c), invariant to any permutation of the nodes.

    Example
    -------
    >>> z = torch.tensor([[[1.0], [3.0], [9.0]]]); mask = torch.tensor([[True, True, False]])
    >>> pooled_invariants(z, mask).tolist()
    [[4.0, 2.0, 3.0]]
    """
    if z.dim() != 3 or mask.shape != z.shape[:2]:
        raise ValueError(f"expected z (B, n, c) and mask (B, n), got {tuple(z.shape)} and {tuple(mask.shape)}")
    m = mask[..., None].to(z.dtype)
    s = (z * m).sum(1)
    largest = z.masked_fill(~mask[..., None], float("-inf")).max(1).values
    return torch.cat([s, s / m.sum(1).clamp_min(1), largest], -1)


def map_r2(xy: np.ndarray, y: np.ndarray, k: int = 10, cv: int = 5) -> float:
    """Cross-validated (``cv`` folds) :math:`R^2` of predicting ``y`` (N,) from map
    coordinates ``xy`` (N, 2) by :math:`k`-nearest-neighbour regression (one thread).

    Example
    -------
    >>> rng = np.random.default_rng(0); xy = rng.normal(size=(300, 2))
    >>> map_r2(xy, xy[:, 0]) > 0.9, map_r2(xy, rng.normal(size=300)) < 0.1
    (True, True)
    """
    from sklearn.metrics import r2_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.neighbors import KNeighborsRegressor
    from threadpoolctl import threadpool_limits

    xy, y = np.asarray(xy), np.asarray(y)
    if xy.ndim != 2 or len(xy) != len(y):
        raise ValueError(f"expected xy (N, d) and y (N,), got {xy.shape} and {y.shape}")
    # scikit-learn's OpenMP threads spin-wait: on a machine whose other cores are busy they
    # slow it down many times over, so it runs on one thread
    with threadpool_limits(1):
        pred = cross_val_predict(KNeighborsRegressor(k), xy, y, cv=cv)
    return float(r2_score(y, pred))


def regression_scores(features: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray],
                      regressors: Mapping[str, Callable[[], object]], train: np.ndarray,
                      test: np.ndarray) -> list[dict]:
    """One row per (target, regressor, feature set): held-out ``R2`` and ``MAE``.

    ``features[name]``: (N, d) arrays; ``targets[name]``: (N,); ``regressors[name]()`` returns
    a fresh scikit-learn estimator; ``train``, ``test``: index arrays into the N rows.

    Example
    -------
    >>> from sklearn.linear_model import LinearRegression
    >>> X = np.arange(20.0)[:, None]
    >>> rows = regression_scores({"x": X}, {"y": 2 * X[:, 0]}, {"ols": LinearRegression},
    ...                          np.arange(15), np.arange(15, 20))
    >>> rows[0]["target"], round(rows[0]["R2"], 6), round(rows[0]["MAE"], 6)
    ('y', 1.0, 0.0)
    """
    from sklearn.metrics import mean_absolute_error, r2_score
    from threadpoolctl import threadpool_limits

    rows = []
    for fname, F in features.items():
        F = np.asarray(F)
        for tname, y in targets.items():
            y = np.asarray(y)
            if len(y) != len(F):
                raise ValueError(f"features {fname!r} has {len(F)} rows, target {tname!r} {len(y)}")
            for rname, make in regressors.items():
                with threadpool_limits(1):  # one thread: see map_r2
                    pred = make().fit(F[train], y[train]).predict(F[test])
                rows.append(dict(target=tname, regressor=rname, features=fname,
                                 R2=float(r2_score(y[test], pred)),
                                 MAE=float(mean_absolute_error(y[test], pred))))
    return rows
