r"""QM9 as 3D geometries with hydrogens, Mulliken charges and equivariant targets.

The geometries come from the same offline source as :mod:`invlatent.data.qm9` (the
``qm9pack`` CSV files, located with :func:`~invlatent.data.qm9.qm9_data_dir`; the package
itself is never imported). Each molecule keeps **all** its atoms (H, C, N, O, F; at most
:data:`MAX_ATOMS` ``= 29``), padded to 29 slots with a boolean mask:

* ``pos`` -- coordinates in Å, **centred on the centroid** of the atoms (so every target
  below is translation invariant);
* ``atom_type`` -- index into :data:`ELEMENTS`;
* ``charge`` -- the shipped Mulliken charges :math:`q_i` (units of :math:`e`).

Two **equivariant targets** are computed from the shipped charges and coordinates, so they
live in the frame of the coordinates (unlike the shipped polarizability tensor, which is
given in another orientation):

.. math::

    & \mu = \sum_i q_i\, r_i \quad (l=1,\ \text{odd}, ``1o``), \\
    & Q = \sum_i q_i \left(3\, r_i r_i^\top - \lVert r_i\rVert^2 I\right)
    \quad (l=2,\ \text{even}, ``2e``).

In e3nn's basis (:func:`equivariant_targets`), :math:`\mu` is the ``1o`` vector (e3nn 0.6
orders it ``x, y, z``) and :math:`Q` the ``2e`` vector
:math:`\sqrt 6 \sum_i q_i\, Y^2(r_i)` (e3nn spherical harmonics, ``normalization="norm"``,
unnormalised argument), scaled so that its Euclidean norm equals the Frobenius norm of
:math:`Q`. Scalar properties are the ones of :data:`~invlatent.data.qm9.PROPERTIES` in the
same units.

The parsed arrays are cached once per ``limit`` (``<cache_dir>/qm9/qm9_3d_v1[...].npz``)
with a SHA-256 sidecar, exactly like :func:`~invlatent.data.qm9.load_qm9`; a missing or
corrupt cache is rebuilt.

Example
-------
>>> ds = load_qm9_3d(limit=20)
>>> len(ds), ds.pos.shape, ds.smiles[1]
(20, torch.Size([20, 29, 3]), 'N')
>>> int(ds.num_atoms[1]), [ELEMENTS[t] for t in ds.atom_type[1, :4]]
(4, ['N', 'H', 'H', 'H'])
>>> round(float(ds.charge[1].sum()), 4)              # Mulliken charges sum to ~0
0.0
>>> ds.targets().shape                               # 1o dipole + 2e quadrupole
torch.Size([20, 8])
>>> b = ds.batch([0, 1], r_max=2.0)
>>> b.pos.shape, b.edge_index.shape, b.batch.tolist()
(torch.Size([9, 3]), torch.Size([2, 32]), [0, 0, 0, 0, 0, 1, 1, 1, 1])
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .._extras import needs
from .._validation import check_optional_positive_int, check_tensor
from ..utils import progress
from .._graphs import radius_graph_dense
from .._irreps import TARGET_IRREPS
from ._cache import cached_arrays
from ._source import read_qm9_csv
from .qm9 import PROPERTIES, _MoleculeTable

__all__ = [
    "ELEMENTS",
    "ATOMIC_NUMBERS",
    "MAX_ATOMS",
    "TARGET_IRREPS",
    "QM9Geometries",
    "load_qm9_3d",
    "mulliken_dipole",
    "charge_quadrupole",
    "equivariant_targets",
    "radius_graph_dense",
]

#: Elements, in the order of their index in ``atom_type``.
ELEMENTS: tuple[str, ...] = ("H", "C", "N", "O", "F")
#: Atomic numbers of :data:`ELEMENTS`.
ATOMIC_NUMBERS: tuple[int, ...] = (1, 6, 7, 8, 9)
#: Largest number of atoms (with hydrogens) in QM9.
MAX_ATOMS: int = 29
#: e3nn irreps of :func:`equivariant_targets`: the dipole (``1o``) and the quadrupole (``2e``).
TARGET_IRREPS: str = TARGET_IRREPS
_CACHE_VERSION = "v1"


# --------------------------------------------------------------------------------------
# equivariant targets
# --------------------------------------------------------------------------------------


def _check_cloud(pos, charge, mask):
    check_tensor(pos, "pos", ndim=3, shape=(None, None, 3), expected="(B, n, 3)")
    check_tensor(charge, "charge", ndim=2, shape=pos.shape[:2], expected="(B, n)")
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor of shape (B, n), got {getattr(mask, 'dtype', type(mask).__name__)}")
        if mask.shape != pos.shape[:2]:
            raise ValueError(f"mask must have shape (B, n) = {tuple(pos.shape[:2])}, got {tuple(mask.shape)}")
        charge = charge * mask.to(charge.dtype)
    return charge


def mulliken_dipole(pos: torch.Tensor, charge: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Charge dipole :math:`\mu = \sum_i q_i r_i` of each molecule.

    Parameters
    ----------
    pos : Tensor, shape ``(B, n, 3)``
        Coordinates (Å); centre them first for a translation-invariant dipole when the
        charges do not sum to zero.
    charge : Tensor, shape ``(B, n)``
        Point charges (e.g. Mulliken, in :math:`e`).
    mask : BoolTensor, shape ``(B, n)``, optional
        ``True`` for real atoms; padded atoms contribute nothing.

    Returns
    -------
    Tensor, shape ``(B, 3)`` (Cartesian ``x, y, z``; :math:`e\,Å`).

    Example
    -------
    >>> pos = torch.tensor([[[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]])
    >>> mulliken_dipole(pos, torch.tensor([[0.5, -0.5]])).tolist()
    [[1.0, 0.0, 0.0]]
    """
    charge = _check_cloud(pos, charge, mask)
    return torch.einsum("bn,bnk->bk", charge, pos)


