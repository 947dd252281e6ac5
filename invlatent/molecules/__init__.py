r"""Molecules: padded heavy-atom graphs back to RDKit molecules, and the metrics of generated ones.

Domain code for the molecule chapters and for anyone decoding a graph model's latents into
molecules (needs the ``molecules`` extra: RDKit). Graphs are in the layout of
:mod:`invlatent.data.qm9`: atom types ``C, N, O, F``, kekulized bond types ``1, 2, 3``, a node
mask.

* :func:`graph_to_mol`, :func:`graphs_to_smiles`, :func:`canonical_smiles` -- graphs to molecules;
* :func:`valence_decode` -- decoder logits to graphs that respect :data:`VALENCE`;
* :func:`generation_metrics` -- validity, uniqueness, novelty; :func:`tanimoto` -- fingerprint
  similarity; :func:`draw_molecules` -- a grid image.
"""

from ._chem import (VALENCE, canonical_smiles, draw_molecules, generation_metrics, graph_to_mol, graphs_to_smiles,
                    tanimoto, valence_decode)

__all__ = [
    "VALENCE",
    "graph_to_mol",
    "graphs_to_smiles",
    "canonical_smiles",
    "valence_decode",
    "generation_metrics",
    "tanimoto",
    "draw_molecules",
]
