"""The one reader of the QM9 source files shipped by the registry package ``qm9pack``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["qm9_data_dir", "read_qm9_csv"]

_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")


def qm9_data_dir() -> Path:
    """The ``data/`` folder of the installed ``qm9pack`` package (never imports it).

    Raises
    ------
    ModuleNotFoundError
        If ``qm9pack`` is not installed (``pip install qm9pack``).
    """
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("qm9pack is not installed; `pip install qm9pack` ships QM9 offline")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def read_qm9_csv(columns: list[str], limit: int | None):
    """The first ``limit`` molecules (all if ``None``) of the three QM9 CSV parts, only ``columns`` (a DataFrame)."""
    import pandas as pd

    frames = []
    for part in _PARTS:
        remaining = None if limit is None else limit - sum(len(f) for f in frames)
        if remaining is not None and remaining <= 0:
            break
        frames.append(pd.read_csv(qm9_data_dir() / part, usecols=columns, nrows=remaining))
    return pd.concat(frames, ignore_index=True)
