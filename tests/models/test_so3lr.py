"""The SO3LR adapter (invlatent.models.so3lr) and what the audit says about its labels: skipped
when the optional so3krates-torch (the 'so3lr' extra) is absent."""

import pytest
import torch

pytest.importorskip("so3krates_torch", reason="needs the 'so3lr' extra: pip install 'invlatent[so3lr]'")
pytest.importorskip("ase", reason="the test molecules come from ase (installed with so3krates-torch)")

import invlatent  # noqa: E402
from invlatent.models.so3lr import (layer_irreps, load_so3lr, node_features, select_ev,  # noqa: E402
                                    select_inv, so3lr_batch, so3lr_forward, transformer_layers)

LAYERS = [f"euclidean_transformers.{i}" for i in range(3)]
EPS32 = torch.finfo(torch.float32).eps


def _molecules(names, slots):
    from ase.build import molecule

    pos = torch.zeros(len(names), slots, 3)
    num = torch.zeros(len(names), slots, dtype=torch.long)
    mask = torch.zeros(len(names), slots, dtype=torch.bool)
    for b, name in enumerate(names):
        a = molecule(name)
        n = len(a)
        pos[b, :n] = torch.tensor(a.get_positions(), dtype=torch.float32)
        num[b, :n] = torch.tensor(a.get_atomic_numbers())
        mask[b, :n] = True
    return pos, num, mask


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_so3lr()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fit_set():
    """Molecules whose features fit the basis (ethanol, acetamide, pyrrole, ethylamine)."""
    return _molecules(["CH3CH2OH", "CH3CONH2", "C4H4NH", "CH3CH2NH2"], 10)


@pytest.fixture(scope="module")
def check_set():
    """Other molecules, for checking the fitted basis (methanol, acetaldehyde, ammonia, HCN)."""
    return _molecules(["CH3OH", "CH3CHO", "NH3", "HCN"], 7)


@pytest.fixture(scope="module")
def fitted(model, fit_set):
    """The basis fitted on the last layer's Euclidean features, float32, under 8 random O(3) elements."""
    data = so3lr_batch(*fit_set)
    act = invlatent.RotatePositions(key="positions", improper=True)
    z, zm, g = invlatent.rotation_pairs(model, data, LAYERS[-1], input_group=act, n_elements=8, generator=0,
                                        select=select_ev, forward=so3lr_forward)
    _, ev = layer_irreps(model)
    return invlatent.fit_basis(z, zm, g, ev, tolerance=1e-4)


def test_layers_and_labels(model):
    assert transformer_layers(model) == LAYERS
    inv, ev = layer_irreps(model)
    assert (str(inv), str(ev)) == ("128x0e", "1x1o+1x2e+1x3o+1x4e")


def test_shapes_mask_and_batching(model, check_set):
    pos, num, mask = check_set
    f = node_features(model, pos, num, mask, layers=[LAYERS[2], LAYERS[0]], batch_size=3)
    assert list(f.inv) == [LAYERS[0], LAYERS[2]] and list(f.ev) == [LAYERS[0], LAYERS[2]]  # forward order
    for layer in f.inv:
        assert f.inv[layer].shape == (4, 7, 128) and f.ev[layer].shape == (4, 7, 24)
        assert f.inv[layer].dtype == torch.float32
        assert bool((f.inv[layer][~mask] == 0).all()) and bool((f.ev[layer][~mask] == 0).all())
        assert bool((f.inv[layer][mask].norm(dim=-1) > 0).all())
    assert torch.equal(f.mask, mask)
    one = node_features(model, pos, num, mask, layers=LAYERS[2], batch_size=1)
    # other batches, other summation order: float32 tolerance
    torch.testing.assert_close(one.ev[LAYERS[2]], f.ev[LAYERS[2]], rtol=1e3 * EPS32, atol=1e3 * EPS32)


def test_matches_the_calculator(model, check_set):
    """The batched dict input gives the features so3krates' own ASE path gives (methanol)."""
    from ase import Atoms
    from so3krates_torch.calculator.so3 import SO3LRCalculator

    pos, num, mask = check_set
    default = torch.get_default_dtype()
    try:
        calc = SO3LRCalculator(device="cpu")
    finally:
        torch.set_default_dtype(default)
    m = mask[0]
    atoms = Atoms(numbers=num[0][m].numpy(), positions=pos[0][m].double().numpy())
    ref = calc.get_descriptors(atoms, invariants_only=False)
    f = node_features(model, pos[:1], num[:1], mask[:1], layers=LAYERS[2])
    torch.testing.assert_close(f.inv[LAYERS[2]][0][m], torch.as_tensor(ref["invariant_features"][0]),
                               rtol=1e2 * EPS32, atol=1e2 * EPS32)
    torch.testing.assert_close(f.ev[LAYERS[2]][0][m], torch.as_tensor(ref["equivariant_features"][0]),
                               rtol=1e2 * EPS32, atol=1e2 * EPS32)


def test_no_energy_or_forces_computed(model, check_set):
    calls = []
    h = model.atomic_energy_output_block.register_forward_hook(lambda *a: calls.append(1))
    try:
        node_features(model, *check_set, layers=LAYERS[1])
    finally:
        h.remove()
    assert calls == []
    assert not any(isinstance(v, torch.Tensor) for m in model.modules() for v in vars(m).values())  # no state kept


