r"""Latent interpolation paths between molecules, compared at equal Euclidean step length.

A path from :math:`z_a` to :math:`z_b` is cut into steps of (at most) length :math:`\delta`:
:math:`K = \lceil \lVert z_b - z_a\rVert / \delta \rceil` steps, points
:math:`z(t_k) = (1 - t_k) z_a + t_k z_b` with :math:`t_k = k / K`. A long path is therefore
decoded at more points than a short one, and every per-step score compares like with like:
the same distance travelled between two decodes. Scores of one path (inner points
:math:`0 < t_k < 1` only, decoded molecules :math:`m_k`):

* **step validity** -- the fraction of inner points whose decode is a valid molecule;
* **all valid** -- whether every inner point is valid;
* **descriptor change per unit length** -- for a descriptor :math:`D` (heavy atoms, rings,
  logP), the total variation over the valid decodes in path order (ends included) divided by
  the path length,
  :math:`\sum |D(m_{k'}) - D(m_k)| / \lVert z_b - z_a\rVert` (0 when fewer than two are valid);
* **similarity to the nearer end** -- mean Tanimoto similarity of each inner decode to the
  encoded molecule at the nearer end (:math:`a` for :math:`t_k < 1/2`, else :math:`b`); an
  invalid decode scores 0.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .._extras import needs

__all__ = ["equal_step_paths", "path_scores", "mean_ci"]


def equal_step_paths(za: torch.Tensor, zb: torch.Tensor, step: float):
    """Points on the straight lines ``za[p] -> zb[p]`` at most ``step`` apart.

    ``za``, ``zb``: (P, n, c). Returns ``(points (N, n, c), pair (N,) long, t (N,), length (P,))``,
    points of pair ``p`` in path order, both ends included, all on the device of ``za``.

    Example
    -------
    >>> za = torch.zeros(2, 1, 1); zb = torch.ones(2, 1, 1); zb[1] *= 1.5   # lengths 1 and 1.5
    >>> pts, pair, t, length = equal_step_paths(za, zb, step=0.5)
    >>> pair.tolist(), [round(v, 2) for v in t.tolist()]
    ([0, 0, 0, 1, 1, 1, 1], [0.0, 0.5, 1.0, 0.0, 0.33, 0.67, 1.0])
    """
    if not (isinstance(step, (int, float)) and math.isfinite(step) and step > 0):
        raise ValueError(f"step must be a positive finite number, got {step}")
    if za.shape != zb.shape or za.dim() != 3:
        raise ValueError(f"za and zb must both have shape (P, n, c), got {tuple(za.shape)} and {tuple(zb.shape)}")
    length = (zb - za).flatten(1).norm(dim=1)
    K = torch.clamp(torch.ceil(length / step).long(), min=1)
    pair = torch.repeat_interleave(torch.arange(len(K), device=K.device), K + 1)
    start = torch.cumsum(K + 1, 0) - (K + 1)
    k = torch.arange(len(pair), device=K.device) - start[pair]
    t = k.to(za.dtype) / K[pair].to(za.dtype)
    tt = t.view(-1, 1, 1)
    points = (1 - tt) * za[pair] + tt * zb[pair]
    return points, pair, t, length


def _descriptors(smiles: Sequence[str | None]) -> np.ndarray:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Crippen, rdMolDescriptors

    RDLogger.DisableLog("rdApp.*")
    out = np.full((len(smiles), 3), np.nan)
    for i, s in enumerate(smiles):
        m = Chem.MolFromSmiles(s) if s is not None else None
        if m is not None:
            out[i] = (m.GetNumHeavyAtoms(), rdMolDescriptors.CalcNumRings(m), Crippen.MolLogP(m))
    return out


@needs("molecules", "rdkit")
def path_scores(smiles: Sequence[str | None], pair: torch.Tensor, t: torch.Tensor, length: torch.Tensor,
                ends: tuple[Sequence[str], Sequence[str]]) -> dict[str, np.ndarray]:
    """Per-path scores (module docstring) from the decoded ``smiles`` of every point of
    :func:`equal_step_paths` and the canonical SMILES ``ends = (a, b)`` of the encoded molecules.

    Returns arrays of shape (P,): ``step_validity``, ``all_valid``, ``d_heavy_atoms``,
    ``d_rings``, ``d_logp`` (change per unit length), ``sim_nearer_end`` and ``n_inner``.
    """
    from ..molecules._chem import tanimoto

    pair, t = pair.cpu().numpy(), t.cpu().numpy()
    P = len(length)
    inner = (t > 0) & (t < 1)
    valid = np.array([s is not None for s in smiles])
    desc = _descriptors(smiles)
    a, b = ends
    nearer = [a[p] if tk < 0.5 else b[p] for p, tk in zip(pair, t)]
    idx = np.flatnonzero(inner)
    sim = np.zeros(len(smiles))
    sims = tanimoto([smiles[i] for i in idx], [nearer[i] for i in idx])
    sim[idx] = np.nan_to_num(np.asarray(sims, dtype=float), nan=0.0)
    out = {k: np.zeros(P) for k in ("step_validity", "all_valid", "d_heavy_atoms", "d_rings", "d_logp",
                                     "sim_nearer_end", "n_inner")}
    L = length.cpu().numpy()
    for p in range(P):
        sel = np.flatnonzero((pair == p) & inner)
        out["n_inner"][p] = len(sel)
        if len(sel) == 0:  # a path shorter than one step: nothing between its ends
            out["step_validity"][p] = out["all_valid"][p] = np.nan
            out["sim_nearer_end"][p] = np.nan
            continue
        v = valid[sel]
        out["step_validity"][p] = v.mean()
        out["all_valid"][p] = float(v.all())
        out["sim_nearer_end"][p] = sim[sel].mean()
        whole = np.flatnonzero(pair == p)
        d = desc[whole][valid[whole]]
        tv = np.abs(np.diff(d, axis=0)).sum(0) if len(d) > 1 else np.zeros(3)
        out["d_heavy_atoms"][p], out["d_rings"][p], out["d_logp"][p] = tv / max(L[p], 1e-12)
    return out


def mean_ci(values: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """Mean over pairs (NaN ignored) and the half-width of its normal 95% interval,
    :math:`z\\,s/\\sqrt{m}` with the sample standard deviation :math:`s` of the :math:`m` values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    half = z * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else float("nan")
    return float(v.mean()), float(half)
