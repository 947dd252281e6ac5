"""Invariant projections, each a function and an ``nn.Module``.

=================================  ===========================================  =======================
projection                         group                                        kind
=================================  ===========================================  =======================
:func:`sort_projection`            :math:`S_n`                                  isometric for ``c = 1``
:func:`lexsort_projection`         :math:`S_n`                                  cross-section
:func:`align_to_template`          any with exact alignment                     cross-section
:func:`max_filter`                 finite groups                                random, separating
:func:`reynolds_projection`        any with ``average``                         linear, lossy
:func:`power_spectrum`             :math:`C_N` / :math:`SO(2)` fibers           lossy
:func:`bispectrum`                 :math:`C_N` / :math:`SO(2)` fibers           complete (generic)
:func:`irrep_norms`                :math:`SO(3)`, :math:`O(3)` (e3nn irreps)    lossy
:func:`complete_invariants`        :math:`SO(3)`, :math:`O(3)` (e3nn irreps)    Gram / tensor square
=================================  ===========================================  =======================
"""

from .align import AlignToTemplate, align_to_template
from .irreps import CompleteInvariants, IrrepNorms, complete_invariants, irrep_norms
from .maxfilter import MaxFilter, max_filter
from .reynolds import ReynoldsProjection, reynolds_projection
from .sort import LexSortProjection, SortProjection, lexsort_projection, sort_projection
from .spectral import Bispectrum, PowerSpectrum, bispectrum, power_spectrum

__all__ = [
    "sort_projection",
    "SortProjection",
    "lexsort_projection",
    "LexSortProjection",
    "align_to_template",
    "AlignToTemplate",
    "max_filter",
    "MaxFilter",
    "reynolds_projection",
    "ReynoldsProjection",
    "power_spectrum",
    "PowerSpectrum",
    "bispectrum",
    "Bispectrum",
    "irrep_norms",
    "IrrepNorms",
    "complete_invariants",
    "CompleteInvariants",
]
