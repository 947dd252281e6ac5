"""invlatent: interpreting equivariant representations.

Equivariant encoders map one object in different poses to different latent codes on one
orbit. ``invlatent`` provides the group actions on latents, invariant projections (sorting,
alignment, random max filters, spectral and irreps invariants), exact quotient distances and
diagnostics (equivariance/invariance error, ambiguity index, information retention) used by
the book *Interpreting Equivariant Representations* (Hansen, Calissano & Feragen, ICML 2024).
"""

from .profiles import by_profile, get_profile
from .utils import cache_dir, default_device, progress, seed_everything, seeded_generator

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "get_profile",
    "by_profile",
    "cache_dir",
    "default_device",
    "progress",
    "seed_everything",
    "seeded_generator",
]

# --- core (issue 3): groups, projections, quotient metric, diagnostics ---
from .probes import ambiguity_index, equivariance_error, invariance_error, retention
from .groups import O3, SO3, Cyclic, CyclicFourier, Group, ImageRotation, Permutation, permute_sparse, to_dense_nodes
from .projections import (
    AlignToTemplate,
    Bispectrum,
    CompleteInvariants,
    IrrepNorms,
    LexSortProjection,
    MaxFilter,
    PowerSpectrum,
    ReynoldsProjection,
    SortProjection,
    align_to_template,
    bispectrum,
    complete_invariants,
    irrep_norms,
    lexsort_projection,
    max_filter,
    power_spectrum,
    reynolds_projection,
    sort_projection,
)
from .quotient import align, aligned_interpolation, pairwise_quotient_distance, quotient_distance
from .probes import InvariantProjector
from .quotient import quotient_knn  # exact quotient k-NN by bounds

__all__ += [
    "Permutation",
    "Cyclic",
    "CyclicFourier",
    "permute_sparse",
    "to_dense_nodes",
    "SO3",
    "O3",
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
    "InvariantProjector",
    "quotient_distance",
    "pairwise_quotient_distance",
    "quotient_knn",
    "align",
    "aligned_interpolation",
    "invariance_error",
    "equivariance_error",
    "ambiguity_index",
    "retention",
]
# --- end core ---

# --- molecules (issue 4): imported on first use (PEP 562, ``__getattr__`` below); the data and
# chemistry functions need the 'molecules' extra and say so in one line when it is missing ---
_LAZY = {
    "load_qm9": "invlatent.data.qm9",
    "qm9_split": "invlatent.data.qm9",
    "QM9Graphs": "invlatent.data.qm9",
    "GraphVAE": "invlatent.models.graph_vae",
    "train_graph_vae": "invlatent.models.graph_vae",
    "permute_graphs": "invlatent.models.graph_vae",
    "graphs_to_smiles": "invlatent.probes",
    "generation_metrics": "invlatent.probes",
    "valence_decode": "invlatent.probes",
    "tanimoto": "invlatent.probes",
}

__all__ += [
    "load_qm9",
    "qm9_split",
    "QM9Graphs",
    "GraphVAE",
    "train_graph_vae",
    "permute_graphs",
    "graphs_to_smiles",
    "generation_metrics",
    "valence_decode",
    "tanimoto",
]
# --- end molecules ---

# --- streaming and input-space orbits (lead) ---
from .probes import orbit_latents, orbit_spread, view_correlation
from .projections import Chunked, project_in_chunks

__all__ += ["project_in_chunks", "Chunked", "orbit_latents", "orbit_spread", "view_correlation"]
# --- end streaming ---

# --- images (issue 5): imported on first use, like the molecule names ---
_LAZY.update(rot90="invlatent.rotations", rotate="invlatent.rotations")

__all__ += ["ImageRotation", "rot90", "rotate", "Group"]
# --- end images ---

# --- issue 29: your own model (capture, audit, S_n x SO(3) sets of irreps) ---
from .probes import LatentCapture, capture_latents, equivariance_audit, plot_equivariance_audit
from .groups import PermuteNodes, Product, RotatePositions
from .projections import (GramInvariants, PooledCompleteInvariants, PooledIrrepNorms, PooledScalars,
                          gram_invariants, pooled_complete_invariants, pooled_irrep_norms, pooled_scalars)
from .quotient import pairwise_set_quotient_bounds, set_quotient_bounds

__all__ += ["LatentCapture", "capture_latents", "equivariance_audit", "plot_equivariance_audit",
            "PermuteNodes", "Product", "RotatePositions",
            "GramInvariants", "PooledCompleteInvariants", "PooledIrrepNorms", "PooledScalars",
            "gram_invariants", "pooled_complete_invariants", "pooled_irrep_norms", "pooled_scalars",
            "set_quotient_bounds", "pairwise_set_quotient_bounds"]
# --- end issue 29 ---

# --- issue 30: approximate quotient k-NN index (FAISS, the 'fast' extra, imported when built) ---
from .quotient import QuotientIndex

__all__ += ["QuotientIndex"]
# --- end issue 30 ---

# --- label and basis check of irreps features, next to equivariance_audit ---
from .probes import BasisFit, diagnose_basis, fit_basis, rotation_pairs

__all__ += ["rotation_pairs", "fit_basis", "diagnose_basis", "BasisFit"]

# --- old module paths (kept for one release, each with a DeprecationWarning; see CHANGELOG.md) ---
from . import _deprecated

_deprecated.install()


def __getattr__(name: str):
    """The molecule and image names, imported on first use; old module paths as attributes
    (``invlatent.diagnostics``), with a ``DeprecationWarning``."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if f"{__name__}.{name}" in _deprecated.MOVED:
        return _deprecated.warn_moved(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
