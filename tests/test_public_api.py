"""Walk every public name of ``invlatent``: a wrong type raises TypeError, a wrong value ValueError.

Every name in ``invlatent.__all__`` must appear in ``BAD`` (two calls: wrong type, wrong value)
or in ``EXEMPT`` with a reason, so a new public name forces a decision here.
"""

import pytest
import torch

import invlatent as il

z = torch.randn(3, 5, 2)
zc = torch.randn(3, 2, 4)
img = torch.rand(2, 1, 6, 6)
P, C = il.Permutation(), il.Cyclic(4)
x_sp, batch = torch.randn(5, 2), torch.tensor([0, 0, 1, 1, 1])
zi = torch.randn(3, 4)
zs = torch.randn(2, 3, 4)  # sets of "1x0e + 1x1o" irreps: (B, n, dim)
lin = torch.nn.Sequential(torch.nn.Linear(4, 4))

EXEMPT = {
    "__version__": "a string",
    "default_device": "no arguments",
    "progress": "passes keyword arguments through to tqdm",
    "Group": "abstract base class (tests/groups/test_custom_group.py)",
    "QM9Graphs": "a dataclass of tensors built by load_qm9",
}

LEAD_OWNED: dict[str, str] = {}  # none left: graph_vae.py checks types at its boundary

