r"""Rotations of image batches: exact quarter turns and interpolated arbitrary angles.

Images are tensors of shape ``(B, C, H, W)`` (row 0 at the top, as ``imshow`` draws them).
A positive angle turns the picture **counter-clockwise** as displayed, the convention of
``torch.rot90(x, 1, dims=(-2, -1))`` and of :func:`scipy.ndimage.rotate`. Rotation is about
the image centre:

.. math::

    (R_\theta x)(p) = x(R_\theta^{-1} p), \qquad
    R_\theta = \begin{pmatrix} \cos\theta & -\sin\theta \\ \sin\theta & \cos\theta \end{pmatrix},

with :math:`p` measured from the centre in (column, -row) coordinates.

* :func:`rot90` turns by multiples of :math:`90^\circ`, exactly (a permutation of pixels),
  with one ``k`` per image;
* :func:`rotate` turns by any angle (one per image), sampling with bilinear interpolation
  (``affine_grid``/``grid_sample``); by a multiple of :math:`90^\circ` on a square image it agrees
  with :func:`rot90` up to rounding, because pixel centres land on pixel centres;
* :func:`turn` turns by :math:`360^\circ k/N`, exactly when that is a quarter turn;
* the group :class:`~invlatent.groups.ImageRotation` (:math:`C_N` acting on images) is built on them.

Everything is batched (no per-image loops) and runs on the device and dtype of the input.

Example
-------
>>> import torch
>>> x = torch.arange(16.).reshape(1, 1, 4, 4)
>>> bool(torch.allclose(rotate(x, 90.0), rot90(x, 1), atol=1e-5))
True
>>> rot90(x, 1)[0, 0, 0].tolist()   # the right-hand column comes to the top row
[3.0, 7.0, 11.0, 15.0]
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import _deprecated
from .._validation import check_tensor, describe

__all__ = ["rot90", "rotate", "turn", "disc_mask", "random_angles"]


def _check_images(x, name: str = "x") -> torch.Tensor:
    return check_tensor(x, name, ndim=4, expected="(B, C, H, W)")


def _per_image(value, B: int, name: str, *, integer: bool, device, dtype) -> torch.Tensor:
    """Turn a scalar or a (B,) tensor into a (B,) tensor; nothing else is broadcast."""
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            value = value.reshape(1).expand(B)
        if value.shape != (B,):
            raise ValueError(f"{name} must be a scalar or a tensor of shape (B,) = ({B},), got {tuple(value.shape)}")
        if integer and (value.is_floating_point() or value.is_complex()):
            raise TypeError(f"{name} must hold integers, got dtype {value.dtype}")
        if not integer and not bool(torch.isfinite(value.to(torch.float64)).all()):
            raise ValueError(f"{name} contains NaN or inf")
        return value.to(device=device, dtype=torch.long if integer else dtype)
    if integer:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int or a (B,) integer tensor, got {type(value).__name__}")
        return torch.full((B,), value, device=device, dtype=torch.long)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number or a (B,) tensor, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return torch.full((B,), float(value), device=device, dtype=dtype)


def rot90(x: torch.Tensor, k: int | torch.Tensor = 1) -> torch.Tensor:
    r"""Rotate images counter-clockwise by :math:`k \cdot 90^\circ`, exactly.

    Parameters
    ----------
    x : torch.Tensor
        Images ``(B, C, H, W)``; ``H == W`` unless every ``k`` is even.
    k : int or torch.Tensor
        Number of quarter turns: one int for the batch, or an integer tensor ``(B,)``
        (one per image; any integers, taken modulo 4).

    Returns
    -------
    torch.Tensor
        ``(B, C, W, H)`` for odd ``k`` (same as input when square).

    Example
    -------
    >>> x = torch.arange(8.).reshape(2, 1, 2, 2)
    >>> rot90(x, torch.tensor([0, 2]))[:, 0].tolist()
    [[[0.0, 1.0], [2.0, 3.0]], [[7.0, 6.0], [5.0, 4.0]]]
    """
    _check_images(x)
    if isinstance(k, int) and not isinstance(k, bool):
        return torch.rot90(x, k % 4, dims=(-2, -1))
    k = _per_image(k, x.shape[0], "k", integer=True, device=x.device, dtype=x.dtype) % 4
    if x.shape[-1] != x.shape[-2] and bool((k % 2 == 1).any()):
        raise ValueError(f"x must be square (H == W) for odd quarter turns, got shape {tuple(x.shape)}")
    # The four rotations of the batch, then pick one per image (no per-image loop).
    stack = torch.stack([torch.rot90(x, j, dims=(-2, -1)) for j in range(4)], dim=1)
    return stack[torch.arange(x.shape[0], device=x.device), k]


def rotate(
    x: torch.Tensor,
    degrees: float | torch.Tensor,
    *,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
) -> torch.Tensor:
    r"""Rotate images counter-clockwise by arbitrary angles, with interpolation.

    Pixels that come from outside the image are filled according to ``padding_mode``
    (zeros by default: MNIST's background). Rotation loses a little information (the
    interpolation smooths, the corners leave the frame), so ``rotate`` is only
    approximately invertible; it is exact (a pixel permutation) for quarter turns of square
    images, where it matches :func:`rot90` up to floating-point rounding.

    Parameters
    ----------
    x : torch.Tensor
        Images ``(B, C, H, W)``, float32 or float64, any device.
    degrees : float or torch.Tensor
        One angle for the batch, or a tensor ``(B,)`` (one angle per image), in degrees.
    mode, padding_mode : str
        Passed to :func:`torch.nn.functional.grid_sample`.

    Returns
    -------
    torch.Tensor
        Rotated images, same shape, dtype and device as ``x``.

    Example
    -------
    >>> x = torch.zeros(1, 1, 5, 5); x[0, 0, 2, 4] = 1.0      # a dot right of the centre
    >>> y = rotate(x, 90.0)
    >>> int(y[0, 0].argmax())  # ... moves to the top (row 0, column 2): flat index 2
    2
    """
    _check_images(x)
    B, _, H, W = x.shape
    theta = _per_image(degrees, B, "degrees", integer=False, device=x.device, dtype=x.dtype)
    rad = theta * (math.pi / 180.0)
    c, s = torch.cos(rad), torch.sin(rad)
    # affine_grid maps output coordinates (x right, y down, normalised per axis) to input
    # coordinates; sampling at R^{-1} p turns the picture counter-clockwise as displayed.
    # In (x, y-down) coordinates R^{-1} for a counter-clockwise turn is [[c, -s], [s, c]];
    # the aspect factors undo the per-axis normalisation of non-square images.
    zero = torch.zeros_like(c)
    A = torch.stack(
        [
            torch.stack([c, -s * H / W, zero], dim=-1),
            torch.stack([s * W / H, c, zero], dim=-1),
        ],
        dim=-2,
    )
    grid = F.affine_grid(A, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=False)


def disc_mask(
    size: int,
    *,
    radius: float | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    r"""The pixels of a ``size x size`` grid whose centres lie in the inscribed disc.

    Inside this disc every rotation maps the image onto itself (nothing enters from the
    corners), so comparisons between rotated images are made there.

    Parameters
    ----------
    size : int
        Side length of the (square) grid.
    radius : float, optional
        Disc radius in pixels, default ``size / 2``.

    Returns
    -------
    torch.Tensor
        ``(size, size)`` of 0/1 values in ``dtype``.

    Example
    -------
    >>> disc_mask(4).int().tolist()
    [[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 0]]
    """
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValueError(f"size must be a positive int, got {describe(size)}")
    r = size / 2 if radius is None else float(radius)
    c = torch.arange(size, device=device, dtype=torch.float64) - (size - 1) / 2
    d2 = c[:, None] ** 2 + c[None, :] ** 2
    return (d2 <= r * r).to(dtype)


def random_angles(B: int, *, generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    """``B`` angles in degrees, uniform on :math:`[0, 360)`, from ``generator`` (CPU generator).

    Example
    -------
    >>> from invlatent.utils import seeded_generator
    >>> a = random_angles(3, generator=seeded_generator(0))
    >>> a.shape, bool(((a >= 0) & (a < 360)).all())
    (torch.Size([3]), True)
    """
    if not isinstance(B, int) or isinstance(B, bool) or B < 0:
        raise ValueError(f"B must be a non-negative int, got {describe(B)}")
    return (torch.rand(B, generator=generator, dtype=torch.float64) * 360.0).to(device=device, dtype=dtype)


def turn(x: torch.Tensor, k: int | torch.Tensor, N: int) -> torch.Tensor:
    r"""Turn images by :math:`360^\circ k/N`: exactly (:func:`rot90`) when every turn is a quarter turn, else interpolated (:func:`rotate`).

    The one place that decides "quarter turn exact, else interpolate" for the package (the
    image group :class:`~invlatent.groups.ImageRotation` and the group CNN use it).
    ``k`` is one int for the batch or an integer tensor ``(B,)``.

    Example
    -------
    >>> x = torch.arange(16.).reshape(1, 1, 4, 4)
    >>> bool(torch.equal(turn(x, 2, 8), rot90(x, 1)))
    True
    """
    if isinstance(k, int) and not isinstance(k, bool):
        if (4 * k) % N == 0:
            return rot90(x, (4 * k) // N)
        return rotate(x, 360.0 * k / N)
    kt = torch.as_tensor(k) % N
    if bool(((kt * 4) % N == 0).all()):
        return rot90(x, (kt * 4) // N)
    return rotate(x, (kt.to(torch.float64) * (360.0 / N)).to(x.dtype))


def __getattr__(name: str):
    """``ImageRotation`` under the old module path ``invlatent.rotations`` (one release, with a warning)."""
    return _deprecated.moved_attribute("invlatent.rotations", name)
