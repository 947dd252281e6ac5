"""Label and basis check (issue 39, item 2): scramble the basis of e3nn models on purpose, recover it.

Features of two float64 e3nn models (the shared toy model's ``gate`` layer, ``4x0e+4x1o+2x2e``,
and a spherical-harmonics model up to ``l = 4`` below) are captured under random elements of O(3)
with :func:`rotation_pairs`, then scrambled per block by a known orthogonal matrix, a known
component order, or a wrong parity label. Independent checks: e3nn's own ``D_from_matrix`` for the
fitted action, and a brute force over all signed permutations for ``l <= 2``.
"""

import importlib.util
import itertools
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from e3nn import o3

from invlatent._irreps import float64_default
from invlatent.groups import O3, RotatePositions
from invlatent.audit import BasisFit, diagnose_basis, equivariance_audit, fit_basis, rotation_pairs

SH = o3.Irreps("1x0e + 1x1o + 1x2e + 1x3o + 1x4e")
SH_OUT = o3.Irreps("2x0e + 2x1o + 1x2e + 2x3o + 1x4e")


def load_toy():
    spec = importlib.util.spec_from_file_location("e3nn_toy_model", Path(__file__).with_name("e3nn_toy_model.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


toy = load_toy()


class Scramble(nn.Module):
    """Multiplies the features by a fixed matrix ``B`` (features = B . e3nn features)."""

    def __init__(self, B=None):
        super().__init__()
        self.register_buffer("B", B if B is not None else torch.eye(SH_OUT.dim, dtype=torch.float64))

    def forward(self, h):
        return h @ self.B.T


class SHModel(nn.Module):
    """Sum over edges of the spherical harmonics ``l <= 4`` of the edge vector (times a Gaussian), then
    ``o3.Linear`` to ``SH_OUT`` mixed with the species; ``out`` scrambles the basis."""

    def __init__(self, B=None):
        super().__init__()
        torch.manual_seed(1)
        self.lin = o3.FullyConnectedTensorProduct(SH, "3x0e", SH_OUT)
        self.out = Scramble(B)

    def forward(self, data):
        src, dst = data["edge_index"]
        vec = data["pos"][dst] - data["pos"][src]
        sh = o3.spherical_harmonics(SH, vec, normalize=True) * torch.exp(-vec.square().sum(-1, keepdim=True))
        agg = torch.zeros(data["pos"].shape[0], SH.dim, dtype=sh.dtype).index_add_(0, dst, sh)
        return self.out(self.lin(agg, nn.functional.one_hot(data["z"], 3).to(sh.dtype)))


def block_matrix(irreps, mats):
    """Block-diagonal ``I_mul (x) mats[i]`` over the blocks of ``irreps``."""
    return torch.block_diag(*[torch.kron(torch.eye(mul, dtype=torch.float64), M) for (mul, _), M in zip(irreps, mats)])


def random_orthogonal(d, gen):
    return torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))[0].contiguous()


def perm_matrix(perm, signs=None):
    d = len(perm)
    P = torch.zeros(d, d, dtype=torch.float64)
    P[torch.arange(d), torch.as_tensor(perm)] = torch.ones(d, dtype=torch.float64) if signs is None else signs
    return P


@pytest.fixture(scope="module")
def data():
    return toy.random_batch(sizes=(5, 6, 7), seed=3, dtype=torch.float64)


@pytest.fixture(scope="module")
def sh_pairs(data):
    with float64_default():
        m = SHModel()
    return rotation_pairs(m, data, "out", n_elements=8, generator=0)


@pytest.fixture(scope="module")
def gate_pairs(data):
    with float64_default():
        m = toy.ToyModel()
    return rotation_pairs(m, data, "gate", n_elements=8, generator=1)


def scramble(pairs, B):
    z, zm, g = pairs
    return z @ B.T, zm @ B.T, g


def test_unscrambled_features_pass_and_pairs_have_the_documented_shapes(sh_pairs, gate_pairs, data):
    for (z, zm, g), irreps in ((sh_pairs, SH_OUT), (gate_pairs, toy.GATE)):
        n = 8 * data["pos"].shape[0]
        assert z.shape == zm.shape == (n, irreps.dim) and g.shape == (n, 3, 3) and g.dtype == torch.float64
        fit = fit_basis(z, zm, g, irreps)
        assert fit.parity_tested and (torch.linalg.det(g) < 0).any() and (torch.linalg.det(g) > 0).any()
        df = fit.table()
        assert (df["verdict"] == "ok").all(), df
        assert df["rel_error"].max() < 1e-13 and df["identifiable"].all()