def test_audit_raw_labels(model, check_set):
    """Invariants pass O(3); the Euclidean features fail under their labels (so3krates' basis)."""
    data = so3lr_batch(*check_set)
    inv, ev = layer_irreps(model)
    act = invlatent.RotatePositions(key="positions", improper=True)
    kw = dict(forward=so3lr_forward, dtype=torch.float32, n_elements=3)
    a_inv = invlatent.equivariance_audit(model, data, LAYERS, act, invlatent.O3(inv), select=select_inv, **kw)
    a_ev = invlatent.equivariance_audit(model, data, LAYERS, act, invlatent.O3(ev), select=select_ev, **kw)
    assert a_inv["equivariant"].all() and (a_inv["rel_error_max"] < 1e-5).all()
    assert not a_ev["equivariant"].any() and (a_ev["rel_error_max"] > 0.5).all()


def test_diagnosis_per_block(fitted):
    """Parity labels right; l = 1 stored as (y, z, x); l = 2, 3, 4 in another orthogonal basis."""
    t = fitted.table()
    assert t["verdict"].tolist() == ["permutation", "basis", "basis", "basis"]
    assert (t["rel_error"] > 0.5).all() and (t["parity_flip"] > 0.5).all()
    assert (t["basis"] < 1e-5).all()
    assert str(fitted.irreps) == "1x1o+1x2e+1x3o+1x4e"  # fitted parities = labelled ones
    assert fitted.blocks[0].perm.tolist() == [1, 2, 0] and bool((fitted.blocks[0].signs > 0).all())
    assert all(b.identifiable for b in fitted.blocks)


def test_fitted_basis_is_the_harmonics_convention(model, fitted):
    """Independent oracle: so3krates' spherical harmonics against e3nn's on random directions give
    Y_sk(r) = c Q_l Y_e3nn(r); the basis fitted from the model's features is that Q_l up to sign."""
    from e3nn import o3

    r = torch.nn.functional.normalize(torch.randn(500, 3, generator=torch.Generator().manual_seed(0),
                                                  dtype=torch.float64), dim=-1)
    Y = model.spherical_harmonics(r)
    start = 0
    for b in fitted.blocks:
        d = 2 * b.l + 1
        ysk, ye = Y[:, start:start + d], o3.spherical_harmonics(b.l, r, normalize=True)
        start += d
        sol = torch.linalg.lstsq(ye, ysk).solution.T  # ysk = ye @ sol.T
        Q = sol / torch.linalg.svdvals(sol).mean()
        assert torch.allclose(Q @ Q.T, torch.eye(d, dtype=Q.dtype), atol=1e-10)  # c Q: a scaled rotation
        sign = torch.sign((Q * b.Q).sum())
        assert float((sign * Q - b.Q).abs().max()) < 1e-5


def test_fitted_basis_makes_the_features_o3_equivariant(model, fitted, check_set):
    """On molecules the fit never saw, under fresh random O(3) elements, float32 throughout."""
    data = so3lr_batch(*check_set)
    act = invlatent.RotatePositions(key="positions", improper=True)
    audit = invlatent.equivariance_audit(
        model, data, LAYERS, act, fitted.group("O3"), select=lambda out: fitted.to_e3nn(select_ev(out)),
        forward=so3lr_forward, dtype=torch.float32, n_elements=4, generator=1)
    assert (audit["rel_error_max"] <= 1e-5).all(), audit


def test_batch_rejects_bad_input():
    pos = torch.zeros(1, 3, 3)
    with pytest.raises(ValueError, match=r"pos.*\(B, n, 3\)"):
        so3lr_batch(torch.zeros(1, 3, 2), torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="numbers must be a LongTensor"):
        so3lr_batch(pos, torch.ones(1, 3))
    with pytest.raises(ValueError, match="numbers must have shape"):
        so3lr_batch(pos, torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="atomic numbers 1..118"):
        so3lr_batch(pos, torch.tensor([[8, 1, 0]]))
    with pytest.raises(ValueError, match="cutoff must be a positive"):
        so3lr_batch(pos, torch.ones(1, 3, dtype=torch.long), cutoff=-1.0)
    with pytest.raises(ValueError, match=r"charge.*\(B,\)"):
        so3lr_batch(pos, torch.ones(1, 3, dtype=torch.long), charge=torch.zeros(2))


def test_node_features_rejects_bad_layers(model, check_set):
    with pytest.raises(ValueError, match="layers must be names from transformer_layers"):
        node_features(model, *check_set, layers="euclidean_transformers.7")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        transformer_layers("so3lr")


def test_fitted_basis_is_one_rotation_of_the_frame(fitted):
    """Q_1 is the cyclic axis permutation P (a rotation) and every Q_l is e3nn's D^l(P): SO3LR's
    Euclidean features are e3nn features of the molecule in a frame turned by P."""
    from e3nn import o3

    P = fitted.blocks[0].Q
    assert abs(float(torch.det(P)) - 1) < 1e-6
    for b in fitted.blocks:
        assert float((b.Q - o3.Irrep(b.l, 1).D_from_matrix(P)).abs().max()) < 1e-5, b.irreps
