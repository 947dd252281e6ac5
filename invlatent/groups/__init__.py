r"""Groups acting on batches of latent codes, all through one protocol (:mod:`.base`).

==========================  ==========================  ==============================================
group                       latent layout               element batch
==========================  ==========================  ==============================================
:class:`Permutation`        ``(B, n, c)``               index tensor ``(B, n)`` (``out[i] = z[g[i]]``)
:class:`Cyclic`             ``(B, ..., N)``             integer shifts ``(B,)``
:class:`CyclicFourier`      ``(B, ..., N)``, complex    integer shifts ``(B,)``
:class:`SO3`, :class:`O3`   ``(B, irreps.dim)``         rotation matrices ``(B, 3, 3)``
:class:`ImageRotation`      ``(B, C, H, W)``            integer turns ``(B,)``
==========================  ==========================  ==============================================

Every group implements :class:`~invlatent.groups.base.Group`'s protocol (``sample``, ``act``,
``check_latent``, ``is_finite``, ``elements``, ``orbit``, ``average``, ``align``,
``quotient_distance``, ``pairwise_quotient_distance``, ``max_inner``); a user-defined group
that does works with every projection, metric and diagnostic of the package.

Example
-------
>>> import torch
>>> from invlatent import Permutation, Cyclic
>>> z = torch.arange(6.0).reshape(1, 3, 2)
>>> g = torch.tensor([[2, 0, 1]])
>>> Permutation().act(g, z)[0].tolist()
[[4.0, 5.0], [0.0, 1.0], [2.0, 3.0]]
>>> Cyclic(4).act(torch.tensor([1]), torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])).tolist()
[[[4.0, 1.0, 2.0, 3.0]]]
"""

from .base import Group, check_group
from .._fft_correlation import cyclic_max_inner
from ._cyclic import Cyclic, CyclicFourier
from ._image import ImageRotation
from ._input_actions import PermuteNodes, RotatePositions
from ._permutation import LazyPermutations, Permutation
from ._product import Product
from ._rotation import O3, SO3, rotation_group
from ._sparse import permute_sparse, to_dense_nodes

__all__ = [
    # the protocol
    "Group",
    "check_group",
    # actions on latents
    "Permutation",
    "LazyPermutations",
    "Cyclic",
    "CyclicFourier",
    "SO3",
    "O3",
    "ImageRotation",
    "Product",
    "cyclic_max_inner",
    "permute_sparse",
    "to_dense_nodes",
    # actions on a model's inputs (graphs and point clouds)
    "PermuteNodes",
    "RotatePositions",
]
