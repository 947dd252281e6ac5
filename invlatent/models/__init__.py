"""Equivariant models of the book.

* :mod:`invlatent.models.maron` -- Maron et al. (2019) linear permutation-equivariant layers.
* :mod:`invlatent.models.graph_vae` -- the permutation-equivariant graph VAE (molecules).
"""

from .graph_vae import GraphVAE, decode_graphs, graph_accuracy, permute_graphs, train_graph_vae
from .maron import EdgeToEdge, EdgeToNode, MaskedInstanceNorm, NodeToEdge, NodeToNode

__all__ = [
    "GraphVAE",
    "train_graph_vae",
    "decode_graphs",
    "graph_accuracy",
    "permute_graphs",
    "NodeToNode",
    "NodeToEdge",
    "EdgeToEdge",
    "EdgeToNode",
    "MaskedInstanceNorm",
]
