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

# --- lesson-molecules (issue 31): helpers of the molecule chapters, moved into the package ---
# :mod:`._vae_eval` (the book's graph VAE and reading its training), :mod:`._graph_checks`
# (symmetry, connectivity, WL hashes of padded graphs), :mod:`._path_compare` (three
# interpolation lines, decoded and scored), :mod:`._latent_probes` (regression and maps).
from ._graph_checks import automorphism_twins, disconnected, wl_hashes  # noqa: E402
from ._latent_probes import map_r2, pooled_invariants, regression_scores  # noqa: E402
from ._path_compare import PATH_ROWS, decode_lines, path_table, three_lines, window_all_valid  # noqa: E402
from ._vae_eval import book_vae_settings, curve_flatness, load_book_vae, step_flops  # noqa: E402

__all__ += [
    "automorphism_twins", "disconnected", "wl_hashes",
    "map_r2", "pooled_invariants", "regression_scores",
    "PATH_ROWS", "three_lines", "decode_lines", "path_table", "window_all_valid",
    "book_vae_settings", "load_book_vae", "curve_flatness", "step_flops",
]

# issue 29 (ownlib): latent capture and the equivariance audit
from ._audit import equivariance_audit, plot_equivariance_audit  # noqa: E402
from ._capture import LatentCapture, capture_latents  # noqa: E402

__all__ += ["capture_latents", "LatentCapture", "equivariance_audit", "plot_equivariance_audit"]
# end issue 29 (ownlib)

# label and basis check of irreps features
from ._basis import BasisFit, diagnose_basis, fit_basis, rotation_pairs  # noqa: E402

__all__ += ["rotation_pairs", "fit_basis", "diagnose_basis", "BasisFit"]
