"""QM9 data: graph conversion, cache checksum (missing / corrupt), split, PyG view."""

import json

import pytest
import torch

from invlatent.molecules import canonical_smiles, generation_metrics, graphs_to_smiles
from invlatent.data.qm9 import ATOM_TYPES, PROPERTIES, load_qm9, qm9_split

N_SMALL = 300


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return load_qm9(limit=N_SMALL, root=tmp_path_factory.mktemp("qm9"))


def test_shapes_and_ranges(small):
    M = len(small)
    assert M == N_SMALL
    assert small.atom_type.shape == (M, 9) and small.bond_type.shape == (M, 9, 9)
    assert small.y.shape == (M, len(PROPERTIES))
    assert int(small.atom_type.max()) < len(ATOM_TYPES)
    assert set(small.bond_type.unique().tolist()) <= {0, 1, 2, 3}
    # symmetric, zero diagonal, no bond touches a padding slot
    assert torch.equal(small.bond_type, small.bond_type.transpose(1, 2))
    assert small.bond_type.diagonal(dim1=1, dim2=2).abs().sum() == 0
    pair = small.mask[:, :, None] & small.mask[:, None, :]
    assert (small.bond_type[~pair] == 0).all()
    # padding is at the end in dataset order, and the atom-count target matches the mask
    n = small.num_nodes
    assert torch.equal(small.mask, torch.arange(9)[None] < n[:, None])
    assert torch.equal(small.prop("n_heavy"), n.float())


def test_units_and_values(small):
    assert small.units["gap"] == "eV" and small.units["mu"] == "D" and small.units["alpha"] == "bohr^3"
    gap = small.prop("gap")
    # HOMO-LUMO gaps of small organic molecules lie in a few eV to ~17 eV
    assert 2.0 < float(gap.min()) and float(gap.max()) < 20.0
    assert torch.allclose(gap, small.prop("lumo") - small.prop("homo"), atol=1e-2)
    assert small.prop("cv").min() > 0 and small.prop("alpha").min() > 0
    with pytest.raises(ValueError, match="name"):
        small.prop("nope")


def test_graphs_round_trip_to_smiles(small):
    # Kekulized graph -> RDKit molecule -> canonical SMILES equals the dataset's canonical SMILES
    back = graphs_to_smiles(small.atom_type, small.bond_type, small.mask, small.charge)
    ref = canonical_smiles(small.smiles)
    assert back == ref
    # RDKit perceives aromatic rings in this slice (pyrrole, furan, ...); their graphs carry
    # only kekulized single/double bonds (no aromatic bond type)
    from rdkit import Chem

    arom = [i for i, s in enumerate(small.smiles) if Chem.MolFromSmiles(s).GetAromaticAtoms()]
    assert len(arom) > 0
    assert set(small.bond_type[arom].unique().tolist()) <= {0, 1, 2, 3}
    assert all((small.bond_type[i] == 2).any() for i in arom)


def test_cache_missing_and_corrupt(tmp_path):
    d1 = load_qm9(limit=20, root=tmp_path)
    npz = next(tmp_path.glob("*.npz"))
    sidecar = next(tmp_path.glob("*.sha256"))
    good = json.loads(sidecar.read_text())["sha256"]
    # corrupt the cache: it must be detected by the checksum and rebuilt
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    npz.write_bytes(bytes(raw))
    d2 = load_qm9(limit=20, root=tmp_path)
    assert torch.equal(d1.bond_type, d2.bond_type) and d1.smiles == d2.smiles
    assert json.loads(sidecar.read_text())["sha256"] == good
    # a missing sidecar also triggers a rebuild
    sidecar.unlink()
    d3 = load_qm9(limit=20, root=tmp_path)
    assert sidecar.is_file() and torch.equal(d3.y, d1.y)


def test_split_deterministic_disjoint():
    a, b, c = qm9_split(1000, seed=3), qm9_split(1000, seed=3), qm9_split(1000, seed=4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["train"], c["train"])
    allidx = torch.cat([a["train"], a["val"], a["test"]])
    assert torch.equal(allidx.sort().values, torch.arange(1000))
    with pytest.raises(ValueError, match="fractions"):
        qm9_split(10, fractions=(0.5, 0.6, 0.1))


def test_dense_and_pyg_agree(small):
    d = small.dense()
    assert d["x"].shape == (N_SMALL, 9, 4) and d["adj"].shape == (N_SMALL, 9, 9, 3)
    assert torch.equal(d["x"].sum(-1), small.mask.float())
    data = small.to_pyg([10, 200])
    for g, i in zip(data, (10, 200)):
        n = int(small.num_nodes[i])
        assert torch.equal(g.x, d["x"][i, :n])
        dense_adj = torch.zeros(n, n, 3)
        dense_adj[g.edge_index[0], g.edge_index[1]] = g.edge_attr
        assert torch.equal(dense_adj, d["adj"][i, :n, :n])


def test_generation_metrics():
    m = generation_metrics(["C", "C", None, "CO"], reference=["C"])
    assert m == {"validity": 0.75, "uniqueness": 2 / 3, "novelty": 0.5}
