"""QM9 3D geometries: parsing, targets (values, equivariance with parity), neighbour graphs, cache."""

import math

import pytest
import torch
from e3nn import o3

from invlatent.data.qm9_3d import (
    ELEMENTS,
    TARGET_IRREPS,
    charge_quadrupole,
    equivariant_targets,
    load_qm9_3d,
    mulliken_dipole,
    radius_graph_dense,
)


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return load_qm9_3d(limit=40, root=tmp_path_factory.mktemp("qm9"))


def test_parsing(ds):
    assert len(ds) == 40 and ds.pos.shape == (40, 29, 3)
    # methane: C + 4 H, centred, Mulliken charges sum to zero
    assert ds.smiles[0] == "C" and int(ds.num_atoms[0]) == 5
    assert [ELEMENTS[t] for t in ds.atom_type[0, :5]] == ["C", "H", "H", "H", "H"]
    assert torch.allclose(ds.pos[ds.mask].new_zeros(3), (ds.pos * ds.mask[..., None]).sum(1)[0] / 5, atol=1e-5)
    assert torch.all(ds.pos[~ds.mask] == 0) and torch.all(ds.charge[~ds.mask] == 0)
    assert ds.charge.sum(1).abs().max() < 1e-3
    # n_heavy column counts the heavy atoms
    assert torch.equal(ds.prop("n_heavy").long(), (ds.mask & (ds.atom_type > 0)).sum(1))


def test_targets_match_cartesian(ds):
    t = ds.targets().double()
    assert torch.allclose(t[:, :3], ds.dipole().double(), atol=1e-5)
    Q = ds.quadrupole().double()
    assert torch.allclose(Q, Q.transpose(1, 2), atol=1e-4) and Q.diagonal(dim1=1, dim2=2).sum(-1).abs().max() < 1e-4
    assert torch.allclose(t[:, 3:].norm(dim=1), Q.flatten(1).norm(dim=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("improper", [False, True])
def test_targets_equivariant(improper):
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(6, 7, 3, generator=g, dtype=torch.float64)
    q = torch.randn(6, 7, generator=g, dtype=torch.float64)
    R = o3.rand_matrix(6, dtype=torch.float64) * (-1.0 if improper else 1.0)
    D = o3.Irreps(TARGET_IRREPS).D_from_matrix(R)
    lhs = equivariant_targets(pos @ R.transpose(1, 2), q)
    rhs = torch.einsum("bij,bj->bi", D, equivariant_targets(pos, q))
    # relative error: e3nn builds Wigner matrices from float32 constants (~1e-7 relative)
    assert (lhs - rhs).abs().max() / rhs.abs().max() < 1e-5
    # the quadrupole and dipole transform as 3x3 tensors / vectors too
    assert torch.allclose(mulliken_dipole(pos @ R.transpose(1, 2), q), torch.einsum("bij,bj->bi", R, mulliken_dipole(pos, q)))
    assert torch.allclose(charge_quadrupole(pos @ R.transpose(1, 2), q), R @ charge_quadrupole(pos, q) @ R.transpose(1, 2))


def test_radius_graph_matches_bruteforce():
    g = torch.Generator().manual_seed(1)
    pos = torch.randn(3, 6, 3, generator=g) * 2
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], dtype=torch.bool)
    # cdist and the loop's norm round differently; no pair is within 0.27 of the cutoff 2.5
    # (measured), so the two edge sets agree exactly
    flat, ei = radius_graph_dense(pos, mask, 2.5)
    assert flat.shape == (12, 3)
    got = set(map(tuple, ei.T.tolist()))
    want, offset = set(), 0
    for b in range(3):
        n = int(mask[b].sum())
        for i in range(n):
            for j in range(n):
                if i != j and (pos[b, i] - pos[b, j]).norm() <= 2.5:
                    want.add((offset + j, offset + i))
        offset += n
    assert got == want


def test_batch_rotation(ds):
    R = o3.rand_matrix(3)
    b0, b1 = ds.batch([0, 5, 9]), ds.batch([0, 5, 9], rotation=R)
    # distances are unchanged up to float32 rounding (~1e-6 A); no pair of these molecules is
    # within 1.8 A of the 5 A cutoff (measured), so the edge sets are exactly equal
    assert torch.equal(b0.edge_index, b1.edge_index)
    D = o3.Irreps(TARGET_IRREPS).D_from_matrix(R)
    assert torch.allclose(b1.targets, torch.einsum("bij,bj->bi", D, b0.targets), atol=1e-4)
    assert b0.num_graphs == 3 and b0.ptr.tolist()[-1] == b0.num_nodes
    one = ds.to_pyg([5])[0]
    assert torch.allclose(one.pos, b0.pos[b0.batch == 1])


def test_cache_is_checked(tmp_path):
    a = load_qm9_3d(limit=3, root=tmp_path)
    npz = next(tmp_path.glob("qm9_3d_*_first3.npz"))
    npz.write_bytes(b"corrupt")
    b = load_qm9_3d(limit=3, root=tmp_path)  # rebuilt, not loaded silently
    assert torch.equal(a.pos, b.pos)


def test_bad_input():
    with pytest.raises(ValueError, match="limit"):
        load_qm9_3d(limit=0)
    with pytest.raises(ValueError, match="pos"):
        mulliken_dipole(torch.zeros(2, 3, 2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="charge"):
        mulliken_dipole(torch.zeros(2, 3, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        equivariant_targets(torch.full((1, 2, 3), math.nan), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="r_max"):
        radius_graph_dense(torch.zeros(1, 2, 3), torch.ones(1, 2, dtype=torch.bool), -1.0)