def charge_quadrupole(pos: torch.Tensor, charge: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Traceless charge quadrupole :math:`Q = \sum_i q_i (3 r_i r_i^\top - \lVert r_i\rVert^2 I)`.

    Parameters
    ----------
    pos, charge, mask
        As in :func:`mulliken_dipole`.

    Returns
    -------
    Tensor, shape ``(B, 3, 3)``: symmetric and traceless (:math:`e\,Å^2`).

    Example
    -------
    >>> pos = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]])
    >>> charge_quadrupole(pos, torch.tensor([[1.0, 1.0]]))[0].diagonal().tolist()
    [-2.0, -2.0, 4.0]
    """
    charge = _check_cloud(pos, charge, mask)
    outer = 3 * pos.unsqueeze(-1) * pos.unsqueeze(-2)
    eye = torch.eye(3, dtype=pos.dtype, device=pos.device)
    outer = outer - pos.square().sum(-1)[..., None, None] * eye
    return torch.einsum("bn,bnij->bij", charge, outer)


def equivariant_targets(pos: torch.Tensor, charge: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Dipole and quadrupole as one e3nn ``1x1o + 1x2e`` vector per molecule.

    .. math::

        t = \Big(\sum_i q_i\, Y^1(r_i),\ \sqrt{6}\sum_i q_i\, Y^2(r_i)\Big),

    with e3nn's spherical harmonics (``normalization="norm"``, unnormalised argument), so
    that :math:`Y^1(r) = r` and :math:`\lVert t_{2e}\rVert = \lVert Q\rVert_F`. Equivariant:
    :math:`t(R\,r) = D(R)\, t(r)` with ``Irreps(TARGET_IRREPS).D_from_matrix(R)``, parity
    included (:math:`\mu` flips sign under inversion, :math:`Q` does not).

    Returns
    -------
    Tensor, shape ``(B, 8)``.

    Example
    -------
    >>> pos = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]])
    >>> q = torch.tensor([[1.0, 1.0]])
    >>> t = equivariant_targets(pos, q)
    >>> round(float(t[0, 3:].norm()), 4), round(float(charge_quadrupole(pos, q).norm()), 4)
    (4.899, 4.899)
    """
    from e3nn import o3

    charge = _check_cloud(pos, charge, mask)
    y1 = o3.spherical_harmonics(1, pos, normalize=False, normalization="norm")
    y2 = o3.spherical_harmonics(2, pos, normalize=False, normalization="norm")
    y2 = y2 * math.sqrt(6.0)
    dipole = torch.einsum("bn,bnk->bk", charge, y1)
    quadrupole = torch.einsum("bn,bnk->bk", charge, y2)
    return torch.cat([dipole, quadrupole], dim=-1)


# --------------------------------------------------------------------------------------
# neighbour graphs without compiled extensions
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# the dataset
# --------------------------------------------------------------------------------------


