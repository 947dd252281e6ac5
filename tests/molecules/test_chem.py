"""Valence-constrained decoding (``invlatent.chem.valence_decode``)."""

import pytest
import torch

from invlatent.molecules import VALENCE, canonical_smiles, graphs_to_smiles, valence_decode
from invlatent.data.qm9 import load_qm9
from invlatent.models.graph_vae import decode_graphs


def _random_logits(B, n, gen, atoms=4):
    atom = torch.randn(B, n, 4, generator=gen)
    if atoms < 4:
        atom[..., atoms:] = -1e4                      # forbid the later atom types
    bond = torch.randn(B, n, n, 4, generator=gen)
    return {"exist": torch.randn(B, n, generator=gen) + 1.0, "atom": atom, "bond": bond + bond.transpose(1, 2)}


def _logits_of(ds):
    """Sharp logits whose argmax is exactly the dataset graph."""
    n = ds.mask.shape[1]
    exist = torch.where(ds.mask, 8.0, -8.0)
    atom = torch.nn.functional.one_hot(ds.atom_type, 4).float() * 8.0
    bond = torch.nn.functional.one_hot(ds.bond_type, 4).float() * 8.0
    return {"exist": exist, "atom": atom, "bond": bond.reshape(-1, n, n, 4)}


def test_true_graphs_are_kept():
    # a graph that already obeys the rules is returned unchanged (neutral molecules only:
    # charges are not modelled by the decoder)
    ds = load_qm9(limit=400)
    keep = (ds.charge == 0).all(1)
    ds = ds.subset(torch.nonzero(keep).flatten())
    atom, bond, mask = valence_decode(_logits_of(ds))
    assert torch.equal(mask, ds.mask) and torch.equal(atom, ds.atom_type) and torch.equal(bond, ds.bond_type)
    assert graphs_to_smiles(atom, bond, mask) == canonical_smiles(ds.smiles)


@pytest.mark.parametrize("seed", range(3))
def test_valences_respected_and_connected(seed):
    gen = torch.Generator().manual_seed(seed)
    logits = _random_logits(300, 9, gen)
    atom, bond, mask = valence_decode(logits)
    assert torch.equal(bond, bond.transpose(1, 2)) and int(bond.diagonal(dim1=1, dim2=2).abs().sum()) == 0
    pair = mask[:, :, None] & mask[:, None, :]
    assert int(bond[~pair].abs().sum()) == 0          # no bond touches a missing slot
    used = bond.sum(2)
    cap = torch.tensor(VALENCE)[atom]
    assert bool((used <= cap).all())                   # never above a valence
    # nodes and atom types are the argmax ones (only bonds are changed)
    ref_atom, _, ref_mask = decode_graphs(logits)
    nonempty = ref_mask.any(1)
    assert torch.equal(mask[nonempty], ref_mask[nonempty]) and torch.equal(atom[nonempty], ref_atom[nonempty])
    # without fluorine every atom has valence >= 2, so the spanning tree always exists:
    # every graph is a valid molecule
    sm = graphs_to_smiles(*valence_decode(_random_logits(300, 9, gen, atoms=3)))
    assert all(s is not None for s in sm)
    # the argmax decode of the same logits is almost never valid (the point of the exercise)
    assert sum(s is not None for s in graphs_to_smiles(*decode_graphs(_random_logits(300, 9, gen, atoms=3)))) < 150


def test_equivariant_for_generic_logits():
    gen = torch.Generator().manual_seed(5)
    logits = _random_logits(50, 9, gen)
    perm = torch.stack([torch.randperm(9, generator=gen) for _ in range(50)])
    p = {"exist": logits["exist"].gather(1, perm), "atom": logits["atom"].gather(1, perm[..., None].expand(-1, -1, 4))}
    b = logits["bond"].gather(1, perm[:, :, None, None].expand(-1, -1, 9, 4))
    p["bond"] = b.gather(2, perm[:, None, :, None].expand(-1, 9, -1, 4))
    a1, b1, m1 = valence_decode(logits)
    a2, b2, m2 = valence_decode(p)
    assert torch.equal(m2, m1.gather(1, perm)) and torch.equal(a2, a1.gather(1, perm))
    assert torch.equal(b2, b1.gather(1, perm[:, :, None].expand(-1, -1, 9)).gather(2, perm[:, None, :].expand(-1, 9, -1)))


def test_no_connect_only_repairs_valences():
    gen = torch.Generator().manual_seed(1)
    logits = _random_logits(100, 9, gen)
    atom, bond, mask = valence_decode(logits, connect=False)
    _, ref_bond, _ = decode_graphs(logits)
    assert bool((bond <= ref_bond).all())             # only lowers the argmax bond orders
    assert bool((bond.sum(2) <= torch.tensor(VALENCE)[atom]).all())


def test_empty_graph_keeps_one_node_and_bad_input():
    logits = {"exist": torch.full((1, 4), -3.0), "atom": torch.zeros(1, 4, 4), "bond": torch.zeros(1, 4, 4, 4)}
    logits["exist"][0, 2] = -1.0
    _, _, mask = valence_decode(logits)
    assert mask.tolist() == [[False, False, True, False]]
    with pytest.raises(ValueError, match="bond"):
        valence_decode({"exist": logits["exist"], "atom": logits["atom"]})
    with pytest.raises(ValueError, match="atom"):
        valence_decode({**logits, "atom": torch.zeros(1, 4)})
    with pytest.raises(ValueError, match="shapes"):
        valence_decode({**logits, "bond": torch.zeros(1, 4, 4, 3)})


def test_tanimoto():
    from invlatent.molecules import tanimoto

    v = tanimoto(["CCO", "c1ccccc1", "CCO", None, "not a smiles"], ["CCO", "C1=CC=CC=C1", "CCCCCCCCF", "C", "C"])
    assert v[0] == 1.0 and v[1] == 1.0               # identical; Kekulé form = aromatic form
    assert 0.0 <= v[2] < 0.5
    assert v[3] != v[3] and v[4] != v[4]             # nan for invalid members
    with pytest.raises(ValueError, match="same length"):
        tanimoto(["C"], [])
