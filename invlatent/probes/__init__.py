r"""Probes: what a representation keeps and loses, read off downstream of the projections.

* :mod:`._diagnostics` -- :func:`invariance_error`, :func:`equivariance_error`,
  :func:`ambiguity_index`, :func:`retention` (with :func:`distance_correlation`,
  :func:`knn_agreement`);
* :mod:`._orbits` -- orbits sampled in input space: :func:`orbit_latents`, :func:`orbit_spread`,
  :func:`view_correlation`;
* :mod:`._sklearn` -- :class:`InvariantProjector`, the scikit-learn wrapper;
* :mod:`._chem` -- chemistry metrics of generated molecules (SMILES, validity, Tanimoto);
* :mod:`._molecule_paths` -- latent interpolation paths between molecules at equal step length
  and their scores (:func:`equal_step_paths`, :func:`path_scores`, :func:`mean_ci`).
"""

from ._chem import (canonical_smiles, draw_molecules, generation_metrics, graph_to_mol, graphs_to_smiles, tanimoto,
                    valence_decode)
from ._diagnostics import (ambiguity_index, distance_correlation, equivariance_error, invariance_error, knn_agreement,
                           retention)
from ._molecule_paths import equal_step_paths, mean_ci, path_scores
from ._orbits import orbit_latents, orbit_spread, view_correlation
from ._sklearn import InvariantProjector

__all__ = [
    "invariance_error",
    "equivariance_error",
    "ambiguity_index",
    "retention",
    "distance_correlation",
    "knn_agreement",
    "orbit_latents",
    "orbit_spread",
    "view_correlation",
    "InvariantProjector",
    "graph_to_mol",
    "graphs_to_smiles",
    "canonical_smiles",
    "generation_metrics",
    "draw_molecules",
    "valence_decode",
    "tanimoto",
    "equal_step_paths",
    "path_scores",
    "mean_ci",
]
