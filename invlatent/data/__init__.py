"""Datasets of the book, offline by default.

* :mod:`invlatent.data.qm9` -- QM9 as heavy-atom graphs (molecules chapters).
"""

from .qm9 import ATOM_TYPES, BOND_TYPES, MAX_NODES, PROPERTIES, QM9Graphs, load_qm9, qm9_split

__all__ = ["ATOM_TYPES", "BOND_TYPES", "MAX_NODES", "PROPERTIES", "QM9Graphs", "load_qm9", "qm9_split"]
