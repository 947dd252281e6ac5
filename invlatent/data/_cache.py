"""Checksummed ``.npz`` caches of processed data sets (one helper for every loader)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..utils import cache_dir, sha256_file

__all__ = ["cached_arrays"]


def _cache_ok(npz: Path, sidecar: Path) -> bool:
    if not (npz.is_file() and sidecar.is_file()):
        return False
    try:
        want = json.loads(sidecar.read_text())["sha256"]
    except (ValueError, KeyError):
        return False
    return sha256_file(npz) == want


def cached_arrays(stem: str, build: Callable[[], dict], *, version: str, rebuild: bool = False,
                  root: str | os.PathLike | None = None, label: str = "", verbose: bool = False) -> dict:
    """Load the arrays cached as ``<root>/<stem>.npz``, building them with ``build()`` when needed.

    The cache is an ``.npz`` file with a ``.sha256`` sidecar holding its checksum (and
    ``version``). It is rebuilt when either file is missing, the sidecar is unreadable or the
    checksum does not match, so a truncated or corrupted cache never loads silently. Writes go
    to a temporary file first and are moved into place atomically. ``root`` defaults to
    ``invlatent.utils.cache_dir("qm9")``.
    """
    base = Path(root) if root is not None else cache_dir("qm9")
    base.mkdir(parents=True, exist_ok=True)
    npz, sidecar = base / f"{stem}.npz", base / f"{stem}.sha256"
    t0 = time.perf_counter()
    built = False
    if rebuild or not _cache_ok(npz, sidecar):
        arrays = build()
        tmp = npz.with_name(npz.stem + f".tmp{os.getpid()}.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, npz)
        sidecar.write_text(json.dumps({"sha256": sha256_file(npz), "version": version}))
        built = True
    with np.load(npz, allow_pickle=False) as f:
        arr = {k: f[k] for k in f.files}
    if verbose:
        print(f"{label}: {'built' if built else 'loaded'} {len(arr['mask'])} molecules "
              f"in {time.perf_counter() - t0:.1f} s ({npz})")
    return arr
