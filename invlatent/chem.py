"""RDKit helpers: padded heavy-atom graphs back to molecules, and generation metrics.

A graph in the layout of :mod:`invlatent.data.qm9` (atom types ``C, N, O, F``, kekulized
bond types ``1, 2, 3``, a node mask) is turned into an RDKit molecule with implicit
hydrogens. A graph is **valid** when RDKit sanitizes it (valences respected) and it is one
connected molecule; its canonical SMILES is then its identity, used for exact match,
uniqueness and novelty:

.. math::

   \\text{validity} = \\frac{\\#\\text{valid}}{\\#\\text{generated}},\\quad
   \\text{uniqueness} = \\frac{\\#\\text{distinct valid}}{\\#\\text{valid}},\\quad
   \\text{novelty} = \\frac{\\#\\text{distinct valid not in the reference set}}{\\#\\text{distinct valid}}.

Example
-------
>>> import torch
>>> atoms = torch.tensor([[0, 0, 2, 0]])          # C C O (pad)
>>> bonds = torch.zeros(1, 4, 4, dtype=torch.long)
>>> bonds[0, 0, 1] = bonds[0, 1, 0] = 1
>>> bonds[0, 1, 2] = bonds[0, 2, 1] = 2
>>> mask = torch.tensor([[True, True, True, False]])
>>> graphs_to_smiles(atoms, bonds, mask)
['CC=O']
>>> m = generation_metrics(['CC=O', None, 'CC=O', 'CO'], reference=['CO'])
>>> {k: round(v, 2) for k, v in m.items()}
{'validity': 0.75, 'uniqueness': 0.67, 'novelty': 0.5}
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch

from .data.qm9 import ATOM_TYPES

__all__ = ["graph_to_mol", "graphs_to_smiles", "canonical_smiles", "generation_metrics", "draw_molecules"]


def graph_to_mol(atom_type, bond_type, mask, charge=None):
    """One padded graph -> a sanitized RDKit ``Mol``, or ``None`` if it is not a valid molecule.

    Parameters
    ----------
    atom_type : LongTensor (n,)
        Index into :data:`invlatent.data.qm9.ATOM_TYPES`.
    bond_type : LongTensor (n, n)
        0 none, 1 single, 2 double, 3 triple; the upper triangle is read.
    mask : BoolTensor (n,)
        Real atoms; masked-out slots and their bonds are ignored.
    charge : LongTensor (n,), optional
        Formal charges (default 0).

    Returns
    -------
    rdkit.Chem.Mol or None
        ``None`` if there is no atom, RDKit sanitization fails (a valence is exceeded) or the
        graph has more than one connected component.
    """
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    bt = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
    keep = torch.as_tensor(mask).bool().nonzero().flatten().tolist()
    if not keep:
        return None
    types = torch.as_tensor(atom_type).tolist()
    bonds = torch.as_tensor(bond_type).tolist()
    charges = torch.as_tensor(charge).tolist() if charge is not None else None
    rw = Chem.RWMol()
    new = {}
    for i in keep:
        a = Chem.Atom(ATOM_TYPES[int(types[i])])
        if charges is not None and charges[i]:
            a.SetFormalCharge(int(charges[i]))
        new[i] = rw.AddAtom(a)
    for x, i in enumerate(keep):
        for j in keep[x + 1 :]:
            b = int(bonds[i][j])
            if b:
                rw.AddBond(new[i], new[j], bt[b])
    mol = rw.GetMol()
    try:
        Chem.SanitizeMol(mol)
    except Exception:  # RDKit raises several sanitization error types
        return None
    if len(Chem.GetMolFrags(mol)) != 1:
        return None
    return mol


def graphs_to_smiles(atom_type, bond_type, mask, charge=None) -> list[str | None]:
    """A batch of padded graphs ``(B, n)``, ``(B, n, n)``, ``(B, n)`` -> canonical SMILES or ``None``."""
    from rdkit import Chem

    atom_type, bond_type, mask = (torch.as_tensor(t).cpu() for t in (atom_type, bond_type, mask))
    if atom_type.dim() != 2 or bond_type.dim() != 3 or mask.shape != atom_type.shape:
        raise ValueError(
            "expected atom_type (B, n), bond_type (B, n, n), mask (B, n); got "
            f"{tuple(atom_type.shape)}, {tuple(bond_type.shape)}, {tuple(mask.shape)}"
        )
    out = []
    for b in range(atom_type.shape[0]):
        mol = graph_to_mol(atom_type[b], bond_type[b], mask[b], None if charge is None else charge[b])
        out.append(None if mol is None else Chem.MolToSmiles(mol))
    return out


def canonical_smiles(smiles: Iterable[str]) -> list[str | None]:
    """RDKit canonical SMILES after kekulization round trip (``None`` where parsing fails)."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    out = []
    for s in smiles:
        m = Chem.MolFromSmiles(s)
        out.append(None if m is None else Chem.MolToSmiles(m))
    return out


def generation_metrics(smiles: Sequence[str | None], reference: Iterable[str] = ()) -> dict[str, float]:
    """Validity, uniqueness and novelty (definitions in the module docstring).

    ``smiles`` are canonical SMILES of generated graphs (``None`` = invalid); ``reference`` the
    canonical SMILES of the training set. Empty denominators give 0.
    """
    valid = [s for s in smiles if s is not None]
    uniq = set(valid)
    ref = set(reference)
    return {
        "validity": len(valid) / max(len(smiles), 1),
        "uniqueness": len(uniq) / max(len(valid), 1),
        "novelty": len(uniq - ref) / max(len(uniq), 1),
    }


def draw_molecules(smiles: Sequence[str | None], legends: Sequence[str] | None = None, mols_per_row: int = 6,
                   size: int = 160):
    """A PIL grid image of molecules (invalid entries drawn as empty cells with their legend)."""
    from rdkit import Chem
    from rdkit.Chem import Draw

    mols = [Chem.MolFromSmiles(s) if s else Chem.Mol() for s in smiles]
    img = Draw.MolsToGridImage(mols, molsPerRow=mols_per_row, subImgSize=(size, size),
                               legends=list(legends) if legends is not None else None, returnPNG=False)
    if not hasattr(img, "size"):  # inside IPython RDKit may hand back a display object holding PNG bytes
        import io

        from PIL import Image

        img = Image.open(io.BytesIO(getattr(img, "data", img)))
    return img
