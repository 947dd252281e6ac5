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

from typing import Iterable, Mapping, Sequence

import torch

from .._extras import needs
from .._graphs import ATOM_TYPES, union_find_root

__all__ = [
    "VALENCE",
    "graph_to_mol",
    "graphs_to_smiles",
    "canonical_smiles",
    "generation_metrics",
    "draw_molecules",
    "valence_decode",
    "tanimoto",
]

#: Maximum valence of a neutral C, N, O, F atom (the order of :data:`ATOM_TYPES`).
VALENCE: tuple[int, ...] = (4, 3, 2, 1)


@needs("molecules", "rdkit")
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


@needs("molecules", "rdkit")
def graphs_to_smiles(atom_type, bond_type, mask, charge=None) -> list[str | None]:
    """A batch of padded graphs ``(B, n)``, ``(B, n, n)``, ``(B, n)`` -> canonical SMILES or ``None``."""
    from rdkit import Chem

    atom_type, bond_type, mask = (torch.as_tensor(t).cpu() for t in (atom_type, bond_type, mask))
    if (atom_type.dim() != 2 or mask.shape != atom_type.shape
            or bond_type.shape != (*atom_type.shape, atom_type.shape[-1])):
        raise ValueError(
            "expected atom_type (B, n), bond_type (B, n, n), mask (B, n); got "
            f"{tuple(atom_type.shape)}, {tuple(bond_type.shape)}, {tuple(mask.shape)}"
        )
    out = []
    for b in range(atom_type.shape[0]):
        mol = graph_to_mol(atom_type[b], bond_type[b], mask[b], None if charge is None else charge[b])
        out.append(None if mol is None else Chem.MolToSmiles(mol))
    return out