@dataclass
class QM9Geometries(_MoleculeTable):
    """QM9 molecules as padded 3D point clouds with hydrogens (tensors share the first axis ``M``).

    Attributes
    ----------
    pos : FloatTensor (M, 29, 3)
        Centred coordinates (Å); 0 in padding.
    atom_type : LongTensor (M, 29)
        Index into :data:`ELEMENTS`; 0 in padding (the mask is the truth).
    mask : BoolTensor (M, 29)
        True for real atoms (the first ``num_atoms`` slots, in the order of the QM9 file).
    charge : FloatTensor (M, 29)
        Mulliken charges (:math:`e`); 0 in padding.
    y : FloatTensor (M, P)
        Scalar properties, column ``k`` is ``property_names[k]`` in ``units[name]``.
    smiles : list of str
    qm9_index : LongTensor (M,)
        1-based QM9 index (``dsgdb9nsd_XXXXXX``).
    """

    pos: torch.Tensor
    atom_type: torch.Tensor
    mask: torch.Tensor
    charge: torch.Tensor
    y: torch.Tensor
    smiles: list[str]
    qm9_index: torch.Tensor
    property_names: tuple[str, ...] = tuple(PROPERTIES)
    units: dict[str, str] = field(default_factory=lambda: {k: v[1] for k, v in PROPERTIES.items()})

    def __len__(self) -> int:
        return int(self.pos.shape[0])

    @property
    def num_atoms(self) -> torch.Tensor:
        """Atoms per molecule (hydrogens included), ``(M,)``."""
        return self.mask.sum(1)

    def dipole(self) -> torch.Tensor:
        """Mulliken dipoles :math:`\\sum_i q_i r_i`, ``(M, 3)`` (:math:`e\\,Å`)."""
        return mulliken_dipole(self.pos, self.charge, self.mask)

    def quadrupole(self) -> torch.Tensor:
        """Traceless charge quadrupoles, ``(M, 3, 3)`` (:math:`e\\,Å^2`)."""
        return charge_quadrupole(self.pos, self.charge, self.mask)

    def targets(self) -> torch.Tensor:
        """:func:`equivariant_targets` of every molecule, ``(M, 8)`` in :data:`TARGET_IRREPS`."""
        return equivariant_targets(self.pos, self.charge, self.mask)

    @needs("molecules", "torch_geometric", what="QM9Geometries.batch")
    def batch(self, index: Sequence[int] | torch.Tensor | None = None, *, r_max: float = 5.0,
              rotation: torch.Tensor | None = None, device=None, dtype: torch.dtype = torch.float32):
        """One PyG ``Data`` holding a whole batch, built without a per-molecule loop.

        Parameters
        ----------
        index : 1-D indices, optional
            Molecules to include (all by default).
        r_max : float
            Neighbour cutoff for :func:`radius_graph_dense` (Å).
        rotation : Tensor, shape ``(len(index), 3, 3)``, optional
            One orthogonal matrix per molecule, applied to its coordinates (and hence to its
            equivariant targets) before the graph is built: :math:`r_i \\mapsto R\\, r_i`.

        Returns
        -------
        torch_geometric.data.Data
            ``pos (N, 3)``, ``atom_type (N,)``, ``x (N, 5)`` one-hot elements, ``charge (N,)``,
            ``batch (N,)``, ``ptr``, ``edge_index (2, E)``, ``y (B, P)``, ``targets (B, 8)``,
            ``num_graphs``.
        """
        from torch_geometric.data import Data

        idx = torch.arange(len(self)) if index is None else torch.as_tensor(index, dtype=torch.long)
        if idx.dim() != 1:
            raise ValueError(f"index must be 1-D, got shape {tuple(idx.shape)}")
        pos = self.pos[idx].to(device=device, dtype=dtype)
        if rotation is not None:
            check_tensor(rotation, "rotation", ndim=3, shape=(len(idx), 3, 3), expected="(B, 3, 3)")
            pos = torch.einsum("bij,bnj->bni", rotation.to(device=device, dtype=dtype), pos)
        mask = self.mask[idx].to(device)
        charge = self.charge[idx].to(device=device, dtype=dtype)
        pos_flat, edge_index = radius_graph_dense(pos, mask, r_max)
        counts = mask.sum(1)
        batch = torch.repeat_interleave(torch.arange(len(idx), device=mask.device), counts)
        atom_type = self.atom_type[idx].to(device)[mask]
        return Data(
            pos=pos_flat, atom_type=atom_type,
            x=torch.nn.functional.one_hot(atom_type, len(ELEMENTS)).to(dtype),
            charge=charge[mask], batch=batch, ptr=torch.cat([counts.new_zeros(1), counts.cumsum(0)]),
            edge_index=edge_index, y=self.y[idx].to(device=device, dtype=dtype),
            targets=equivariant_targets(pos, charge, mask), num_graphs=len(idx), num_nodes=int(counts.sum()),
        )

    @needs("molecules", "torch_geometric", what="QM9Geometries.to_pyg")
    def to_pyg(self, index: Sequence[int] | torch.Tensor | None = None, *, r_max: float = 5.0) -> list:
        """One PyG ``Data`` per molecule (``pos``, ``atom_type``, ``x``, ``charge``,
        ``edge_index`` within ``r_max``, ``y (1, P)``, ``targets (1, 8)``, ``smiles``, ``idx``),
        e.g. for a ``torch_geometric.loader.DataLoader``."""
        from torch_geometric.data import Data

        idx = range(len(self)) if index is None else torch.as_tensor(index, dtype=torch.long).tolist()
        out = []
        for i in idx:  # one Data object per molecule is what the caller asked for
            b = self.batch([i], r_max=r_max)
            out.append(Data(pos=b.pos, atom_type=b.atom_type, x=b.x, charge=b.charge, edge_index=b.edge_index,
                            y=b.y, targets=b.targets, smiles=self.smiles[i], idx=i))
        return out