# name -> (wrong type, wrong value or None where every value of the right type is valid)
BAD = {
    "quotient_knn": (lambda: il.quotient_knn(z, 2.0, P), lambda: il.quotient_knn(z, 0, P)),
    "cache_dir": (lambda: il.cache_dir(3), None),  # any folder name is a valid value
    "seed_everything": (lambda: il.seed_everything("0"), None),  # any int is a valid seed
    "seeded_generator": (lambda: il.seeded_generator(0.5), None),
    "Permutation": (lambda: il.Permutation("4"), lambda: il.Permutation(0)),
    "Cyclic": (lambda: il.Cyclic("4"), lambda: il.Cyclic(0)),
    "CyclicFourier": (lambda: il.CyclicFourier(4.0), lambda: il.CyclicFourier(-2)),
    "ImageRotation": (lambda: il.ImageRotation("4"), lambda: il.ImageRotation(0)),
    "SO3": (lambda: il.SO3(3), lambda: il.SO3("1x9q")),
    "O3": (lambda: il.O3(3.0), lambda: il.O3("")),
    "permute_sparse": (lambda: il.permute_sparse(x_sp.tolist(), batch, 2), lambda: il.permute_sparse(x_sp, batch, 1)),
    "to_dense_nodes": (lambda: il.to_dense_nodes(x_sp, batch.float(), 2), lambda: il.to_dense_nodes(x_sp, batch[:3], 2)),
    "sort_projection": (lambda: il.sort_projection(z.tolist()), lambda: il.sort_projection(z[0])),
    "SortProjection": (lambda: il.SortProjection()(z.long()), lambda: il.SortProjection()(z[0])),
    "lexsort_projection": (lambda: il.lexsort_projection(z.long()), lambda: il.lexsort_projection(z[0])),
    "LexSortProjection": (lambda: il.LexSortProjection()(z.tolist()), lambda: il.LexSortProjection()(z[0])),
    "align_to_template": (lambda: il.align_to_template(z, "S_n", z[0]), lambda: il.align_to_template(z, P, z[0, :4])),
    "AlignToTemplate": (lambda: il.AlignToTemplate(P, "5, 2"), lambda: il.AlignToTemplate(P, (5, 0))),
    "max_filter": (lambda: il.max_filter(z, il.SO3("1x1o"), z[:2]), lambda: il.max_filter(z, P, z[:2, :4])),
    "MaxFilter": (lambda: il.MaxFilter(P, (5, 2), 4.0), lambda: il.MaxFilter(P, (5, 2), 0)),
    "reynolds_projection": (lambda: il.reynolds_projection(z, P, [[1.0]]), lambda: il.reynolds_projection(z, P, torch.ones(2, 3))),
    "ReynoldsProjection": (lambda: il.ReynoldsProjection(P, (5, 2), "3"), lambda: il.ReynoldsProjection(P, (5, 2), -3)),
    "power_spectrum": (lambda: il.power_spectrum(zc.long()), lambda: il.power_spectrum(torch.randn(0, 4))),
    "PowerSpectrum": (lambda: il.PowerSpectrum()(zc.tolist()), lambda: il.PowerSpectrum()(torch.randn(0, 4))),
    "bispectrum": (lambda: il.bispectrum(zc.long()), lambda: il.bispectrum(torch.randn(0, 4))),
    "Bispectrum": (lambda: il.Bispectrum()(zc.tolist()), lambda: il.Bispectrum()(torch.randn(0, 4))),
    "irrep_norms": (lambda: il.irrep_norms(zi, 4), lambda: il.irrep_norms(zi, "2x1o")),
    "IrrepNorms": (lambda: il.IrrepNorms(4), lambda: il.IrrepNorms("1x9q")),
    "complete_invariants": (lambda: il.complete_invariants(zi.long(), il.SO3("1x0e + 1x1o")),
                            lambda: il.complete_invariants(zi, il.SO3("2x1o"))),
    "CompleteInvariants": (lambda: il.CompleteInvariants(4), lambda: il.CompleteInvariants(il.SO3("1x0e + 1x1o"), degree=5)),
    "InvariantProjector": (lambda: il.InvariantProjector(P, (5, 2)).fit("X"),
                           lambda: il.InvariantProjector(P, (5, 2), method="pca").fit(z)),
    "quotient_distance": (lambda: il.quotient_distance(z, z.tolist(), P), lambda: il.quotient_distance(z, z[:2], P)),
    "pairwise_quotient_distance": (lambda: il.pairwise_quotient_distance(z, None, P, chunk_size=1.5),
                                   lambda: il.pairwise_quotient_distance(z, None, P, chunk_size=0)),
    "align": (lambda: il.align(z, z, object()), lambda: il.align(z, z[:, :4], P)),
    "aligned_interpolation": (lambda: il.aligned_interpolation(z, z, "S_n", 0.5),
                              lambda: il.aligned_interpolation(z, z, P, torch.tensor([[0.5]]))),
    "invariance_error": (lambda: il.invariance_error(3, z, P), lambda: il.invariance_error(il.sort_projection, z, P, n_elements=0)),
    "equivariance_error": (lambda: il.equivariance_error(torch.nn.Identity(), z, P, "S_n"),
                           lambda: il.equivariance_error(torch.nn.Identity(), z, P, P, n_elements=-1)),
    "ambiguity_index": (lambda: il.ambiguity_index(z, P, fn=3), lambda: il.ambiguity_index(z[:1], P)),
    "retention": (lambda: il.retention(z.tolist(), z, P), lambda: il.retention(z[:2], z[:2], P)),
    "load_qm9": (lambda: il.load_qm9(limit="10"), lambda: il.load_qm9(limit=0)),
    "qm9_split": (lambda: il.qm9_split("10"), lambda: il.qm9_split(10, fractions=(0.5, 0.5, 0.5))),
    "GraphVAE": (lambda: il.GraphVAE(latent_channels=1.5), lambda: il.GraphVAE(latent_channels=0)),
    "train_graph_vae": (lambda: il.train_graph_vae(torch.nn.Linear(1, 1), {}), lambda: il.train_graph_vae(il.GraphVAE(), {"x": torch.zeros(1, 9, 4), "adj": torch.zeros(1, 9, 9, 3), "mask": torch.ones(1, 9, dtype=torch.bool)}, schedule="linear")),
    "permute_graphs": (lambda: il.permute_graphs(torch.zeros(2, 3), torch.zeros(2, 3, 4), torch.zeros(2, 3, 3, 3), torch.ones(2, 3, dtype=torch.bool)),
                       lambda: il.permute_graphs(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 3, 4), torch.zeros(2, 3, 3, 3), torch.ones(2, 3, dtype=torch.bool))),
    "graphs_to_smiles": (lambda: il.graphs_to_smiles("C", "C", "C"), lambda: il.graphs_to_smiles(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, 4, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool))),
    "generation_metrics": (lambda: il.generation_metrics(3), None),  # an empty list is valid (all rates 0)
    "valence_decode": (lambda: il.valence_decode("logits"), lambda: il.valence_decode({"atom": torch.zeros(2, 3)})),
    "tanimoto": (lambda: il.tanimoto("CC", ["CC"]), lambda: il.tanimoto(["CC"], ["CC", "C"])),
    "project_in_chunks": (lambda: il.project_in_chunks(3, z), lambda: il.project_in_chunks(il.sort_projection, z, chunk_size=0)),
    "Chunked": (lambda: il.Chunked(3), lambda: il.Chunked(il.SortProjection(), chunk_size=0)),
    "orbit_latents": (lambda: il.orbit_latents(3, img, 4), lambda: il.orbit_latents(lambda t: t.flatten(1), img, 0)),
    "orbit_spread": (lambda: il.orbit_spread(z.tolist()), lambda: il.orbit_spread(torch.randn(3))),
    "view_correlation": (lambda: il.view_correlation(z.tolist(), z), lambda: il.view_correlation(zi, zi[:2])),
    "rot90": (lambda: il.rot90(img, 1.5), lambda: il.rot90(img[0])),
    "rotate": (lambda: il.rotate(img, "90"), lambda: il.rotate(img, float("nan"))),
    # the FAISS index
    "QuotientIndex": (lambda: il.QuotientIndex(k_factor="2"), lambda: il.QuotientIndex("lsh")),
    # your own model: capture, audit, sets of irreps
    "capture_latents": (lambda: il.capture_latents(lin, 0, zs), lambda: il.capture_latents(lin, "1", zs)),
    "LatentCapture": (lambda: il.LatentCapture(lin, "0", select=3), lambda: il.LatentCapture(lin, [])),
    "equivariance_audit": (lambda: il.equivariance_audit(lin, zs, "0", P, "S_n"),
                           lambda: il.equivariance_audit(lin, zs, "0", P, P, n_elements=0)),
    "plot_equivariance_audit": (lambda: il.plot_equivariance_audit(il.equivariance_audit(lin, zs, "0", P, P), ax="ax"),
                                lambda: il.plot_equivariance_audit(il.equivariance_audit(lin, zs, "0", P, P).iloc[:0])),
    "RotatePositions": (lambda: il.RotatePositions(3), lambda: il.RotatePositions().act(torch.eye(3), {"pos": torch.zeros(2, 3)})),
    "PermuteNodes": (lambda: il.PermuteNodes().act(torch.arange(2.0), {"pos": torch.zeros(2, 3)}),
                     lambda: il.PermuteNodes().act(torch.zeros(2, dtype=torch.long), {"pos": torch.zeros(2, 3)})),
    "Product": (lambda: il.Product(P, "1x1o"), lambda: il.Product(P, il.SO3("1x0e + 1x1o")).check_latent(zs[0])),
    "pooled_scalars": (lambda: il.pooled_scalars(zs.tolist(), "1x0e + 1x1o"), lambda: il.pooled_scalars(zs, "1x0e + 1x1o", pool="max")),
    "PooledScalars": (lambda: il.PooledScalars("1x0e + 1x1o")(zs.long()), lambda: il.PooledScalars("1x0e + 1x1o", pool="max")),
    "pooled_irrep_norms": (lambda: il.pooled_irrep_norms(zs, 4), lambda: il.pooled_irrep_norms(zs, "2x1o")),
    "PooledIrrepNorms": (lambda: il.PooledIrrepNorms(4), lambda: il.PooledIrrepNorms("1x0e + 1x1o")(zs[0])),
    "pooled_complete_invariants": (lambda: il.pooled_complete_invariants(zs, 4), lambda: il.pooled_complete_invariants(zs, il.SO3("1x0e + 1x1o"), degree=4)),
    "PooledCompleteInvariants": (lambda: il.PooledCompleteInvariants(4), lambda: il.PooledCompleteInvariants(il.SO3("1x0e + 1x1o"), pool="max")),
    "gram_invariants": (lambda: il.gram_invariants(zs, "1x0e + 1x1o", torch.ones(2, 3)), lambda: il.gram_invariants(zs, "1x0e + 1x1o", parts=("trace",))),
    "GramInvariants": (lambda: il.GramInvariants(4), lambda: il.GramInvariants("1x0e + 1x1o", parts=())),
    "set_quotient_bounds": (lambda: il.set_quotient_bounds(zs, zs.tolist(), "1x0e + 1x1o"), lambda: il.set_quotient_bounds(zs, zs[:1], "1x0e + 1x1o")),
    "pairwise_set_quotient_bounds": (lambda: il.pairwise_set_quotient_bounds(zs, "1x0e + 1x1o", starts=1.5),
                                     lambda: il.pairwise_set_quotient_bounds(zs, "1x0e + 1x1o", starts=0)),
    # label and basis check (more cases in tests/audit/test_basis.py)
    "rotation_pairs": (lambda: il.rotation_pairs(lin, zs, 0), lambda: il.rotation_pairs(lin, zs, "0", n_elements=0)),
    "fit_basis": (lambda: il.fit_basis(zi.tolist(), zi, torch.eye(3).expand(3, 3, 3), "1x0e + 1x1o"),
                  lambda: il.fit_basis(zi, zi, torch.eye(3).expand(3, 3, 3), "2x1o")),
    "diagnose_basis": (lambda: il.diagnose_basis(zi, zi, torch.eye(3).expand(3, 3, 3), 4),
                       lambda: il.diagnose_basis(zi, zi, 2 * torch.eye(3).expand(3, 3, 3), "1x0e + 1x1o")),
    "BasisFit": (lambda: il.fit_basis(zi, zi, torch.eye(3).expand(3, 3, 3), "1x0e + 1x1o").to_e3nn(zi.tolist()),
                 lambda: il.fit_basis(zi, zi, torch.eye(3).expand(3, 3, 3), "1x0e + 1x1o").to_e3nn(zi[:, :3])),
}


