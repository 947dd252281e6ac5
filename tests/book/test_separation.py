"""probe_accuracy, silhouette and embed_2d against brute-force re-computations."""

import numpy as np
import pytest
import torch

from invlatent.book import embed_2d, probe_accuracy, silhouette


def blobs(n_per=30, k=3, d=4, spread=0.3, seed=0):
    """k labelled Gaussian blobs in R^d with unit-distance-scale centres; (features, labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 3
    y = np.repeat(np.arange(k), n_per)
    x = centres[y] + spread * rng.normal(size=(len(y), d))
    perm = rng.permutation(len(y))
    return x[perm], y[perm]


def brute_knn_accuracy(tr, ytr, te, yte, k):
    """Majority vote of the k nearest training points (Euclidean), computed pair by pair."""
    hits = 0
    for x, y in zip(te, yte):
        d = np.sqrt(((tr - x) ** 2).sum(1))
        votes = np.bincount(ytr[np.argsort(d, kind="stable")[:k]], minlength=ytr.max() + 1)
        hits += int(np.argmax(votes) == y)
    return hits / len(te)


def brute_silhouette(x, y):
    """The silhouette formula, one point at a time (mean distance to own / nearest other label)."""
    s = []
    for i in range(len(x)):
        d = np.sqrt(((x - x[i]) ** 2).sum(1))
        own = (y == y[i]) & (np.arange(len(x)) != i)
        a = d[own].mean()
        b = min(d[y == other].mean() for other in np.unique(y) if other != y[i])
        s.append((b - a) / max(a, b))
    return float(np.mean(s))


def test_knn_probe_equals_brute_force_on_standardised_features():
    x, y = blobs(spread=1.5, seed=1)  # overlapping blobs: accuracy strictly between 0 and 1
    x[:, 0] *= 100.0  # a badly scaled column: standardisation must undo it
    tr, te, ytr, yte = x[:60], x[60:], y[:60], y[60:]
    mu, sd = tr.mean(0), tr.std(0)
    expected = brute_knn_accuracy((tr - mu) / sd, ytr, (te - mu) / sd, yte, k=5)
    got = probe_accuracy(torch.from_numpy(tr), torch.from_numpy(ytr), te, yte)
    assert got["5-NN"] == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= got["LR"] <= 1.0


def test_linear_probe_separates_separable_and_not_random_labels():
    x, y = blobs(n_per=40, spread=0.2)
    acc = probe_accuracy(x[:60], y[:60], x[60:], y[60:], n_neighbors=3)
    assert acc == {"LR": 1.0, "3-NN": 1.0}  # blobs 3 units apart, spread 0.2
    # labels independent of the features: the held-out accuracy is near chance (1/3);
    # 2000 test points give a binomial standard error of about 0.011
    rng = np.random.default_rng(2)
    f = rng.normal(size=(4000, 4))
    yr = rng.integers(0, 3, size=4000)
    acc = probe_accuracy(f[:2000], yr[:2000], f[2000:], yr[2000:])
    assert abs(acc["LR"] - 1 / 3) < 0.05 and abs(acc["5-NN"] - 1 / 3) < 0.05


def test_silhouette_equals_the_formula():
    x, y = blobs(n_per=10, spread=1.0, seed=3)
    sd = (x - x.mean(0)) / x.std(0)
    assert silhouette(x, y) == pytest.approx(brute_silhouette(sd, y), abs=1e-10)
    assert silhouette(x, y, standardise=False) == pytest.approx(brute_silhouette(x, y), abs=1e-10)


def test_embed_2d_is_seeded_and_keeps_separated_blobs_apart():
    x, y = blobs(n_per=25, spread=0.2)
    e1 = embed_2d(torch.from_numpy(x), "t-SNE", perplexity=10)
    e2 = embed_2d(x, "t-SNE", perplexity=10)
    assert e1.shape == (75, 2) and np.allclose(e1, e2)
    assert silhouette(e1, y, standardise=False) > 0.5


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda x, y: probe_accuracy(x.tolist(), y, x, y), TypeError, "train must be"),
        (lambda x, y: probe_accuracy(x, y, x[:, :2], y), ValueError, "same number of features"),
        (lambda x, y: probe_accuracy(x, y[:-1], x, y), ValueError, "y_train must have shape"),
        (lambda x, y: probe_accuracy(x, y.astype(float), x, y), TypeError, "integer labels"),
        (lambda x, y: probe_accuracy(x, y, x, y, n_neighbors=0), ValueError, "n_neighbors"),
        (lambda x, y: silhouette(np.where(x > 0, np.nan, x), y), ValueError, "NaN or inf"),
        (lambda x, y: silhouette(x, np.zeros_like(y)), ValueError, "two distinct labels"),
        (lambda x, y: silhouette(x[:, 0], y), ValueError, r"shape \(B, d\)"),
        (lambda x, y: embed_2d(x, "pca"), ValueError, "method must be one of"),
    ],
)
def test_bad_input(call, error, match):
    x, y = blobs(n_per=5)
    with pytest.raises(error, match=match):
        call(x, y)