def test_planted_random_basis_is_recovered_to_1e_10(sh_pairs, gate_pairs):
    gen = torch.Generator().manual_seed(7)
    for pairs, irreps in ((sh_pairs, SH_OUT), (gate_pairs, toy.GATE)):
        Qs = [random_orthogonal(ir.dim, gen) if ir.l > 0 else torch.eye(1, dtype=torch.float64) for _, ir in irreps]
        fit = fit_basis(*scramble(pairs, block_matrix(irreps, Qs)), irreps)
        for b, Q in zip(fit.blocks, Qs):
            assert abs(float(torch.linalg.det(b.Q)) - 1) < 1e-12  # the det +1 representative of +-Q
            err = min(float((b.Q - Q).abs().max()), float((b.Q + Q).abs().max()))
            assert err <= 1e-10, (b.irreps, err)
            assert b.residual < 1e-13 and b.identifiable
        verdicts = fit.table()["verdict"].tolist()
        assert verdicts == ["ok" if ir.l == 0 else "basis" for _, ir in irreps], verdicts
        assert str(fit.irreps) == str(irreps) and "parity tested" in repr(fit) and "basis" in repr(fit)


def test_fitted_action_matches_e3nns_d_from_matrix(sh_pairs):
    """Independent of invlatent's Wigner matrices: Q D(R) Q^T with e3nn's D_from_matrix, fresh rotations."""
    gen = torch.Generator().manual_seed(8)
    Qs = [random_orthogonal(ir.dim, gen) for _, ir in SH_OUT]
    fit = fit_basis(*scramble(sh_pairs, block_matrix(SH_OUT, Qs)), SH_OUT)
    R = O3("1o").sample(5, generator=gen)
    with float64_default():
        for (_, ir), b, Q in zip(SH_OUT, fit.blocks, Qs):
            D = ir.D_from_matrix(R)
            err = float((b.Q @ D @ b.Q.T - Q @ D @ Q.T).abs().max())
            assert err <= 1e-10, (str(ir), err)


def test_planted_component_order_is_recovered_exactly(sh_pairs, gate_pairs):
    gen = torch.Generator().manual_seed(9)
    for pairs, irreps in ((sh_pairs, SH_OUT), (gate_pairs, toy.GATE)):
        perms = []
        for _, ir in irreps:
            p = torch.randperm(ir.dim, generator=gen)
            while ir.dim > 1 and torch.equal(p, torch.arange(ir.dim)):
                p = torch.randperm(ir.dim, generator=gen)
            perms.append(p)
        fit = fit_basis(*scramble(pairs, block_matrix(irreps, [perm_matrix(p) for p in perms])), irreps)
        for b, p in zip(fit.blocks, perms):
            assert torch.equal(b.perm, p) and torch.equal(b.signs, torch.ones(len(p), dtype=torch.float64))
            assert b.permutation_residual < 1e-13
        assert fit.table()["verdict"].tolist() == ["ok" if ir.l == 0 else "permutation" for _, ir in irreps]


def test_a_sign_convention_is_a_signed_permutation(sh_pairs):
    """Condon-Shortley-like: the odd-m components negated (m = -l..l in e3nn's order)."""
    mats = [torch.diag(torch.tensor([(-1.0) ** (m % 2) for m in range(-ir.l, ir.l + 1)], dtype=torch.float64))
            for _, ir in SH_OUT]
    fit = fit_basis(*scramble(sh_pairs, block_matrix(SH_OUT, mats)), SH_OUT)
    for b, M in zip(fit.blocks, mats):
        signs = torch.diagonal(M)
        assert torch.equal(b.perm, torch.arange(len(signs)))
        assert torch.equal(b.signs, signs if signs.sum() > 0 else -signs)
    assert fit.table()["verdict"].tolist() == ["ok"] + ["signed permutation"] * 4


