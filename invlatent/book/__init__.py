r"""Helpers of the book's chapters: not part of the library's API.

*Interpreting Equivariant Representations* keeps here what its chapters need and a user of the
library does not: the book's own model and how it was trained, the checks and tables of its
pages, and what each chapter costs at each compute profile. A chapter imports them from here, so
that everything it imports is public; a project built on ``invlatent`` should not depend on them
(they change with the book).

* compute profiles -- :func:`get_profile`, :func:`by_profile` (``INVLATENT_PROFILE``: smoke, cpu,
  gpu; from :mod:`invlatent.profiles`) and :func:`t4_estimates` (each chapter's time and memory
  on a Colab T4, estimated from its own sizes);
* the book's graph VAE -- :func:`load_shipped_graph_vae` (the shipped weights),
  :func:`book_vae_settings`, :func:`load_book_vae`, :func:`curve_flatness`, :func:`step_flops`;
* the molecule chapters' checks -- :func:`wl_hashes`, :func:`automorphism_twins`,
  :func:`disconnected`, :func:`pooled_invariants`, :func:`regression_scores`, :func:`map_r2`;
* interpolation lines -- :func:`equal_step_paths`, :func:`path_scores`, :func:`mean_ci`,
  :func:`three_lines`, :func:`decode_lines`, :func:`path_table`, :func:`window_all_valid`,
  :data:`PATH_ROWS`;
* the image chapters' separation measures -- :func:`probe_accuracy`, :func:`silhouette`,
  :func:`embed_2d`.
"""

from ..profiles import by_profile, get_profile
from ._budget import BUDGET, COLAB, T4, Step, chapter_steps, estimate, t4_estimates
from ._graph_checks import automorphism_twins, disconnected, wl_hashes
from ._latent_probes import map_r2, pooled_invariants, regression_scores
from ._molecule_paths import equal_step_paths, mean_ci, path_scores
from ._path_compare import PATH_ROWS, decode_lines, path_table, three_lines, window_all_valid
from ._separation import embed_2d, probe_accuracy, silhouette
from ._shipped_vae import load_shipped_graph_vae
from ._vae_eval import book_vae_settings, curve_flatness, load_book_vae, step_flops

__all__ = [
    # compute profiles and what they cost
    "get_profile", "by_profile", "t4_estimates", "chapter_steps", "estimate", "Step", "BUDGET", "COLAB", "T4",
    # the book's graph VAE
    "load_shipped_graph_vae", "book_vae_settings", "load_book_vae", "curve_flatness", "step_flops",
    # the molecule chapters' checks
    "wl_hashes", "automorphism_twins", "disconnected", "pooled_invariants", "regression_scores", "map_r2",
    # interpolation lines
    "equal_step_paths", "path_scores", "mean_ci", "three_lines", "decode_lines", "path_table",
    "window_all_valid", "PATH_ROWS",
    # the image chapters' separation measures
    "probe_accuracy", "silhouette", "embed_2d",
]
