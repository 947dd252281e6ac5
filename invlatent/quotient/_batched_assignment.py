r"""Exact batched linear assignment on the CPU: ``lapx``'s batch solver when installed, else scipy.

:math:`\pi^\star_b = \arg\min_{\pi\in S_n} \sum_i C_{b,i,\pi(i)}` for a batch of square cost
matrices. Three exact CPU solvers were timed on the same ``(B, 9, 9)`` float64 batch in one
process (one thread, 2-core shared machine, ``B = 20,000``-``100,000`` uniform costs;
``benchmarks/run.py`` re-measures them as ``assignment_solvers``):

================================================  ===============
solver                                            pairs / second
================================================  ===============
``lap.lapjvr_batch`` (lapx 0.11, C++, one call)   1.2-1.4e5 (3.9e5 without unpacking its list output)
``scipy.optimize.linear_sum_assignment`` loop     0.75-1.0e5
subset dynamic program (``assignment_value``)     0.44e5
================================================  ===============

so ``lapx`` (an optional dependency: ``pip install invlatent[fast]``) is used when importable
and the scipy loop otherwise. Both are exact; the tests compare every solution's cost with
scipy's on random, tied (integer) and padded (zero-row) costs.

Example
-------
>>> import numpy as np
>>> from invlatent.quotient._batched_assignment import solve_assignment
>>> C = np.array([[[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]]])
>>> solve_assignment(C).tolist()
[[1, 0, 2]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["solve_assignment", "have_lapx"]


def _lapx():
    try:
        import lap  # lapx installs the module ``lap``
    except ImportError:
        return None
    return lap if hasattr(lap, "lapjvr_batch") else None


def have_lapx() -> bool:
    """Whether the optional ``lapx`` batch solver is importable."""
    return _lapx() is not None


def solve_assignment(cost: np.ndarray, solver: str = "auto") -> np.ndarray:
    r"""Optimal permutations of a batch of square cost matrices.

    Parameters
    ----------
    cost : ndarray, shape ``(B, n, n)``, finite floats
    solver : ``"auto"`` (lapx if installed, else scipy), ``"lapx"`` or ``"scipy"``

    Returns
    -------
    ndarray of int64, shape ``(B, n)``: row ``i`` of problem ``b`` goes to column ``perm[b, i]``.
    """
    cost = np.asarray(cost)
    if cost.ndim != 3 or cost.shape[1] != cost.shape[2]:
        raise ValueError(f"cost must have shape (B, n, n), got {cost.shape}")
    if solver not in ("auto", "lapx", "scipy"):
        raise ValueError(f"solver must be 'auto', 'lapx' or 'scipy', got {solver!r}")
    B, n, _ = cost.shape
    if B == 0:
        return np.zeros((0, n), dtype=np.int64)
    if n == 1:
        return np.zeros((B, 1), dtype=np.int64)
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    lap = _lapx() if solver in ("auto", "lapx") else None
    if solver == "lapx" and lap is None:
        raise ImportError("solver='lapx' needs the optional dependency lapx (pip install lapx)")
    if lap is not None:
        _, cols = lap.lapjvr_batch(cost, return_cost=False, n_threads=1)  # rows come back sorted 0..n-1
        return np.concatenate(cols).reshape(B, n).astype(np.int64, copy=False)
    from scipy.optimize import linear_sum_assignment

    return np.stack([linear_sum_assignment(c)[1] for c in cost]).astype(np.int64, copy=False)