def _parse(df) -> dict[str, np.ndarray]:
    index = {s: k for k, s in enumerate(ELEMENTS)}
    M = len(df)
    pos = np.zeros((M, MAX_ATOMS, 3), np.float32)
    atom = np.zeros((M, MAX_ATOMS), np.int8)
    charge = np.zeros((M, MAX_ATOMS), np.float32)
    mask = np.zeros((M, MAX_ATOMS), bool)
    rows = zip(df["Elements"].tolist(), df["XYZ_Ang"].tolist(), df["Mulliken_pop"].tolist())
    for i, (el, xyz, q) in enumerate(progress(rows, total=M, desc="QM9 geometries", mininterval=2.0)):
        elements = [index[s.strip("' ")] for s in el.strip("[]").split(",")]
        n = len(elements)
        atom[i, :n] = elements
        xyz_arr = np.array(xyz.replace("[", "").replace("]", "").split(","), np.float64).reshape(n, 3)
        pos[i, :n] = xyz_arr - xyz_arr.mean(0)
        charge[i, :n] = np.array(q.strip("[]").split(","), np.float64)
        mask[i, :n] = True
    y = np.zeros((M, len(PROPERTIES)), np.float32)
    heavy = (mask & (atom > 0)).sum(1)
    for k, (col, _, factor) in enumerate(PROPERTIES.values()):
        y[:, k] = heavy if col is None else df[col].to_numpy(np.float64) * factor
    return {"pos": pos, "atom_type": atom, "charge": charge, "mask": mask, "y": y,
            "qm9_index": df["Index"].to_numpy(np.int32), "smiles": np.array(df["SMILES"].tolist(), dtype="S")}


def _read(limit: int | None):
    cols = ["Index", "SMILES", "Elements", "XYZ_Ang", "Mulliken_pop"] + [c for c, _, _ in PROPERTIES.values() if c]
    return read_qm9_csv(cols, limit)


@needs("molecules", "qm9pack")
def load_qm9_3d(*, limit: int | None = None, rebuild: bool = False, root: str | os.PathLike | None = None,
                verbose: bool = False) -> QM9Geometries:
    """Load QM9 geometries as :class:`QM9Geometries`, building the cache on first use.

    Parameters
    ----------
    limit : int, optional
        Only the first ``limit`` molecules of QM9 (their own cache). The first molecules of
        QM9 are the smallest: for a representative sample load all and take a random subset
        (e.g. with :func:`~invlatent.data.qm9.qm9_split`). ``None`` = all 130,831.
    rebuild : bool
        Rebuild the cache even if a valid one exists.
    root : path, optional
        Cache folder (default ``invlatent.utils.cache_dir("qm9")``).
    verbose : bool
        Print whether the cache was built or loaded, and how long it took.

    Notes
    -----
    Building the full cache parses about 230 MB of CSV (about 10 s here); the cache is an
    ``.npz`` file (about 30 MB) with a ``.sha256`` sidecar, checked on every load.
    """
    check_optional_positive_int(limit, "limit")
    stem = f"qm9_3d_{_CACHE_VERSION}" + ("" if limit is None else f"_first{limit}")
    arr = cached_arrays(stem, lambda: _parse(_read(limit)), version=_CACHE_VERSION, rebuild=rebuild,
                        root=root, label="QM9 3D", verbose=verbose)
    return QM9Geometries(
        pos=torch.from_numpy(arr["pos"]), atom_type=torch.from_numpy(arr["atom_type"].astype(np.int64)),
        mask=torch.from_numpy(arr["mask"]), charge=torch.from_numpy(arr["charge"]), y=torch.from_numpy(arr["y"]),
        smiles=[s.decode() for s in arr["smiles"].tolist()],
        qm9_index=torch.from_numpy(arr["qm9_index"].astype(np.int64)),
    )