@needs("molecules", "rdkit")
def canonical_smiles(smiles: Iterable[str]) -> list[str | None]:
    """RDKit canonical SMILES after kekulization round trip (``None`` where parsing fails)."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    out = []
    for s in smiles:
        m = Chem.MolFromSmiles(s)
        out.append(None if m is None else Chem.MolToSmiles(m))
    return out


@needs("molecules", "rdkit")
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


@needs("molecules", "rdkit")
def draw_molecules(smiles: Sequence[str | None], legends: Sequence[str] | None = None, mols_per_row: int = 6,
                   size: int = 160):
    """A PIL grid image of ``size``-pixel cells, ``mols_per_row`` a row; an invalid entry (``None`` or
    ``""``) is an outlined empty cell that shows its legend (or "invalid") in its middle.

    Example
    -------
    >>> img = draw_molecules(["CCO", None], legends=["ethanol", "invalid"], mols_per_row=2, size=100)
    >>> img.size
    (200, 100)
    """
    from rdkit import Chem
    from rdkit.Chem import Draw

    mols = [Chem.MolFromSmiles(s) if s else Chem.Mol() for s in smiles]
    img = Draw.MolsToGridImage(mols, molsPerRow=mols_per_row, subImgSize=(size, size),
                               legends=list(legends) if legends is not None else None, returnPNG=False)
    if not hasattr(img, "size"):  # inside IPython RDKit may hand back a display object holding PNG bytes
        import io

        from PIL import Image

        img = Image.open(io.BytesIO(getattr(img, "data", img)))
    if not all(smiles):  # RDKit draws an empty molecule without its legend: label the cell
        from PIL import ImageDraw, ImageFont

        try:  # the legend's size in RDKit's cells (Pillow >= 10.1 scales its default font)
            font = ImageFont.load_default(size=max(10, size // 13))
        except TypeError:
            font = ImageFont.load_default()
        pen = ImageDraw.Draw(img)
        for k, s in enumerate(smiles):
            if not s:
                x0, y0 = (k % mols_per_row) * size, (k // mols_per_row) * size
                pen.rectangle([x0 + 6, y0 + 6, x0 + size - 7, y0 + size - 7], outline=(190, 190, 190))
                label = legends[k] if legends is not None and legends[k] else "invalid"
                pen.text((x0 + size // 2, y0 + size // 2), label, fill=(110, 110, 110), anchor="mm",
                         font=font)
    return img


def valence_decode(logits, *, connect: bool = True):
    r"""Decode graph VAE logits under valence rules: the most likely graph that RDKit accepts.

    :func:`invlatent.models.graph_vae.decode_graphs` takes the argmax of every slot and pair
    independently, which can exceed a valence or leave fragments. This greedy alternative
    (this package's choice, in the spirit of valence-constrained decoders of molecular VAEs)
    keeps the argmax **nodes** and **atom types** and builds the bonds:

    1. (``connect=True``) a maximum spanning tree of single bonds over the bond probabilities
       :math:`p_{ij} = 1 - P(\text{no bond})` (Kruskal), adding a bond only while both atoms
       have free valence (:data:`VALENCE`);
    2. every pair whose most likely class is a bond, most confident first, is raised towards
       that bond order as far as the free valences allow.

    The result never exceeds a valence and, with ``connect=True``, is connected unless the
    atoms' valences cannot span a tree (e.g. two fluorines); such graphs stay invalid. Fully
    vectorised over nothing: a Python loop over at most :math:`\binom{9}{2}` pairs per graph.

    Parameters
    ----------
    logits : mapping
        ``exist`` (B, n), ``atom`` (B, n, 4), ``bond`` (B, n, n, 4) as returned by
        :meth:`invlatent.models.graph_vae.GraphVAE.decode`.
    connect : bool
        Build the spanning tree first (default). ``False`` keeps only step 2, the argmax
        bonds made valence-feasible.

    Returns
    -------
    (atom_type (B, n), bond_type (B, n, n), mask (B, n))
        In the layout of :func:`invlatent.models.graph_vae.decode_graphs`, on the device of
        the logits (the rules run on the CPU). A graph with no existing slot keeps its most
        likely one.

    Example
    -------
    >>> import torch
    >>> bond = torch.full((1, 3, 3, 4), -5.0); bond[..., 0] = 5.0       # "no bond" everywhere
    >>> bond[0, 0, 1, 2] = bond[0, 1, 0, 2] = 6.0                      # C=C wanted ...
    >>> bond[0, 1, 2, 3] = bond[0, 2, 1, 3] = 6.0                      # ... and C#C: too many
    >>> logits = {"exist": torch.ones(1, 3), "atom": torch.tensor([[[5.0, 0, 0, 0]] * 3]), "bond": bond}
    >>> graphs_to_smiles(*valence_decode(logits))
    ['C=C=C']
    """
    import numpy as np

    if not isinstance(logits, Mapping):
        raise TypeError(f"logits must be a dict with 'exist', 'atom', 'bond' tensors, got {type(logits).__name__}")
    for key, nd in (("exist", 2), ("atom", 3), ("bond", 4)):
        if key not in logits:
            raise ValueError(f"logits must contain {key!r} (keys exist, atom, bond); got {sorted(logits)}")
        if not isinstance(logits[key], torch.Tensor) or logits[key].dim() != nd:
            raise ValueError(f"logits[{key!r}] must be a {nd}-d tensor")
    exist = logits["exist"].detach().float().cpu()
    atom = logits["atom"].detach().float().cpu().argmax(-1)
    prob = torch.softmax(logits["bond"].detach().float().cpu(), -1)
    B, n = exist.shape
    if atom.shape != (B, n) or prob.shape != (B, n, n, 4):
        raise ValueError(f"logits shapes disagree: exist {tuple(exist.shape)}, atom (B, n, 4), bond (B, n, n, 4)")
    mask = exist > 0
    none = ~mask.any(1)
    mask[none, exist[none].argmax(1)] = True
    atom = atom * mask
    P = prob.numpy()
    cap0 = np.asarray(VALENCE)[atom.numpy()]
    iu, ju = np.triu_indices(n, 1)
    bonds = np.zeros((B, n, n), dtype=np.int64)
    for b in range(B):
        real = mask[b].numpy()
        keep = real[iu] & real[ju]
        I, J = iu[keep], ju[keep]
        p = P[b, I, J]                               # (pairs, 4)
        cap = cap0[b].copy()
        bond = bonds[b]
        if connect:
            parent = list(range(n))
            for k in np.argsort(-(1.0 - p[:, 0]), kind="stable"):
                i, j = I[k], J[k]
                ri, rj = union_find_root(parent, i), union_find_root(parent, j)
                if ri != rj and cap[i] >= 1 and cap[j] >= 1:
                    parent[ri] = rj
                    bond[i, j] = bond[j, i] = 1
                    cap[i] -= 1
                    cap[j] -= 1
        want = p.argmax(1)
        for k in np.argsort(-p[:, 1:].max(1), kind="stable"):
            if want[k] == 0:
                continue
            i, j = I[k], J[k]
            add = min(int(want[k]) - bond[i, j], cap[i], cap[j])
            if add > 0:
                bond[i, j] += add
                bond[j, i] = bond[i, j]
                cap[i] -= add
                cap[j] -= add
    device = logits["exist"].device
    return atom.to(device), torch.from_numpy(bonds).to(device), mask.to(device)


@needs("molecules", "rdkit")
def tanimoto(smiles_a: Sequence[str | None], smiles_b: Sequence[str | None], *, radius: int = 2,
             bits: int = 2048) -> list[float]:
    r"""Tanimoto similarity of Morgan fingerprints, pair by pair:
    :math:`|F_a \cap F_b| / |F_a \cup F_b| \in [0, 1]` (1 = same bits).

    ``smiles_a`` and ``smiles_b`` have the same length; a pair with an invalid (``None`` or
    unparsable) member gives ``nan``.

    Example
    -------
    >>> [round(v, 2) for v in tanimoto(["CCO", "CCO", None], ["CCO", "CCN", "C"])]
    [1.0, 0.33, nan]
    """
    from rdkit import Chem, DataStructs, RDLogger
    from rdkit.Chem import rdFingerprintGenerator

    RDLogger.DisableLog("rdApp.*")
    for name, seq in (("smiles_a", smiles_a), ("smiles_b", smiles_b)):
        if isinstance(seq, str) or not hasattr(seq, "__len__"):
            raise TypeError(f"{name} must be a sequence of SMILES strings (or None), got {type(seq).__name__}")
    if len(smiles_a) != len(smiles_b):
        raise ValueError(f"smiles_a and smiles_b must have the same length, got {len(smiles_a)} and {len(smiles_b)}")
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)
    cache: dict[str, object] = {}

    def fp(s):
        if s is None:
            return None
        if s not in cache:
            m = Chem.MolFromSmiles(s)
            cache[s] = None if m is None else gen.GetFingerprint(m)
        return cache[s]

    out = []
    for a, b in zip(smiles_a, smiles_b):
        fa, fb = fp(a), fp(b)
        out.append(float("nan") if fa is None or fb is None else DataStructs.TanimotoSimilarity(fa, fb))
    return out
