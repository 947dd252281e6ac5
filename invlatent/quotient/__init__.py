r"""The quotient metric :math:`d([z],[z']) = \min_g \lVert z - \rho(g) z'\rVert`, orbit alignment and the solvers behind them.

* :mod:`._metric` -- :func:`quotient_distance`, :func:`pairwise_quotient_distance`,
  :func:`align`, :func:`aligned_interpolation` (check once, then call the group's protocol);
* :mod:`._assignment` -- exact batched linear assignment (:func:`batched_assignment`,
  :func:`assignment_value`), used by :class:`~invlatent.groups.Permutation`;
* :mod:`._knn` -- :func:`quotient_knn`, exact k nearest neighbours (pruned by lower bounds for
  :math:`S_n`), through the group's ``knn``;
* :mod:`._index` -- :class:`QuotientIndex`, approximate (and exact flat) k-NN through FAISS,
  re-ranked exactly, with its own recall estimate;
* :mod:`._set_bounds` -- :func:`set_quotient_bounds`: lower and upper bounds on the quotient
  distance of sets of irreps under :math:`S_n \times SO(3)`;
* :mod:`._batched_assignment` -- the CPU batch of assignment problems (lapx when installed, else scipy);
* :mod:`._kabsch` -- orthogonal Procrustes, used by :class:`~invlatent.groups.SO3`/:class:`~invlatent.groups.O3`;
* :mod:`._rotation_search` -- the Kabsch-initialised rotation search (upper bound for ``lmax >= 2``)
  and the unchecked PCA-frame kernels it starts from.

The solver modules import nothing from the rest of the package, so the groups can use them
without an import circle.
"""

from ._assignment import MAX_EXACT_DP_NODES, assignment_value, batched_assignment
from ._index import QuotientIndex
from ._knn import quotient_knn
from ._metric import align, aligned_interpolation, pairwise_quotient_distance, quotient_distance
from ._set_bounds import pairwise_set_quotient_bounds, set_quotient_bounds

__all__ = [
    # distances and alignment
    "quotient_distance",
    "pairwise_quotient_distance",
    "align",
    "aligned_interpolation",
    # neighbours: exact by bounds, and the approximate index (FAISS, re-ranked exactly)
    "quotient_knn",
    "QuotientIndex",
    # bounds for sets of irreps under S_n x SO(3)
    "set_quotient_bounds",
    "pairwise_set_quotient_bounds",
    # the exact assignment solver
    "batched_assignment",
    "assignment_value",
    "MAX_EXACT_DP_NODES",
]
