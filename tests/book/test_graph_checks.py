"""Graph checks of padded molecules against brute force and independent tools."""

import itertools

import networkx as nx
import numpy as np
import pytest
import torch

from invlatent.book import automorphism_twins, disconnected, wl_hashes


def random_graphs(B, n, seed, p=0.35):
    g = np.random.default_rng(seed)
    atom = torch.from_numpy(g.integers(0, 2, size=(B, n)))
    upper = np.triu(g.integers(1, 3, size=(B, n, n)) * (g.random((B, n, n)) < p), 1)
    bond = torch.from_numpy(upper + upper.transpose(0, 2, 1))
    mask = torch.from_numpy(np.arange(n)[None, :] < g.integers(2, n + 1, size=(B, 1)))
    bond = bond * (mask[:, :, None] & mask[:, None, :])
    return atom, bond, mask


def brute_force_twins(atom, bond, mask):
    """Every node permutation of the real atoms: which are automorphisms, and are the pairs
    they exchange twins."""
    idx = [int(i) for i in np.flatnonzero(mask)]
    twins, symmetric = True, False
    for perm in itertools.permutations(idx):
        f = dict(zip(idx, perm))
        if any(atom[i] != atom[f[i]] for i in idx) or any(bond[i, j] != bond[f[i], f[j]] for i in idx for j in idx):
            continue
        for i, j in f.items():
            if i != j:
                symmetric = True
                twins &= all(bond[i, k] == bond[j, k] for k in idx if k not in (i, j))
    return twins, symmetric


def test_twins_and_symmetry_match_brute_force_over_all_permutations():
    atom, bond, mask = random_graphs(60, 6, seed=0)
    twins, symmetric = automorphism_twins(atom, bond, mask)
    expected = [brute_force_twins(a.numpy(), b.numpy(), m.numpy()) for a, b, m in zip(atom, bond, mask)]
    assert twins.tolist() == [e[0] for e in expected]
    assert symmetric.tolist() == [e[1] for e in expected]
    assert 0 < symmetric.sum() < len(symmetric)  # the sample holds both kinds


def test_symmetry_agrees_with_rdkit_symmetry_classes():
    pytest.importorskip("rdkit")
    from rdkit import Chem

    smiles = ["CC", "CCO", "C1CCC1", "OC(F)C", "N#CC(C)C", "CC(=O)O"]  # no aromatic rings
    types, orders = {"C": 0, "N": 1, "O": 2, "F": 3}, {1.0: 1, 2.0: 2, 3.0: 3}
    n = 9
    atom = torch.zeros(len(smiles), n, dtype=torch.long)
    bond = torch.zeros(len(smiles), n, n, dtype=torch.long)
    mask = torch.zeros(len(smiles), n, dtype=torch.bool)
    for k, s in enumerate(smiles):
        mol = Chem.MolFromSmiles(s)
        for a in mol.GetAtoms():
            atom[k, a.GetIdx()] = types[a.GetSymbol()]
            mask[k, a.GetIdx()] = True
        for b in mol.GetBonds():
            i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
            bond[k, i, j] = bond[k, j, i] = orders[b.GetBondTypeAsDouble()]
    _, symmetric = automorphism_twins(atom, bond, mask)
    for s, sym in zip(smiles, symmetric):
        mol = Chem.MolFromSmiles(s)
        classes = len(set(Chem.CanonicalRankAtoms(mol, breakTies=False)))
        assert sym == (classes < mol.GetNumAtoms()), s


def test_disconnected_matches_networkx():
    atom, bond, mask = random_graphs(200, 9, seed=1, p=0.2)
    got = disconnected(atom, bond, mask).tolist()
    for k in range(len(atom)):
        idx = [int(i) for i in np.flatnonzero(mask[k])]
        G = nx.Graph()
        G.add_nodes_from(idx)
        G.add_edges_from((i, j) for i in idx for j in idx if i < j and bond[k, i, j] > 0)
        assert got[k] == (not nx.is_connected(G)), k
    assert 0 < sum(got) < len(got)


def test_wl_hash_is_invariant_to_node_order_and_tells_graphs_apart():
    atom, bond, mask = random_graphs(30, 7, seed=2)
    full = torch.ones_like(mask)  # permute every slot, padding included
    perm = torch.stack([torch.randperm(7, generator=torch.Generator().manual_seed(k)) for k in range(30)])
    atom_p = atom.gather(1, perm)
    mask_p = mask.gather(1, perm)
    bond_p = bond.gather(1, perm[:, :, None].expand(-1, -1, 7)).gather(2, perm[:, None, :].expand(-1, 7, -1))
    assert wl_hashes(atom, bond, mask) == wl_hashes(atom_p, bond_p, mask_p)
    # a changed atom type changes the hash (non-isomorphic: different label counts)
    atom2 = atom.clone()
    atom2[:, 0] = 1 - atom2[:, 0]
    assert all(h1 != h2 for h1, h2 in zip(wl_hashes(atom, bond, full), wl_hashes(atom2, bond, full)))


def test_bad_shapes_are_refused():
    atom, bond, mask = random_graphs(2, 4, seed=3)
    with pytest.raises(ValueError, match="bond"):
        disconnected(atom, bond[:, :3], mask)
    with pytest.raises(TypeError):
        wl_hashes(atom.numpy(), bond, mask)
