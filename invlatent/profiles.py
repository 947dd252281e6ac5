"""Compute profiles: one switch for how much work a chapter or benchmark does.

``INVLATENT_PROFILE`` selects one of

* ``smoke`` -- seconds per chapter; what CI and the nbval run of every chapter use;
* ``cpu``   -- the default book build on a laptop: real data, real training, minutes;
* ``gpu``   -- paper scale (full datasets), meant for one GPU.

When the variable is unset the profile is ``gpu`` if CUDA is available and ``cpu``
otherwise. Read it only through :func:`get_profile` (and :func:`by_profile`), so that
every chapter and benchmark agrees.

Example
-------
>>> import os
>>> os.environ["INVLATENT_PROFILE"] = "smoke"
>>> get_profile()
'smoke'
>>> by_profile(smoke=100, cpu=20_000, gpu=None)
100
>>> del os.environ["INVLATENT_PROFILE"]
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

__all__ = ["PROFILES", "get_profile", "by_profile"]

PROFILES = ("smoke", "cpu", "gpu")
_T = TypeVar("_T")


def get_profile() -> str:
    """Return the active profile name: ``'smoke'``, ``'cpu'`` or ``'gpu'``.

    Raises
    ------
    ValueError
        If ``INVLATENT_PROFILE`` is set to anything else (case and surrounding
        spaces are ignored; an empty value counts as unset).
    """
    raw = os.environ.get("INVLATENT_PROFILE", "")
    name = raw.strip().lower()
    if not name:
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(
            f"INVLATENT_PROFILE={raw!r} is not a known profile; expected one of "
            f"{', '.join(PROFILES)} (or unset for gpu when CUDA is available, else cpu)"
        )
    return name


def by_profile(*, smoke: _T, cpu: _T, gpu: _T) -> _T:
    """Pick the value for the active profile.

    All three values are required, so a chapter states its scale at every profile
    in one line: ``n_train = by_profile(smoke=2_000, cpu=20_000, gpu=110_000)``.
    """
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[get_profile()]
