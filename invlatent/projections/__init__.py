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
:func:`canonicalize` (frames)      :math:`SO(3)`, :math:`O(3)` (e3nn irreps)    cross-section (PCA frame)
:func:`frame_average`              :math:`SO(3)`, :math:`O(3)` (e3nn irreps)    frame averaging
:func:`relative_projection`        orthogonal groups                            cosines to anchors
:func:`gram_mds_projection`        :math:`O(3)` (e3nn irreps)                   Gram matrix / MDS
=================================  ===========================================  =======================

One private file per idea (``_sort.py``, ``_maxfilter.py``, ``_frames.py``, ...), re-exported here;
:func:`project_in_chunks` streams any of them over data larger than device memory;
:func:`project_stream` projects latents batch by batch as a model produces them, never holding them all.
"""

from . import _align, _irrep_invariants, _maxfilter, _reynolds, _sort, _spectral
from ._align import AlignToTemplate, align_to_template
from ._frames import (FrameAveraging, LatentFrameCanonicalization, PCACanonicalization, apply_rotation,
                      approx_quotient_distance, canonicalize, frame_average, frame_set, latent_frame, pca_frame,
                      wigner_blocks)
from ._irrep_invariants import CompleteInvariants, IrrepNorms, complete_invariants, irrep_norms
from ._maxfilter import MaxFilter, max_filter
from ._relative import GramMDSProjection, RelativeProjection, gram_mds, gram_mds_projection, relative_projection
from ._reynolds import ReynoldsProjection, reynolds_projection
from ._set_irreps import (GramInvariants, PooledCompleteInvariants, PooledIrrepNorms, PooledScalars, gram_invariants,
                          pooled_complete_invariants, pooled_irrep_norms, pooled_scalars)
from ._sort import LexSortProjection, SortProjection, lexsort_projection, sort_projection
from ._spectral import Bispectrum, PowerSpectrum, bispectrum, power_spectrum
from ._streaming import Chunked, StreamedProjections, project_in_chunks, project_stream

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
    "pca_frame",
    "frame_set",
    "latent_frame",
    "canonicalize",
    "frame_average",
    "wigner_blocks",
    "apply_rotation",
    "PCACanonicalization",
    "FrameAveraging",
    "LatentFrameCanonicalization",
    "approx_quotient_distance",
    "relative_projection",
    "RelativeProjection",
    "gram_mds",
    "gram_mds_projection",
    "GramMDSProjection",
    # sets of irreps under S_n x SO(3)
    "pooled_scalars",
    "PooledScalars",
    "pooled_irrep_norms",
    "PooledIrrepNorms",
    "pooled_complete_invariants",
    "PooledCompleteInvariants",
    "gram_invariants",
    "GramInvariants",
    # streaming
    "project_in_chunks",
    "project_stream",
    "StreamedProjections",
    "Chunked",
]

# Old module paths (``invlatent.projections.sort`` ...) keep working for one release, with a
# DeprecationWarning (invlatent._deprecated).
from .. import _deprecated as _dep


def __getattr__(name: str):
    if f"{__name__}.{name}" in _dep.MOVED:
        return _dep.warn_moved(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
