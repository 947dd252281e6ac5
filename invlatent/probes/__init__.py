r"""Diagnostics: what a representation keeps and loses, read off downstream of the projections.

* :mod:`._diagnostics` -- :func:`invariance_error`, :func:`equivariance_error`,
  :func:`ambiguity_index`, :func:`retention` (with :func:`distance_correlation`,
  :func:`knn_agreement`);
* :mod:`._orbits` -- orbits sampled in input space: :func:`orbit_latents`, :func:`orbit_spread`,
  :func:`view_correlation`;
* :mod:`._sklearn` -- :class:`InvariantProjector`, the scikit-learn wrapper.

Capturing a model's latents and auditing them moved to :mod:`invlatent.audit`, the chemistry
metrics to :mod:`invlatent.molecules` and the chapters' helpers to :mod:`invlatent.book`; their
old names here still work for one release, with a ``DeprecationWarning``.
"""

from ._diagnostics import (ambiguity_index, distance_correlation, equivariance_error, invariance_error, knn_agreement,
                           retention)
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
]

from .. import _deprecated as _dep  # noqa: E402


def __getattr__(name: str):
    """Names that moved out of this package (one release, with a ``DeprecationWarning``)."""
    return _dep.moved_attribute(__name__, name)
