r"""The cyclic group :math:`C_N` acting on image batches ``(B, C, H, W)`` by rotation."""

from __future__ import annotations

import torch

from .._validation import check_positive_int
from ..images._rotate import _check_images, _per_image, turn
from .base import Group, check_batch_size, check_generator

__all__ = ["ImageRotation"]


class ImageRotation(Group):
    r"""The cyclic group :math:`C_N` of rotations by multiples of :math:`360^\circ / N`, acting on images.

    Element ``g`` (an integer) turns an image counter-clockwise by :math:`g \cdot 360^\circ/N`,
    exactly with :func:`rot90` when that is a multiple of :math:`90^\circ`, otherwise by
    interpolation with :func:`rotate` (so the action is only approximately a group action
    for :math:`N \notin \{1, 2, 4\}`). The interface mirrors the latent groups of
    :mod:`invlatent.groups` so that equivariance tests can pair the image action with the
    latent action ``invlatent.Cyclic(N)``.

    Parameters
    ----------
    N : int
        Order of the group.

    Example
    -------
    >>> G = ImageRotation(4)
    >>> x = torch.rand(2, 1, 6, 6)
    >>> G.orbit(x).shape
    torch.Size([2, 4, 1, 6, 6])
    >>> bool(torch.equal(G.act(torch.tensor([1, 3]), x)[1], torch.rot90(x[1], 3, dims=(-2, -1))))
    True
    """

    is_finite = True

    def __init__(self, N: int):
        self.N = check_positive_int(N, "N")

    def check_latent(self, x, name: str = "x") -> torch.Tensor:
        """Validate an image batch ``(B, C, H, W)`` (the objects this group acts on)."""
        return _check_images(x, name)

    @property
    def order(self) -> int:
        return self.N

    @property
    def exact(self) -> bool:
        """True when every element is a quarter turn (``N`` divides 4)."""
        return 4 % self.N == 0

    def __repr__(self) -> str:
        return f"ImageRotation(N={self.N})"

    def elements(self, device=None) -> torch.Tensor:
        """All elements ``0, ..., N-1``."""
        return torch.arange(self.N, device=device)

    def sample(self, B: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``B`` uniformly random elements ``(B,)``."""
        check_batch_size(B)
        check_generator(generator)
        gdev = generator.device if generator is not None else "cpu"
        g = torch.randint(self.N, (B,), generator=generator, device=gdev)
        return g.to(device if device is not None else gdev)

    def degrees(self, g: torch.Tensor) -> torch.Tensor:
        """The rotation angle of each element, in degrees."""
        return (g % self.N).to(torch.float64) * (360.0 / self.N)

    def act(self, g: int | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Rotate the ``i``-th image by the ``i``-th element (or all by one int)."""
        _check_images(x)
        g = _per_image(g, x.shape[0], "g", integer=True, device=x.device, dtype=x.dtype) % self.N
        return turn(x, g, self.N)

    def orbit(self, x: torch.Tensor) -> torch.Tensor:
        """All ``N`` rotations of every image: ``(B, N, C, H, W)``."""
        _check_images(x)
        B = x.shape[0]
        g = torch.arange(self.N, device=x.device).repeat(B)
        return self.act(g, x.repeat_interleave(self.N, dim=0)).reshape(B, self.N, *x.shape[1:])
