r"""Three interpolation lines between molecules, decoded and scored at equal step length.

Between molecules :math:`a` and :math:`b` an equivariant encoder allows three straight lines:

* **raw, dataset order** -- :math:`z_a \to z_b`, both encoded in the dataset's atom order;
* **raw, random order** -- :math:`z_a \to z_b'`, with :math:`b` encoded in a random node order;
* **aligned** -- :math:`z_a \to \sigma^\star z_b'`, :math:`\sigma^\star = \arg\min_\sigma
  \lVert z_a - \sigma\cdot z_b'\rVert`: a geodesic of the quotient.

:func:`three_lines` builds their ends and the common step length (a tenth of the median
aligned length, this book's choice); :func:`decode_lines` cuts every line into equal steps
(:func:`~invlatent.book.equal_step_paths`), decodes each point with the model's argmax
(and, as a second view, with valence-constrained decoding) and scores each path
(:func:`~invlatent.book.path_scores`); :func:`path_table` shows the means with their 95%
intervals. :func:`window_all_valid` is the length-matched control: a shorter path has fewer
steps that can fail, so it asks how often a run of consecutive steps *as long as another
path* is valid throughout.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

__all__ = ["three_lines", "decode_lines", "path_table", "window_all_valid", "PATH_ROWS"]

#: Rows of :func:`path_table`: label -> key of the scores of :func:`decode_lines`.
PATH_ROWS = {
    "path length": "length",
    "inner steps": "n_inner",
    "step validity": "step_validity",
    "all steps valid": "all_valid",
    "heavy atoms / length": "d_heavy_atoms",
    "rings / length": "d_rings",
    "logP / length": "d_logp",
    "similarity to nearer end": "sim_nearer_end",
    "same, valence-decoded (2nd view)": "sim_valence",
}


def three_lines(codes: torch.Tensor, codes_perm: torch.Tensor, ia: torch.Tensor, ib: torch.Tensor,
                step_fraction: float = 0.1):
    """Ends of the three lines for the pairs ``(ia[p], ib[p])``.

    ``codes``: (N, n, c) codes in dataset node order; ``codes_perm``: (N, n, c) codes of the
    same molecules in random node orders; ``ia``, ``ib``: (P,) long. Returns ``(za, ends_b,
    g_star, step)``: ``za`` (P, n, c), ``ends_b`` a dict of the three ``z_b`` ends (P, n, c),
    ``g_star`` (P, n) the aligning permutations and ``step`` the step length,
    ``step_fraction`` times the median aligned path length.

    Example
    -------
    >>> z = torch.randn(5, 4, 1, generator=torch.Generator().manual_seed(0))
    >>> za, ends, g, step = three_lines(z, z.flip(1), torch.tensor([0, 1]), torch.tensor([2, 3]))
    >>> list(ends), tuple(za.shape), step > 0
    (['raw, dataset order', 'raw, random order', 'aligned'], (2, 4, 1), True)
    """
    from ..groups import Permutation
    from ..quotient import align

    if codes.shape != codes_perm.shape or codes.dim() != 3:
        raise ValueError(f"codes and codes_perm must both be (N, n, c), got {tuple(codes.shape)} "
                         f"and {tuple(codes_perm.shape)}")
    za, zb_perm = codes[ia], codes_perm[ib]
    zb_al, g_star = align(za, zb_perm, Permutation(), return_element=True)
    ends_b = {"raw, dataset order": codes[ib], "raw, random order": zb_perm, "aligned": zb_al}
    step = step_fraction * float((zb_al - za).flatten(1).norm(dim=1).median())
    return za, ends_b, g_star, step


def decode_lines(model, za: torch.Tensor, ends_b: Mapping[str, torch.Tensor], step: float,
                 ends: tuple[Sequence[str], Sequence[str]]):
    """Decode every line of ``ends_b`` at equal ``step`` and score each path.

    ``model`` has ``decode(z) -> logits`` (a :class:`~invlatent.models.graph_vae.GraphVAE`);
    ``ends`` are the canonical SMILES of the encoded molecules ``(a, b)``. Returns
    ``(results, decoded)``: ``results[name]`` the (P,) arrays of
    :func:`~invlatent.book.path_scores` plus ``length`` and ``sim_valence`` (similarity to
    the nearer end of the valence-decoded steps); ``decoded[name] = (smiles, pair, t)`` of
    every point of the argmax decode, ``pair`` and ``t`` on the CPU (beside the SMILES they
    describe, whatever the device of the codes).
    """
    from ..models.graph_vae import decode_graphs
    from ..utils import in_batches
    from ..molecules._chem import graphs_to_smiles, valence_decode
    from ._molecule_paths import equal_step_paths, path_scores

    def smiles_of(points, valence=False):
        out = in_batches(model.decode, points)  # every point of every path: bounded memory
        return graphs_to_smiles(*(valence_decode(out) if valence else decode_graphs(out)))

    results, decoded = {}, {}
    for name, zb in ends_b.items():
        pts, pair, t, length = equal_step_paths(za, zb, step)
        sm = smiles_of(pts)
        decoded[name] = (sm, pair.cpu(), t.cpu())
        valence_scores = path_scores(smiles_of(pts, valence=True), pair, t, length, ends)
        results[name] = {**path_scores(sm, pair, t, length, ends), "length": length.cpu().numpy(),
                         "sim_valence": valence_scores["sim_nearer_end"]}
    return results, decoded


def path_table(results: Mapping[str, Mapping[str, np.ndarray]], rows: Mapping[str, str] = PATH_ROWS):
    """A DataFrame of ``"mean ± half-width"`` (normal 95% interval over pairs,
    :func:`~invlatent.book.mean_ci`): one row per score of ``rows``, one column per line."""
    import pandas as pd

    from ._molecule_paths import mean_ci

    return pd.DataFrame({name: {label: "{:.3f} ± {:.3f}".format(*mean_ci(r[key])) for label, key in rows.items()}
                         for name, r in results.items()})


def window_all_valid(smiles: Sequence[str | None], pair: torch.Tensor, t: torch.Tensor,
                     window: np.ndarray) -> np.ndarray:
    """(P,): for each path ``p``, the share of runs of ``window[p]`` consecutive inner steps
    whose decodes are all valid (the chance that a run placed uniformly at random is).

    ``smiles``, ``pair``, ``t``: every decoded point, as :func:`decode_lines` returns them
    (path order within each pair; ``t`` in [0, 1], the ends ``t = 0, 1`` are not steps).
    ``window[p] = 0`` gives NaN (nothing to fail; like an aligned path with no inner step);
    a window longer than the path is clipped to the whole path.

    Example
    -------
    >>> sm = ["C", "C", None, "C", "C", "C",   "C", "C", "C"]   # path 0: 4 inner, path 1: 1
    >>> pair = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1])
    >>> t = torch.tensor([0, .2, .4, .6, .8, 1, 0, .5, 1])
    >>> window_all_valid(sm, pair, t, np.array([2, 1])).tolist()   # runs: (1,2) (2,3) (3,4)
    [0.3333333333333333, 1.0]
    """
    pair_np = pair.cpu().numpy()
    t_np = t.cpu().numpy()
    window = np.asarray(window)
    P = len(window)
    if pair_np.shape != t_np.shape or len(smiles) != len(pair_np):
        raise ValueError("smiles, pair and t must have one entry per decoded point")
    valid = np.array([s is not None for s in smiles])
    inner = (t_np > 0) & (t_np < 1)
    out = np.full(P, np.nan)
    for p in range(P):
        v = valid[(pair_np == p) & inner]
        w = min(int(window[p]), len(v))
        if w <= 0:
            continue
        bad = np.concatenate([[0], np.cumsum(~v)])  # invalid steps among the first k
        runs = bad[w:] - bad[:-w]  # invalid steps in each run of w consecutive steps
        out[p] = float((runs == 0).mean())
    return out
