r"""Images: exact quarter turns and interpolated rotations of image batches ``(B, C, H, W)``.

The input action of the rotated-digits chapters; the group on their latents is
:class:`~invlatent.groups.ImageRotation` (:math:`C_N`), built on these functions.

* :func:`rot90` -- multiples of :math:`90^\circ`, exact (a permutation of pixels);
* :func:`rotate` -- any angle, bilinear (``affine_grid``/``grid_sample``);
* :func:`turn` -- :math:`360^\circ k/N`, exact when that is a quarter turn;
* :func:`random_angles`, :func:`disc_mask` -- uniform angles; the inscribed disc, where rotation
  loses no pixels.

Example
-------
>>> import torch
>>> from invlatent.images import rot90
>>> rot90(torch.arange(4.0).reshape(1, 1, 2, 2), 1)[0, 0].tolist()
[[1.0, 3.0], [0.0, 2.0]]
"""

from ._rotate import disc_mask, random_angles, rot90, rotate, turn

__all__ = ["rot90", "rotate", "turn", "random_angles", "disc_mask"]
