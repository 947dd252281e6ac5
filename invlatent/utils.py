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
import sys
from pathlib import Path
from typing import Iterable, TypeVar

import numpy as np
import torch
from ._validation import describe

__all__ = [
    "default_device",
    "seed_everything",
    "seeded_generator",
    "progress",
    "quiet",
    "cache_dir",
    "sha256_file",
    "glue",
    "in_batches",
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


def _live_bar() -> bool:
    """True when a progress bar may redraw itself: a terminal, or ``INVLATENT_PROGRESS=live``."""
    mode = os.environ.get("INVLATENT_PROGRESS", "")
    if mode in ("live", "line"):
        return mode == "live"
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


class _Sink:
    """A write-only file that drops everything (the swallowed redraws of a one-line bar)."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _one_line_tqdm():
    from tqdm.std import tqdm

    class OneLineTqdm(tqdm):
        """tqdm that counts silently and prints its final state once, as one line, on close.

        Outside a terminal (a Jupyter kernel, the book build, a log file) every redraw of a
        bar becomes another line or another output block; this one leaves exactly one.
        """

        def __init__(self, *args, **kwargs):
            self._final_file = kwargs.pop("file", None)
            self._final_leave = kwargs.pop("leave", True)
            kwargs.update(file=_Sink(), mininterval=float("inf"), dynamic_ncols=False)
            kwargs.setdefault("ncols", 80)
            self._final_done = False
            super().__init__(*args, **kwargs)

        def close(self) -> None:
            if self._final_done or self.disable:
                return super().close()
            self._final_done = True
            line = self.__str__()
            super().close()
            if self._final_leave:
                out = self._final_file if self._final_file is not None else sys.stderr
                out.write(line.rstrip() + "\n")
                out.flush()

    return OneLineTqdm


def progress(iterable: Iterable[_T] | None = None, **kwargs) -> "Iterable[_T]":
    """A tqdm progress bar: live in a terminal, one final line elsewhere, silent under CI.

    In a terminal the bar redraws in place. Anywhere else (a Jupyter kernel, the book build,
    a pipe) it prints nothing while the loop runs and one line when it ends, for example
    ``GraphVAE: 100%|##########| 12/12 [06:39<00:00, 33.2s/epoch, loss=1.23, kl=4.56]``,
    so a built page shows one line per loop instead of a stream of redraws.
    ``INVLATENT_PROGRESS=live`` (or ``line``) forces either behaviour; under CI (see
    :func:`quiet`) the bar is disabled.

    Example
    -------
    >>> import io
    >>> out = io.StringIO()
    >>> total = sum(progress(range(3), desc="demo", file=out, disable=False))
    >>> total, out.getvalue().splitlines()[-1].startswith("demo: 100%")
    (3, True)
    """
    kwargs.setdefault("disable", quiet())
    if _live_bar():
        import importlib.util

        # the notebook widget bar needs ipywidgets; without it tqdm.auto warns: use the text bar
        if importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.auto import tqdm
        else:
            from tqdm.std import tqdm
        kwargs.setdefault("dynamic_ncols", True)
        return tqdm(iterable, **kwargs)
    return _one_line_tqdm()(iterable, **kwargs)


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


def glue(name: str, value):
    """Record ``value`` under ``name`` for the book's prose; return ``value`` unchanged.

    In the book build this is ``myst_nb.glue(name, value, display=False)``, and the text shows
    the value with ``{glue:text}`name:.2f```. NumPy and torch scalars are first turned into
    Python numbers: myst-nb formats the value from its ``repr``, and ``np.float64(0.5)`` would
    not format. Without myst-nb (a plain Python session, Colab) nothing is recorded.

    Example
    -------
    >>> float(glue("demo_value", np.float64(0.25)))
    0.25
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {describe(name)}")
    plain = value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        plain = value.item()
    elif isinstance(value, np.generic):
        plain = value.item()
    try:
        from myst_nb import glue as _myst_glue
    except ImportError:
        return value
    try:
        from IPython import get_ipython
    except ImportError:
        return value
    if get_ipython() is None:  # not in a kernel: nothing would receive the record
        return value
    _myst_glue(name, plain, display=False)
    return value


def in_batches(fn, *inputs: torch.Tensor, batch_size: int = 4096, device: torch.device | str | None = None,
               out_device: torch.device | str | None = None, desc: str | None = None):
    """``fn(*inputs)`` computed ``batch_size`` rows at a time, under ``torch.no_grad()``.

    For encodes and decodes of whole data sets: each batch of every input (row slices of
    tensors that share their first dimension) is moved to ``device`` (default: left where it
    is), ``fn`` runs on it, and its outputs are moved to ``out_device`` (default: left where
    ``fn`` put them) and concatenated. ``fn`` may return a tensor, a tuple or list of tensors,
    or a dict of tensors, each with one row per input row; the result has the same form. Peak
    memory is that of one batch plus the gathered outputs, whatever the number of rows; the
    result equals one call on all rows for any ``fn`` that treats rows independently (up to
    float rounding of differently sized matmuls). ``desc`` shows a progress bar over batches.

    Example
    -------
    >>> x = torch.arange(10.0).view(5, 2)
    >>> out = in_batches(lambda a, b: {"sum": a + b, "max": a.amax(1)}, x, 2 * x, batch_size=2)
    >>> out["sum"].shape, out["max"].tolist()
    (torch.Size([5, 2]), [1.0, 3.0, 5.0, 7.0, 9.0])
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {describe(fn)}")
    if not inputs:
        raise TypeError("in_batches needs at least one input tensor")
    for k, t in enumerate(inputs):
        if not isinstance(t, torch.Tensor) or t.dim() == 0:
            raise TypeError(f"input {k} must be a torch.Tensor with a batch dimension, got {describe(t)}")
    n = inputs[0].shape[0]
    if any(t.shape[0] != n for t in inputs):
        raise ValueError(f"inputs must share their first dimension, got {[tuple(t.shape) for t in inputs]}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int, got {describe(batch_size)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size}")
    batches = range(0, max(n, 1), batch_size)
    starts: Iterable[int] = batches
    if desc is not None:
        starts = progress(batches, desc=desc, unit="batch", total=len(batches))
    parts = []
    with torch.no_grad():
        for s in starts:
            batch = [t[s:s + batch_size] for t in inputs]
            if device is not None:
                batch = [t.to(device, non_blocking=True) for t in batch]
            parts.append(_gather_rows(fn(*batch), batch[0].shape[0], out_device))
    return _cat_like(parts)


def _rows_of(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return list(out)
    if isinstance(out, dict):
        return list(out.values())
    return [out]


def _gather_rows(out, rows: int, out_device):
    """Check that every tensor of ``out`` has ``rows`` rows; move it to ``out_device``."""
    for t in _rows_of(out):
        if not isinstance(t, torch.Tensor) or t.dim() == 0 or t.shape[0] != rows:
            raise ValueError(f"fn must return tensors (alone, in a tuple, list or dict) with one row per input "
                             f"row ({rows}), got {describe(t)}")
    if out_device is None:
        return out
    if isinstance(out, torch.Tensor):
        return out.to(out_device)
    if isinstance(out, dict):
        return {k: v.to(out_device) for k, v in out.items()}
    return type(out)(v.to(out_device) for v in out)


def _cat_like(parts: list):
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if isinstance(first, dict):
        return {k: torch.cat([p[k] for p in parts]) for k in first}
    return type(first)(torch.cat(ts) for ts in zip(*parts))


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
