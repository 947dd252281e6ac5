"""Models: the book's equivariant encoders, and adapters to pretrained models of other libraries.

The book's models (trained here, weights shipped):

* :mod:`invlatent.models.maron` -- Maron et al. (2019) linear permutation-equivariant layers;
* :mod:`invlatent.models.graph_vae` -- the permutation-equivariant graph VAE (molecules);
* :mod:`invlatent.models.gcnn`, :mod:`invlatent.models.cnn` -- the rotated-digits encoders
  (a :math:`C_N` group CNN and its plain baseline);
* :mod:`invlatent.models.e3nn_encoder` -- an :math:`O(3)`-equivariant e3nn encoder of QM9 in 3D.

Adapters, each behind its optional extra, each loading offline:

* :mod:`invlatent.models.sevenn` -- SevenNet's pretrained potentials (e3nn; extra ``models``);
* :mod:`invlatent.models.so3lr` -- the pretrained SO3LR transformer of so3krates-torch (its own
  spherical-harmonics basis; extra ``so3lr``);
* :mod:`invlatent.models.escnn` -- the field types of e2cnn/escnn steerable CNNs read as
  ``invlatent`` groups (extra ``e2cnn``).
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