def test_brute_force_over_signed_permutations_agrees(gate_pairs):
    """For l <= 2 every signed permutation is tried: the planted one (up to the global sign) and no other fits."""
    perms = {1: (2, 0, 1), 2: (3, 0, 4, 1, 2)}
    signs = {1: torch.tensor([1.0, -1.0, 1.0]), 2: torch.tensor([1.0, 1.0, -1.0, 1.0, 1.0])}
    mats = [perm_matrix(perms[ir.l], signs[ir.l].double()) if ir.l else torch.eye(1, dtype=torch.float64)
            for _, ir in toy.GATE]
    z, zm, g = scramble(gate_pairs, block_matrix(toy.GATE, mats))
    fit = fit_basis(z, zm, g, toy.GATE)
    with float64_default():
        for (mul, ir), sl, b in zip(toy.GATE, toy.GATE.slices(), fit.blocks):
            if ir.l == 0:
                continue
            d = ir.dim
            cands = torch.stack([perm_matrix(p, torch.tensor(s, dtype=torch.float64))
                                 for p in itertools.permutations(range(d))
                                 for s in itertools.product([1, -1], repeat=d)])
            A, B = z[:, sl].reshape(-1, mul, d), zm[:, sl].reshape(-1, mul, d)
            D = ir.D_from_matrix(g)  # e3nn, parity included
            # residual of every candidate P: || P^T b - D P^T a ||
            Ae = torch.einsum("ncd,kde->knce", A, cands)
            Be = torch.einsum("ncd,kde->knce", B, cands)
            res = (Be - torch.einsum("nij,kncj->knci", D, Ae)).flatten(1).norm(dim=1) / A.norm()
            best = int(res.argmin())
            assert float(res[best]) < 1e-13 and int((res < 1e-3).sum()) == 2  # P and -P
            P = perm_matrix(b.perm, b.signs)
            assert torch.equal(P, cands[best]) or torch.equal(-P, cands[best])
            assert torch.equal(b.perm, torch.tensor(perms[ir.l]))


def test_parity_flips_and_mixtures_are_named_block_by_block(sh_pairs):
    gen = torch.Generator().manual_seed(11)
    # scramble: 0e parity label, 1o permuted, 2e basis, 3o basis + parity label, 4e untouched
    mats = [torch.eye(1), perm_matrix([1, 2, 0]), random_orthogonal(5, gen), random_orthogonal(7, gen), torch.eye(9)]
    labels = "2x0o + 2x1o + 1x2e + 2x3e + 1x4e"
    z, zm, g = scramble(sh_pairs, block_matrix(SH_OUT, [m.double() for m in mats]))
    df = diagnose_basis(z, zm, g, labels)
    assert df["verdict"].tolist() == ["parity", "permutation", "basis", "basis + parity", "ok"], df
    assert (df.loc[df["verdict"] != "ok", "rel_error"] > 0.1).all()
    assert df.loc[0, "parity_flip"] < 1e-13 and df.loc[3, "basis"] < 1e-13
    assert df["fitted_parity"].tolist() == ["e", "o", "e", "o", "e"]  # the true parities of SH_OUT


def test_fixed_features_pass_the_audit_and_the_group_acts_on_them(data):
    """Hand the fit to O3 and to the audit (through select): the scrambled model passes after the fix."""
    gen = torch.Generator().manual_seed(12)
    B = block_matrix(SH_OUT, [random_orthogonal(ir.dim, gen) for _, ir in SH_OUT])
    with float64_default():
        m = SHModel(B)
    z, zm, g = rotation_pairs(m, data, "out", n_elements=4, generator=2)
    fit = fit_basis(z, zm, g, SH_OUT)
    assert isinstance(fit, BasisFit) and fit.max_residual < 1e-13
    e, em = fit.to_e3nn(z), fit.to_e3nn(zm)
    assert float((fit.group("O3").act(g, e) - em).abs().max()) < 1e-12
    assert torch.allclose(fit.from_e3nn(e), z, atol=1e-13)
    # the same within-block orthogonal matrix, as one block-diagonal matrix: features = B_fit . e3nn
    assert torch.allclose(fit.matrix() @ e.T, z.T, atol=1e-12)
    act = RotatePositions(improper=True)
    before = equivariance_audit(m, data, "out", act, O3(SH_OUT), n_elements=2)
    after = equivariance_audit(m, data, "out", act, fit.group("O3"), select=fit.to_e3nn, n_elements=2)
    assert not before["equivariant"].item() and after["equivariant"].item()
    assert after["rel_error_max"].item() < 1e-13


def test_parity_untested_without_improper_elements(data):
    with float64_default():
        m = SHModel()
    z, zm, g = rotation_pairs(m, data, "out", input_group=RotatePositions(), n_elements=3, generator=0)
    assert (torch.linalg.det(g) > 0).all()
    fit = fit_basis(z, zm, g, "2x0o + 2x1e + 1x2e + 2x3o + 1x4e")  # wrong parities, invisible to SO(3)
    df = fit.table()
    assert df["parity_flip"].isna().all() and (df["verdict"] == "ok").all()
    assert not fit.parity_tested and "not tested" in repr(fit)


