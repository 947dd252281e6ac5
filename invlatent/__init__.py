"""invlatent: interpreting equivariant representations.

Equivariant encoders map one object in different poses to different latent codes on one
orbit. ``invlatent`` analyses such latents through what does not change along the orbit, in the
order a user meets the parts (Hansen, Calissano & Feragen, ICML 2024):

1. :mod:`invlatent.groups` -- **symmetries**: the groups acting on latents (permutations, cyclic
   shifts, rotations of irreps, products) and on a model's inputs (node orders, positions), all
   through one protocol, :class:`Group`;
2. :mod:`invlatent.audit` -- **your model**: capture its latents, audit that they transform as
   the group says, and check what its irreps labels mean;
3. :mod:`invlatent.projections` -- **invariant projections**: sorting, alignment, max filters,
   spectral and irreps invariants, each a function and an ``nn.Module``;
4. :mod:`invlatent.quotient` -- **the quotient**: exact distances between orbits, alignment,
   nearest neighbours and bounds;
5. :mod:`invlatent.probes` -- **diagnostics**: invariance and equivariance errors, the ambiguity
   index, what a projection retains.

Domain code sits in its own subpackages, imported on first use: :mod:`invlatent.molecules`
(RDKit), :mod:`invlatent.images`, :mod:`invlatent.data` (QM9, MNIST) and :mod:`invlatent.models`
(the book's models and adapters to pretrained ones). :mod:`invlatent.io` reads and writes
checksummed safetensors, :mod:`invlatent.utils` holds seeds, devices and progress bars, and
:mod:`invlatent.testing` tolerances and a simulated CUDA device. The helpers of the book's
chapters live in :mod:`invlatent.book`, outside the library's API.

Example
-------
>>> import torch
>>> from invlatent import Permutation, quotient_distance, sort_projection
>>> z = torch.randn(1, 5, 1)                      # one latent: 5 nodes, 1 channel
>>> g = torch.tensor([[3, 0, 4, 1, 2]])          # a node order
>>> zg = Permutation().act(g, z)                  # the same object, another code
>>> bool(torch.equal(sort_projection(z), sort_projection(zg)))   # the invariant agrees
True
>>> float(quotient_distance(z, zg, Permutation()))               # and the orbits are one
0.0
"""

from . import _deprecated
from .audit import (BasisFit, LatentCapture, capture_latents, diagnose_basis, equivariance_audit, fit_basis,
                    plot_equivariance_audit, rotation_pairs)
from .groups import (O3, SO3, Cyclic, CyclicFourier, Group, ImageRotation, PermuteNodes, Permutation, Product,
                     RotatePositions, permute_sparse, to_dense_nodes)
from .probes import (InvariantProjector, ambiguity_index, equivariance_error, invariance_error, orbit_latents,
                     orbit_spread, retention, view_correlation)
from .projections import (AlignToTemplate, Bispectrum, Chunked, CompleteInvariants, GramInvariants, IrrepNorms,
                          LexSortProjection, MaxFilter, PooledCompleteInvariants, PooledIrrepNorms, PooledScalars,
                          PowerSpectrum, ReynoldsProjection, SortProjection, align_to_template, bispectrum,
                          complete_invariants, gram_invariants, irrep_norms, lexsort_projection, max_filter,
                          pooled_complete_invariants, pooled_irrep_norms, pooled_scalars, power_spectrum,
                          project_in_chunks, reynolds_projection, sort_projection)
from .quotient import (QuotientIndex, align, aligned_interpolation, pairwise_quotient_distance,
                       pairwise_set_quotient_bounds, quotient_distance, quotient_knn, set_quotient_bounds)
from .utils import cache_dir, default_device, progress, seed_everything, seeded_generator

__version__ = "0.1.0"

#: Domain names, imported on first use (PEP 562, ``__getattr__`` below): they need the
#: ``molecules`` or ``images`` extra, and say so in one line when it is missing.
_LAZY = {
    "load_qm9": "invlatent.data.qm9",
    "qm9_split": "invlatent.data.qm9",
    "QM9Graphs": "invlatent.data.qm9",
    "GraphVAE": "invlatent.models.graph_vae",
    "train_graph_vae": "invlatent.models.graph_vae",
    "permute_graphs": "invlatent.models.graph_vae",
    "graphs_to_smiles": "invlatent.molecules",
    "generation_metrics": "invlatent.molecules",
    "valence_decode": "invlatent.molecules",
    "tanimoto": "invlatent.molecules",
    "rot90": "invlatent.images",
    "rotate": "invlatent.images",
}

__all__ = [
    "__version__",
    # 1. symmetries: actions on latents and on inputs
    "Group",
    "Permutation",
    "Cyclic",
    "CyclicFourier",
    "SO3",
    "O3",
    "ImageRotation",
    "Product",
    "PermuteNodes",
    "RotatePositions",
    "permute_sparse",
    "to_dense_nodes",
    # 2. your model: capture, audit, irreps labels and basis
    "capture_latents",
    "LatentCapture",
    "equivariance_audit",
    "plot_equivariance_audit",
    "rotation_pairs",
    "fit_basis",
    "diagnose_basis",
    "BasisFit",
    # 3. invariant projections (function and Module)
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
    "pooled_scalars",
    "PooledScalars",
    "pooled_irrep_norms",
    "PooledIrrepNorms",
    "pooled_complete_invariants",
    "PooledCompleteInvariants",
    "gram_invariants",
    "GramInvariants",
    "project_in_chunks",
    "Chunked",
    "InvariantProjector",
    # 4. the quotient: distances, alignment, neighbours, bounds
    "quotient_distance",
    "pairwise_quotient_distance",
    "align",
    "aligned_interpolation",
    "quotient_knn",
    "QuotientIndex",
    "set_quotient_bounds",
    "pairwise_set_quotient_bounds",
    # 5. diagnostics
    "invariance_error",
    "equivariance_error",
    "ambiguity_index",
    "retention",
    "orbit_latents",
    "orbit_spread",
    "view_correlation",
    # domain: molecules, images, data, models (imported on first use)
    *_LAZY,
    # utilities
    "cache_dir",
    "default_device",
    "progress",
    "seed_everything",
    "seeded_generator",
]

# old module paths (``invlatent.diagnostics`` ...) and moved names, each kept for one release
# with a DeprecationWarning (CHANGELOG.md lists them)
_deprecated.install()


def __getattr__(name: str):
    """The domain names, imported on first use; old module paths and moved names, with a
    ``DeprecationWarning``."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if f"{__name__}.{name}" in _deprecated.MOVED:
        return _deprecated.warn_moved(f"{__name__}.{name}")
    return _deprecated.moved_attribute(__name__, name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
