"""Small utilities shared by the package: devices, seeds, progress bars, caches.

Example
-------
>>> g = seeded_generator(0)
>>> float(torch.rand(1, generator=g)) == float(torch.rand(1, generator=seeded_generator(0)))
True
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Iterable, TypeVar

import numpy as np
import torch

__all__ = [
    "default_device",
    "seed_everything",
    "seeded_generator",
    "progress",
    "quiet",
    "cache_dir",
    "sha256_file",
    "TimeLimit",
]

_T = TypeVar("_T")


def default_device() -> torch.device:
    """``cuda`` when available, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seeded_generator(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` (default CPU) seeded with ``seed``."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    g = torch.Generator(device=device if device is not None else "cpu")
    g.manual_seed(seed)
    return g


def quiet() -> bool:
    """True when progress bars should be hidden: under CI (``CI`` set) or ``INVLATENT_QUIET=1``."""
    return bool(os.environ.get("CI")) or os.environ.get("INVLATENT_QUIET", "") not in ("", "0")


def progress(iterable: Iterable[_T] | None = None, **kwargs) -> "Iterable[_T]":
    """A tqdm progress bar that stays quiet under CI (see :func:`quiet`)."""
    import importlib.util

    # the notebook widget bar needs ipywidgets; without it tqdm.auto warns, so use the text bar
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm

    kwargs.setdefault("disable", quiet())
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def cache_dir(*parts: str) -> Path:
    """The user cache folder of invlatent, created on demand.

    ``INVLATENT_CACHE`` overrides the default ``~/.cache/invlatent``
    (``$XDG_CACHE_HOME/invlatent`` when that is set).
    """
    root = os.environ.get("INVLATENT_CACHE")
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "invlatent"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


class TimeLimit:
    """A training time cap that says so when it stops a run early.

    Call :meth:`expired` after each epoch; when it returns ``True`` the loop breaks, and
    :meth:`report` (called once, after the loop, with the epochs done and planned) prints one
    line when the cap cut the run short, so a chapter never shows a shortened run silently.
    ``limit=None`` means no cap.

    Parameters
    ----------
    limit : float or None
        Seconds of wall-clock time allowed (measured from construction).
    what : str
        Name of the run, for the message (e.g. ``"graph VAE (c=1)"``).

    Example
    -------
    >>> cap = TimeLimit(0.0, "toy model")
    >>> cap.expired()
    True
    >>> cap.report(done=3, planned=60)  # doctest: +ELLIPSIS
    WARNING: toy model stopped by its time limit of 0 s after 3 of 60 epochs (... s); ...
    'toy model stopped by its time limit of 0 s after 3 of 60 epochs ...'
    >>> TimeLimit(None, "uncapped").report(done=60, planned=60) is None
    True
    """

    def __init__(self, limit: float | None, what: str = "training") -> None:
        import time

        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float))):
            raise TypeError(f"limit must be a number of seconds or None, got {type(limit).__name__}")
        if limit is not None and not limit >= 0:
            raise ValueError(f"limit must be a non-negative number of seconds, got {limit!r}")
        self.limit = limit
        self.what = what
        self._clock = time.perf_counter
        self.t0 = self._clock()
        self.hit = False

    def elapsed(self) -> float:
        """Seconds since the cap was created."""
        return self._clock() - self.t0

    def expired(self) -> bool:
        """``True`` (and remembered) once more than ``limit`` seconds have passed."""
        if self.limit is not None and self.elapsed() > self.limit:
            self.hit = True
        return self.hit

    def report(self, done: int, planned: int) -> str | None:
        """Print and return one warning line if the cap stopped the run before ``planned`` epochs."""
        if not (self.hit and done < planned):
            return None
        msg = (f"{self.what} stopped by its time limit of {self.limit:g} s after {done} of {planned} epochs "
               f"({self.elapsed():.0f} s); the results below come from this shorter run")
        print(f"WARNING: {msg}", flush=True)
        return msg