def test_one_rotation_does_not_identify_the_basis(sh_pairs):
    """Under a single rotation the commutant is larger than the multiples of I: say so."""
    z, zm, g = sh_pairs
    rows = torch.arange(18)  # the first element only
    gen = torch.Generator().manual_seed(13)
    B = block_matrix(SH_OUT, [random_orthogonal(ir.dim, gen) for _, ir in SH_OUT])
    fit = fit_basis(z[rows] @ B.T, zm[rows] @ B.T, g[rows], SH_OUT)
    assert [b.identifiable for b in fit.blocks] == [True, False, False, False, False]


def test_float32_features_and_noise(sh_pairs):
    """float32 features: the default tolerance is float32's; noise of 1e-6 moves Q by about as much."""
    gen = torch.Generator().manual_seed(14)
    Qs = [random_orthogonal(ir.dim, gen) for _, ir in SH_OUT]
    z, zm, g = scramble(sh_pairs, block_matrix(SH_OUT, Qs))
    fit32 = fit_basis(z.float(), zm.float(), g.float(), SH_OUT)
    assert fit32.tolerance == pytest.approx(1e3 * torch.finfo(torch.float32).eps)
    assert fit32.table()["verdict"].tolist() == ["ok", "basis", "basis", "basis", "basis"]
    noisy = zm + 1e-6 * torch.randn(zm.shape, generator=gen, dtype=torch.float64)
    fit = fit_basis(z, noisy, g, SH_OUT)
    for b, Q in zip(fit.blocks[1:], Qs[1:]):
        assert min(float((b.Q - Q).abs().max()), float((b.Q + Q).abs().max())) < 1e-4
        assert b.residual < 1e-4


def test_bad_input_names_the_argument(sh_pairs, data):
    z, zm, g = sh_pairs
    cases = [
        (TypeError, "z must", lambda: fit_basis(z.tolist(), zm, g, SH_OUT)),
        (TypeError, "z_moved", lambda: fit_basis(z, zm.long(), g, SH_OUT)),
        (TypeError, "irreps", lambda: fit_basis(z, zm, g, 3)),
        (TypeError, "tolerance", lambda: fit_basis(z, zm, g, SH_OUT, tolerance=True)),
        (ValueError, "tolerance", lambda: fit_basis(z, zm, g, SH_OUT, tolerance=-1.0)),
        (ValueError, "irreps", lambda: fit_basis(z, zm, g, "1x9q")),
        (ValueError, "dimension", lambda: fit_basis(z, zm, g, "1x1o")),
        (ValueError, "z_moved", lambda: fit_basis(z, zm[:-1], g, SH_OUT)),
        (ValueError, "g must", lambda: fit_basis(z, zm, g[:-1], SH_OUT)),
        (ValueError, "g must", lambda: fit_basis(z, zm, g[:, :2], SH_OUT)),
        (ValueError, "orthogonal", lambda: fit_basis(z, zm, 2 * g, SH_OUT)),
        (ValueError, "NaN", lambda: fit_basis(z * math.nan, zm, g, SH_OUT)),
        (TypeError, "model", lambda: rotation_pairs("m", data, "out")),
        (TypeError, "layer", lambda: rotation_pairs(nn.Linear(1, 1), data, ["out"])),
        (ValueError, "n_elements", lambda: rotation_pairs(nn.Sequential(nn.Identity()), data, "0", n_elements=0)),
        (TypeError, "input_group", lambda: rotation_pairs(nn.Sequential(nn.Identity()), data, "0", input_group="O3")),
        (ValueError, "\\(N, dim\\)", lambda: rotation_pairs(nn.Sequential(nn.Flatten(0)), z[:4, :3], "0")),
    ]
    fit = fit_basis(z[:40], zm[:40], g[:40], SH_OUT)
    cases += [
        (TypeError, "z must", lambda: fit.to_e3nn(z.numpy())),
        (ValueError, "dim=", lambda: fit.to_e3nn(z[:, :-1])),
        (ValueError, "kind", lambda: fit.group("SE3")),
        (TypeError, "kind", lambda: fit.group(3)),
        (TypeError, "tolerance", lambda: fit.table("1e-3")),
    ]
    for exc, text, call in cases:
        with pytest.raises(exc, match=text):
            call()
