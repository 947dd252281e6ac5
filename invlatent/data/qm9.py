"""QM9 as heavy-atom molecular graphs: dense tensors, PyG ``Data`` objects, one checked cache.

The data come from the registry package ``qm9pack`` (all 130,831 molecules of QM9
(Ramakrishnan et al., 2014), shipped as CSV files; no network). ``qm9pack`` itself is
never imported (its ``__init__`` needs ``pkg_resources``): its ``data/`` folder is located
with :func:`importlib.util.find_spec`.

Each SMILES string is parsed by RDKit and turned into a graph on the **heavy atoms** only
(hydrogens are implicit):

* nodes: atom types ``C, N, O, F`` (index ``0..3``), at most :data:`MAX_NODES` ``= 9`` per
  molecule, padded to 9 slots with a boolean node mask (padding slots have type 0 and mask
  ``False``; the mask is the truth);
* edges: bond types ``1 = single, 2 = double, 3 = triple`` (``0`` = no bond) in a symmetric
  ``9 x 9`` matrix. Aromatic bonds are **kekulized** (``Chem.Kekulize(...,
  clearAromaticFlags=True)``): an aromatic ring becomes one of its alternating single/double
  Kekulé structures, chosen deterministically by RDKit. No aromatic bond type remains, and
  decoding a graph back to a molecule needs no aromaticity perception;
* formal charges (QM9 has a few zwitterions, e.g. ``[NH3+]...C(=O)[O-]``) are kept in
  ``charge`` for exact round trips but are not modelled by the VAE.

Targets (column ``y``, one per name in :data:`PROPERTIES`) are converted to conventional
units: energies (HOMO, LUMO, gap, ZPVE) from Hartree to eV, the dipole moment in Debye,
the isotropic polarizability in bohr³, the heat capacity :math:`C_v` at 298 K in cal/(mol K),
the electronic spatial extent :math:`\\langle R^2 \\rangle` in bohr², and the number of heavy
atoms.

The converted arrays are cached once (``<cache_dir>/qm9/qm9_v1[...].npz``, about 2 MB) with
a SHA-256 checksum beside it; a missing or corrupt cache is rebuilt.

Example
-------
>>> ds = load_qm9(limit=50)                    # the first 50 molecules (fast)
>>> len(ds), ds.atom_type.shape, ds.bond_type.shape
(50, torch.Size([50, 9]), torch.Size([50, 9, 9]))
>>> ds.smiles[4], ds.num_nodes[4].item(), ds.units["gap"]
('C#N', 2, 'eV')
>>> data = ds.to_pyg([4])[0]
>>> data.x.shape, data.edge_index.shape      # one-hot C/N/O/F, the triple bond both ways
(torch.Size([2, 4]), torch.Size([2, 2]))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np
import torch

from .._extras import needs
from .._graphs import ATOM_TYPES, BOND_TYPES, MAX_NODES
from .._validation import check_optional_positive_int, check_positive_int, describe
from ..utils import progress
from ._cache import cached_arrays
from ._source import qm9_data_dir, read_qm9_csv

__all__ = [
    "ATOM_TYPES",
    "BOND_TYPES",
    "MAX_NODES",
    "PROPERTIES",
    "QM9Graphs",
    "load_qm9",
    "qm9_split",
    "qm9_data_dir",
]


_HARTREE_EV = 27.211386245988
#: name -> (CSV column or ``None`` for derived, unit, factor to the unit).
PROPERTIES: dict[str, tuple[str | None, str, float]] = {
    "gap": ("HOMO_LUMO_gap_au", "eV", _HARTREE_EV),
    "homo": ("HOMO_au", "eV", _HARTREE_EV),
    "lumo": ("LUMO_au", "eV", _HARTREE_EV),
    "mu": ("Dipole_debye", "D", 1.0),
    "alpha": ("Polarizability_bohr3", "bohr^3", 1.0),
    "cv": ("Heatcapacity_Cv_cal_mol_K", "cal/(mol K)", 1.0),
    "r2": ("R2_bohr2", "bohr^2", 1.0),
    "zpve": ("ZPVE_au", "eV", _HARTREE_EV),
    "n_heavy": (None, "atoms", 1.0),
}
_CACHE_VERSION = "v1"


class _MoleculeTable:
    """Per-molecule tables (one row per molecule in every tensor and list field):
    property lookup and subsetting, shared by :class:`QM9Graphs` and the 3D geometries."""

    def prop(self, name: str) -> torch.Tensor:
        """The target column ``name`` (one of :attr:`property_names`), shape ``(M,)``."""
        if name not in self.property_names:
            raise ValueError(f"name must be one of {self.property_names}, got {describe(name)}")
        return self.y[:, self.property_names.index(name)]

    def subset(self, index: Sequence[int] | torch.Tensor):
        """The molecules at ``index`` (a 1-D integer tensor or sequence), in that order."""
        idx = torch.as_tensor(index, dtype=torch.long)
        if idx.dim() != 1:
            raise ValueError(f"index must be 1-D, got shape {tuple(idx.shape)}")
        rows = idx.tolist()
        values = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                v = v[idx]
            elif isinstance(v, list):
                v = [v[i] for i in rows]
            elif isinstance(v, dict):
                v = dict(v)
            values[f.name] = v
        return type(self)(**values)


@dataclass
class QM9Graphs(_MoleculeTable):
    """QM9 molecules as padded heavy-atom graphs (all tensors share the first axis ``M``).

    Attributes
    ----------
    atom_type : LongTensor (M, 9)
        Index into :data:`ATOM_TYPES`; 0 in padding slots.
    bond_type : LongTensor (M, 9, 9)
        Symmetric; 0 none, 1 single, 2 double, 3 triple (kekulized); zero diagonal.
    mask : BoolTensor (M, 9)
        True for real atoms; real atoms occupy the first ``num_nodes`` slots (dataset order).
    charge : LongTensor (M, 9)
        Formal charges (RDKit), 0 in padding slots.
    y : FloatTensor (M, P)
        Targets, column ``k`` is ``property_names[k]`` in ``units[name]``.
    smiles : list of str
        The QM9 SMILES string of each molecule.
    qm9_index : LongTensor (M,)
        The molecule's index in QM9 (1-based, as in ``dsgdb9nsd_XXXXXX``).
    """

    atom_type: torch.Tensor
    bond_type: torch.Tensor
    mask: torch.Tensor
    charge: torch.Tensor
    y: torch.Tensor
    smiles: list[str]
    qm9_index: torch.Tensor
    property_names: tuple[str, ...] = tuple(PROPERTIES)
    units: dict[str, str] = field(default_factory=lambda: {k: v[1] for k, v in PROPERTIES.items()})

    def __len__(self) -> int:
        return int(self.atom_type.shape[0])

    @property
    def num_nodes(self) -> torch.Tensor:
        """Number of heavy atoms per molecule, ``(M,)``."""
        return self.mask.sum(1)

    def dense(self, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        """One-hot dense tensors for a model.

        Returns ``{"x": (M, 9, 4), "adj": (M, 9, 9, 3), "mask": (M, 9) bool}``: one-hot atom
        types and one-hot bond types (the "no bond" class dropped), zero in padding.
        """
        m = self.mask
        x = torch.nn.functional.one_hot(self.atom_type, len(ATOM_TYPES)).to(dtype) * m[..., None]
        adj = torch.nn.functional.one_hot(self.bond_type, len(BOND_TYPES) + 1)[..., 1:].to(dtype)
        return {"x": x, "adj": adj, "mask": m}

    @needs("molecules", "torch_geometric", what="QM9Graphs.to_pyg")
    def to_pyg(self, index: Sequence[int] | torch.Tensor | None = None) -> list:
        """PyG ``Data`` objects (from the same tensors as :meth:`dense`).

        Each has ``x`` (n, 4) one-hot atom types, ``edge_index`` (2, 2E) with both directions,
        ``edge_attr`` (2E, 3) one-hot bond types, ``y`` (1, P), ``smiles`` and ``idx``.
        """
        from torch_geometric.data import Data

        idx = range(len(self)) if index is None else torch.as_tensor(index, dtype=torch.long).tolist()
        eye4 = torch.eye(len(ATOM_TYPES))
        eye3 = torch.eye(len(BOND_TYPES))
        out = []
        for i in idx:
            n = int(self.mask[i].sum())
            b = self.bond_type[i, :n, :n]
            src, dst = b.nonzero(as_tuple=True)
            out.append(Data(
                x=eye4[self.atom_type[i, :n]], edge_index=torch.stack([src, dst]),
                edge_attr=eye3[b[src, dst] - 1], y=self.y[i : i + 1], smiles=self.smiles[i], idx=i,
            ))
        return out


def qm9_split(
    n: int, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> dict[str, torch.Tensor]:
    """A deterministic random train/validation/test split of ``range(n)``.

    Parameters
    ----------
    n : int
        Number of molecules.
    seed : int
        The same seed always gives the same split (a CPU ``torch.Generator``).
    fractions : (float, float, float)
        Train, validation and test fractions, non-negative and summing to 1.

    Returns
    -------
    dict
        ``{"train", "val", "test"}`` -> disjoint ``LongTensor`` indices covering ``range(n)``.

    Example
    -------
    >>> s = qm9_split(10, seed=1)
    >>> [len(s[k]) for k in ("train", "val", "test")]
    [8, 1, 1]
    >>> torch.equal(s["test"], qm9_split(10, seed=1)["test"])
    True
    """
    if not isinstance(n, int) or isinstance(n, bool):
        hint = " (pass len(dataset), not the data set)" if hasattr(n, "__len__") else ""
        raise TypeError(f"n must be a positive int, the number of molecules{hint}, got {describe(n)}")
    if n < 1:
        raise ValueError(f"n must be a positive int, got {n}")
    f = [float(v) for v in fractions]
    if len(f) != 3 or min(f) < 0 or abs(sum(f) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {describe(fractions)}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train = int(round(f[0] * n))
    n_val = int(round(f[1] * n))
    return {"train": perm[:n_train], "val": perm[n_train : n_train + n_val], "test": perm[n_train + n_val :]}


def _read_csvs(limit: int | None):
    return read_qm9_csv(["Index", "SMILES"] + [c for c, _, _ in PROPERTIES.values() if c is not None], limit)


def _convert(df) -> dict[str, np.ndarray]:
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    atom_index = {s: i for i, s in enumerate(ATOM_TYPES)}
    bond_index = {Chem.BondType.SINGLE: 1, Chem.BondType.DOUBLE: 2, Chem.BondType.TRIPLE: 3}
    smiles = df["SMILES"].tolist()
    M = len(smiles)
    atoms = np.zeros((M, MAX_NODES), np.int8)
    mask = np.zeros((M, MAX_NODES), bool)
    charge = np.zeros((M, MAX_NODES), np.int8)
    bonds = np.zeros((M, MAX_NODES, MAX_NODES), np.int8)
    ok = np.ones(M, bool)
    for i, s in enumerate(progress(smiles, desc="QM9 SMILES -> graphs", mininterval=2.0)):
        mol = Chem.MolFromSmiles(s)
        if mol is None:
            ok[i] = False
            continue
        Chem.Kekulize(mol, clearAromaticFlags=True)
        n = mol.GetNumAtoms()
        if n > MAX_NODES:
            ok[i] = False
            continue
        for a in mol.GetAtoms():
            j = a.GetIdx()
            atoms[i, j] = atom_index[a.GetSymbol()]
            charge[i, j] = a.GetFormalCharge()
        mask[i, :n] = True
        for b in mol.GetBonds():
            u, v = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
            bonds[i, u, v] = bonds[i, v, u] = bond_index[b.GetBondType()]
    y = np.zeros((M, len(PROPERTIES)), np.float32)
    for k, (name, (col, _, factor)) in enumerate(PROPERTIES.items()):
        y[:, k] = mask.sum(1) if col is None else df[col].to_numpy(np.float64) * factor
    return {
        "atom_type": atoms[ok], "bond_type": bonds[ok], "mask": mask[ok], "charge": charge[ok],
        "y": y[ok], "qm9_index": df["Index"].to_numpy(np.int32)[ok],
        "smiles": np.array(smiles, dtype="S")[ok],
    }


@needs("molecules", "rdkit", "qm9pack")
def load_qm9(
    *, limit: int | None = None, rebuild: bool = False, root: str | os.PathLike | None = None,
    verbose: bool = False,
) -> QM9Graphs:
    """Load QM9 as :class:`QM9Graphs`, building the cache on first use.

    Parameters
    ----------
    limit : int, optional
        Only the first ``limit`` molecules of QM9 (their own small cache); ``None`` = all.
    rebuild : bool
        Rebuild the cache even if a valid one exists.
    root : path, optional
        Cache folder (default ``invlatent.utils.cache_dir("qm9")``, i.e. ``$INVLATENT_CACHE/qm9``).
    verbose : bool
        Print whether the cache was built or loaded and how long it took.

    Notes
    -----
    The cache is an ``.npz`` file with a ``.sha256`` sidecar holding its checksum. It is
    rebuilt when either file is missing, the sidecar is unreadable or the checksum does not
    match (a truncated or corrupted download of the cache never loads silently).
    Molecules RDKit cannot parse, or with more than 9 heavy atoms, would be dropped; for the
    shipped QM9 none are (all 130,831 load).
    """
    check_optional_positive_int(limit, "limit")
    stem = f"qm9_{_CACHE_VERSION}" + ("" if limit is None else f"_first{limit}")
    arr = cached_arrays(stem, lambda: _convert(_read_csvs(limit)), version=_CACHE_VERSION, rebuild=rebuild,
                        root=root, label="QM9", verbose=verbose)
    return QM9Graphs(
        atom_type=torch.from_numpy(arr["atom_type"].astype(np.int64)),
        bond_type=torch.from_numpy(arr["bond_type"].astype(np.int64)),
        mask=torch.from_numpy(arr["mask"]),
        charge=torch.from_numpy(arr["charge"].astype(np.int64)),
        y=torch.from_numpy(arr["y"]),
        smiles=[s.decode() for s in arr["smiles"].tolist()],
        qm9_index=torch.from_numpy(arr["qm9_index"].astype(np.int64)),
    )