def test_every_public_name_is_covered():
    names = set(il.__all__)
    assert names == set(BAD) | set(EXEMPT), (sorted(names - set(BAD) - set(EXEMPT)), sorted(set(BAD) - names))


@pytest.mark.parametrize("name", sorted(BAD))
def test_wrong_type_is_type_error(name):
    if name in LEAD_OWNED:
        try:
            BAD[name][0]()
        except TypeError:
            pytest.fail(f"{name} now raises TypeError: remove it from LEAD_OWNED")
        except Exception:
            pytest.xfail(LEAD_OWNED[name])
    with pytest.raises(TypeError):
        BAD[name][0]()


@pytest.mark.parametrize("name", sorted(n for n in BAD if BAD[n][1] is not None))
def test_wrong_value_is_value_error(name):
    with pytest.raises(ValueError):
        BAD[name][1]()


def test_old_module_paths_still_import():
    """Modules moved by the data-path layout stay importable under their old names for one release."""
    import importlib

    with pytest.warns(DeprecationWarning, match="ImageRotation"):
        from invlatent.rotations import ImageRotation

    assert ImageRotation is il.ImageRotation
    moved = {"invlatent.frames": "pca_frame", "invlatent.relative": "gram_mds", "invlatent.streaming": "Chunked",
             "invlatent.diagnostics": "knn_agreement", "invlatent.orbits": "orbit_latents",
             "invlatent.sklearn": "InvariantProjector", "invlatent.chem": "tanimoto",
             "invlatent.rotations": "rot90", "invlatent.budget": "t4_estimates",
             "invlatent.projections.sort": "sort_projection", "invlatent.projections.align": "align_to_template",
             "invlatent.projections.maxfilter": "MaxFilter", "invlatent.projections.reynolds": "ReynoldsProjection",
             "invlatent.projections.spectral": "bispectrum", "invlatent.projections.irreps": "complete_invariants"}
    for module, name in moved.items():
        assert hasattr(importlib.import_module(module), name), module
