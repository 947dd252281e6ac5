r"""A rotation-equivariant group-convolutional network (:math:`C_N`) in plain torch.

Group convolutions in the sense of Cohen & Welling (2016). A feature map on the group
:math:`C_N \ltimes \mathbb{Z}^2` has shape ``(B, C, N, H, W)``: one image per channel and
rotation. Rotating the input image by :math:`g = 360^\circ k / N` (counter-clockwise) turns
every feature map *and* cyclically shifts its rotation axis by :math:`k`:

.. math::

    f(R_g x)[c, r] = R_g\, f(x)[c, r - k].

* :class:`LiftingConv`: image ``(B, C_in, H, W)`` to group features, with the filter bank
  :math:`\{R_r \psi\}_{r=0}^{N-1}` of rotated copies of each filter:
  :math:`f[o, r] = \sum_i x_i \star R_r \psi_{o,i}`.
* :class:`GroupConv`: group features to group features, each output rotation :math:`r` uses
  the filters turned by :math:`R_r` and rolled by :math:`r` along the input rotation axis:
  :math:`f'[o, r] = \sum_{i,s} f[i, s] \star R_r \psi_{o,i,s-r}`.

Both are one ``conv2d`` with a filter bank built from the weights on every call. Filters are
rotated by a fixed linear map of the :math:`k \times k` pixels: a pixel permutation made with
``torch.rot90`` for multiples of :math:`90^\circ` (so :math:`C_4` is exactly equivariant), and
bilinear interpolation otherwise (:math:`C_8`, :math:`C_{16}`: approximately equivariant;
:func:`layer_equivariance_errors` measures how much).

The latent code of :class:`GCNN` is the spatially averaged last feature map
:math:`z \in \mathbb{R}^{c \times N}` (shape ``(B, c, N)``), a field of regular
representations: rotating the input by :math:`k` steps rolls :math:`z` by :math:`k` along the
last axis, which is exactly the action of ``invlatent.Cyclic(N)``. The classifier head pools
over the group (max over the last axis), so the logits are invariant.

Example
-------
>>> import torch
>>> from invlatent.images import rot90
>>> net = GCNN(n_rotations=4, channels=(4, 8), latent_channels=8).eval()
>>> x = torch.rand(2, 1, 28, 28)
>>> z, z_rot = net.encode(x), net.encode(rot90(x, 1))
>>> z.shape
torch.Size([2, 8, 4])
>>> bool(torch.allclose(z_rot, torch.roll(z, 1, dims=-1), atol=1e-5))
True
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_positive_int, check_tensor, describe
from ._training import fit
from ..rotations import disc_mask, rot90, rotate, turn  # noqa: F401 (rot90: used by the doctests)

__all__ = [
    "filter_rotation_matrices",
    "LiftingConv",
    "GroupConv",
    "GroupPool",
    "GroupMaxPool2d",
    "GCNN",
    "rotate_group_features",
    "layer_equivariance_errors",
    "train_gcnn",
    "encode_images",
]


def filter_rotation_matrices(N: int, kernel_size: int, *, dtype=torch.float64) -> torch.Tensor:
    r"""Linear maps that rotate a ``k x k`` filter by :math:`360^\circ r / N`, :math:`r = 0..N-1`.

    ``M[r] @ psi.flatten()`` is the filter ``psi`` turned counter-clockwise by
    :math:`360^\circ r/N`: column :math:`q` of ``M[r]`` is the rotated :math:`q`-th pixel
    basis image. Quarter turns are built with ``torch.rot90`` (exact permutation matrices);
    other angles with bilinear interpolation (:func:`invlatent.images.rotate`).

    Returns
    -------
    torch.Tensor
        ``(N, k*k, k*k)``.

    Example
    -------
    >>> M = filter_rotation_matrices(4, 3)
    >>> psi = torch.arange(9.).reshape(3, 3)
    >>> torch.equal((M[1].float() @ psi.flatten()).reshape(3, 3), torch.rot90(psi, 1))
    True
    """
    check_positive_int(N, "N")
    check_positive_int(kernel_size, "kernel_size")
    k = kernel_size
    basis = torch.eye(k * k, dtype=torch.float64).reshape(k * k, 1, k, k)
    mats = []
    for r in range(N):  # N small fixed matrices, built once per layer
        rb = turn(basis, r, N)
        mats.append(rb.reshape(k * k, k * k).T)  # column q = rotated basis image q
    return torch.stack(mats).to(dtype)


class _RotatedFilters(nn.Module):
    """Shared buffer and options of the lifting and group convolutions."""

    def __init__(self, N: int, kernel_size: int):
        super().__init__()
        check_positive_int(N, "n_rotations")
        check_positive_int(kernel_size, "kernel_size")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (a centre pixel to rotate about), got {kernel_size}")
        self.N = N
        self.kernel_size = kernel_size
        self.register_buffer("rotations", filter_rotation_matrices(N, kernel_size, dtype=torch.float32), persistent=False)
        # Filters are masked to the inscribed disc when interpolated rotations are used:
        # corners would otherwise rotate out of the k x k support.
        mask = torch.ones(kernel_size, kernel_size) if 4 % N == 0 else disc_mask(kernel_size)
        self.register_buffer("support", mask.flatten(), persistent=False)


class LiftingConv(_RotatedFilters):
    r"""Lifting convolution: images ``(B, C_in, H, W)`` to group features ``(B, C_out, N, H, W)``.

    :math:`f[o, r] = b_o + \sum_i x_i \star R_r \psi_{o,i}` with ``same`` zero padding.

    Parameters
    ----------
    in_channels, out_channels : int
    n_rotations : int
        :math:`N` of :math:`C_N`.
    kernel_size : int
        Odd filter size.
    bias : bool
        One bias per output channel, shared by all rotations (keeps equivariance).

    Example
    -------
    >>> lift = LiftingConv(1, 3, n_rotations=4, kernel_size=5)
    >>> x = torch.rand(2, 1, 12, 12)
    >>> y = lift(x); y.shape
    torch.Size([2, 3, 4, 12, 12])
    >>> bool(torch.allclose(lift(rot90(x, 1)), rotate_group_features(y, 1), atol=1e-5))
    True
    """

    def __init__(self, in_channels: int, out_channels: int, n_rotations: int = 4, kernel_size: int = 5, bias: bool = True):
        super().__init__(n_rotations, kernel_size)
        check_positive_int(in_channels, "in_channels")
        check_positive_int(out_channels, "out_channels")
        self.in_channels, self.out_channels = in_channels, out_channels
        k = kernel_size
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, k * k) * math.sqrt(2.0 / (in_channels * k * k)))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def filter_bank(self) -> torch.Tensor:
        """The ``conv2d`` weight ``(C_out * N, C_in, k, k)``, ordered (channel, rotation)."""
        M = self.rotations.to(self.weight.dtype)
        bank = torch.einsum("rpq,oiq->orip", M, self.weight * self.support.to(self.weight.dtype))
        k = self.kernel_size
        return bank.reshape(self.out_channels * self.N, self.in_channels, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", ndim=4, expected="(B, C_in, H, W)", finite=False)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x must have {self.in_channels} channels (B, C_in, H, W), got shape {tuple(x.shape)}")
        y = F.conv2d(x, self.filter_bank(), padding=self.kernel_size // 2)
        y = y.reshape(x.shape[0], self.out_channels, self.N, *y.shape[-2:])
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1, 1)
        return y

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, n_rotations={self.N}, kernel_size={self.kernel_size}"


class GroupConv(_RotatedFilters):
    r"""Group convolution on :math:`C_N`: ``(B, C_in, N, H, W)`` to ``(B, C_out, N, H, W)``.

    :math:`f'[o, r] = b_o + \sum_{i, s} f[i, s] \star R_r \psi_{o, i, s - r}` (indices mod
    :math:`N`). Cost: one ``conv2d`` with :math:`C_{in} N` input and :math:`C_{out} N` output
    channels, like a plain convolution of the same width, plus building the filter bank.

    Example
    -------
    >>> conv = GroupConv(2, 3, n_rotations=4, kernel_size=3)
    >>> f = torch.rand(2, 2, 4, 10, 10)
    >>> g = conv(f); g.shape
    torch.Size([2, 3, 4, 10, 10])
    >>> bool(torch.allclose(conv(rotate_group_features(f, 3)), rotate_group_features(g, 3), atol=1e-5))
    True
    """

    def __init__(self, in_channels: int, out_channels: int, n_rotations: int = 4, kernel_size: int = 3, bias: bool = True):
        super().__init__(n_rotations, kernel_size)
        check_positive_int(in_channels, "in_channels")
        check_positive_int(out_channels, "out_channels")
        self.in_channels, self.out_channels = in_channels, out_channels
        k, N = kernel_size, n_rotations
        fan_in = in_channels * N * k * k
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, N, k * k) * math.sqrt(2.0 / fan_in))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        r = torch.arange(N)
        # idx[r, s] = (s - r) mod N: the input-rotation axis rolled by the output rotation r
        self.register_buffer("roll_index", (r[None, :] - r[:, None]) % N, persistent=False)

    def filter_bank(self) -> torch.Tensor:
        """The ``conv2d`` weight ``(C_out * N, C_in * N, k, k)``, ordered (channel,
        rotation)."""
        M = self.rotations.to(self.weight.dtype)
        support = self.support.to(self.weight.dtype)
        w = (self.weight * support)[:, :, self.roll_index]  # (o, i, r, s, q)
        bank = torch.einsum("rpq,oirsq->orisp", M, w)
        k, N = self.kernel_size, self.N
        return bank.reshape(self.out_channels * N, self.in_channels * N, k, k)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        check_tensor(f, "f", ndim=5, expected="(B, C_in, N, H, W)", finite=False)
        if f.shape[1:3] != (self.in_channels, self.N):
            raise ValueError(
                f"f must have shape (B, {self.in_channels}, {self.N}, H, W) = (B, C_in, N, H, W), got {tuple(f.shape)}"
            )
        B, _, N, H, W = f.shape
        y = F.conv2d(f.reshape(B, -1, H, W), self.filter_bank(), padding=self.kernel_size // 2)
        y = y.reshape(B, self.out_channels, N, H, W)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1, 1)
        return y

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, n_rotations={self.N}, kernel_size={self.kernel_size}"


class GroupMaxPool2d(nn.Module):
    """2x2 spatial max pooling of group features ``(B, C, N, H, W)``; ``H`` and ``W`` must be even.

    On an even grid the 2x2 blocks are permuted by quarter turns, so the pooling commutes
    with ``rot90`` exactly (odd sizes would break the symmetry of the block grid).
    """

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        check_tensor(f, "f", ndim=5, expected="(B, C, N, H, W)", finite=False)
        B, C, N, H, W = f.shape
        if H % 2 or W % 2:
            raise ValueError(f"f must have even H and W for rotation-symmetric pooling, got {tuple(f.shape)}")
        return F.max_pool2d(f.reshape(B, C * N, H, W), 2).reshape(B, C, N, H // 2, W // 2)


class GroupPool(nn.Module):
    r"""Pool a regular-representation latent ``(B, c, N)`` over the group axis: ``(B, c)``.

    ``mode="max"`` (default) or ``"mean"``; both are invariant to cyclic shifts of the last
    axis.

    Example
    -------
    >>> z = torch.tensor([[[1., 3., 2., 0.]]])
    >>> GroupPool("max")(z).tolist(), GroupPool("mean")(z).tolist()
    ([[3.0]], [[1.5]])
    """

    def __init__(self, mode: str = "max"):
        super().__init__()
        if mode not in ("max", "mean"):
            raise ValueError(f"mode must be 'max' or 'mean', got {describe(mode)}")
        self.mode = mode

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_tensor(z, "z", ndim=3, expected="(B, c, N)", finite=False)
        return z.amax(-1) if self.mode == "max" else z.mean(-1)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class _Block(nn.Sequential):
    pass


class GCNN(nn.Module):
    r"""A :math:`C_N`-equivariant CNN for ``28 x 28`` images with a group-pooled classifier.

    Architecture: one stage per entry of ``channels``, each a lifting conv (5x5, first stage)
    or group conv (3x3), a 2x2 max pool, batch norm (statistics shared over rotations) and
    ReLU, then ``depth - 1`` more group convs with batch norm and ReLU; a last group conv
    to ``latent_channels`` channels with batch norm and ReLU; spatial mean
    gives :math:`z \in \mathbb{R}^{c \times N}`; the head is :class:`GroupPool` (max over
    rotations) and a linear layer.

    Parameters
    ----------
    n_rotations : int
        :math:`N` (4: exact; 8, 16: interpolated filters).
    channels : sequence of int
        Channels (per rotation) of the stages; the spatial size halves after each stage.
        Two stages map 28 -> 14 -> 7.
    latent_channels : int
        :math:`c`, channels of the latent field.
    n_classes : int
    in_channels : int
    depth : int
        Group convs per stage.

    Attributes
    ----------
    stages : nn.ModuleList
        Feature stages in order; :func:`layer_equivariance_errors` checks each of them.
    """

    def __init__(
        self,
        n_rotations: int = 4,
        channels: Sequence[int] = (8, 16),
        latent_channels: int = 16,
        n_classes: int = 10,
        in_channels: int = 1,
        depth: int = 1,
    ):
        super().__init__()
        N = check_positive_int(n_rotations, "n_rotations")
        if len(channels) == 0:
            raise ValueError("channels must name at least one stage")
        for c in channels:
            check_positive_int(c, "channels[i]")
        check_positive_int(latent_channels, "latent_channels")
        check_positive_int(depth, "depth")
        self.n_rotations = N
        self.latent_channels = latent_channels
        stages: list[nn.Module] = []
        c_in = in_channels
        for j, c in enumerate(channels):
            first = LiftingConv(c_in, c, N, 5) if j == 0 else GroupConv(c_in, c, N, 3)
            # pool right after the first conv: batch norm and ReLU then run on 4x fewer pixels
            layers = [first, GroupMaxPool2d(), nn.BatchNorm3d(c), nn.ReLU()]
            for _ in range(depth - 1):
                layers += [GroupConv(c, c, N, 3), nn.BatchNorm3d(c), nn.ReLU()]
            stages.append(_Block(*layers))
            c_in = c
        stages.append(_Block(GroupConv(c_in, latent_channels, N, 3), nn.BatchNorm3d(latent_channels), nn.ReLU()))
        self.stages = nn.ModuleList(stages)
        self.pool = GroupPool("max")
        self.classifier = nn.Linear(latent_channels, n_classes)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output ``(B, C, N, H, W)`` of every stage."""
        check_tensor(x, "x", ndim=4, expected="(B, C_in, H, W)")
        out = []
        f = x
        for stage in self.stages:
            f = stage(f)
            out.append(f)
        return out

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent codes ``z`` of shape ``(B, c, N)`` (equivariant: rotations roll the last axis)."""
        f = x
        check_tensor(x, "x", ndim=4, expected="(B, C_in, H, W)")
        for stage in self.stages:
            f = stage(f)
        return f.mean(dim=(-2, -1))

    def head(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)`` from latents ``(B, c, N)``: group max pool then linear (invariant)."""
        return self.classifier(self.pool(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(x))


def rotate_group_features(f: torch.Tensor, k: int) -> torch.Tensor:
    r"""Act with rotation :math:`k` of :math:`C_N` on group features ``(B, C, N, H, W)``.

    Turns every map by :math:`360^\circ k/N` (``rot90`` for quarter turns, interpolation
    otherwise) and rolls the rotation axis by :math:`k`. On latents ``(B, c, N)`` (no spatial
    axes) use ``torch.roll(z, k, -1)``, i.e. ``invlatent.Cyclic(N)``.
    """
    check_tensor(f, "f", ndim=5, expected="(B, C, N, H, W)", finite=False)
    if not isinstance(k, int) or isinstance(k, bool):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    B, C, N, H, W = f.shape
    flat = f.reshape(B, C * N, H, W)
    flat = turn(flat, k, N)
    return torch.roll(flat.reshape(B, C, N, H, W), k, dims=2)


@torch.no_grad()
def layer_equivariance_errors(model: GCNN, x: torch.Tensor, k: int = 1) -> dict[str, float]:
    r"""Relative equivariance error of every stage, the latent and the logits, for rotation ``k``.

    For each stage output :math:`f`,

    .. math::

        e = \frac{\| m \odot (f(R_k x) - \rho(k) f(x)) \|}{\| m \odot \rho(k) f(x) \|},

    with :math:`\rho(k)` from :func:`rotate_group_features` and :math:`m` the inscribed disc
    (one pixel inside it for interpolated rotations, whose borders are not comparable). The
    input is turned by :math:`360^\circ k/N` (exactly for quarter turns). For the latent
    :math:`\rho(k)` is a roll of the last axis; for the logits it is the identity
    (invariance). ``model`` should be in eval mode.

    Returns
    -------
    dict
        ``{"stage 1": e_1, ..., "latent z": e_z, "logits": e_y}``.
    """
    if not isinstance(model, GCNN):
        raise TypeError(f"model must be a GCNN, got {type(model).__name__}")
    check_tensor(x, "x", ndim=4, expected="(B, C_in, H, W)")
    N = model.n_rotations
    exact = (4 * k) % N == 0
    xr = turn(x, k, N)
    fa, fb = model.features(x), model.features(xr)
    errs: dict[str, float] = {}

    def rel(a, b, mask=None):
        d = a - b
        if mask is not None:
            d, b = d * mask, b * mask
        return float(d.norm() / b.norm().clamp_min(1e-12))

    for j, (a, b) in enumerate(zip(fa, fb)):
        size = a.shape[-1]
        m = disc_mask(size, radius=size / 2 if exact else size / 2 - 1, device=a.device, dtype=a.dtype)
        errs[f"stage {j + 1}"] = rel(b, rotate_group_features(a, k), m)
    za, zb = fa[-1].mean((-2, -1)), fb[-1].mean((-2, -1))
    errs["latent z"] = rel(zb, torch.roll(za, k, dims=-1))
    errs["logits"] = rel(model.head(zb), model.head(za))
    return errs


def train_gcnn(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 3e-3,
    augment: bool = True,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> dict[str, object]:
    r"""Train a classifier with Adam, a one-cycle schedule and cross-entropy; seeded (:func:`~invlatent.models._training.fit`).

    With ``augment=True`` every training image is turned by a fresh random angle in
    :math:`[0^\circ, 360^\circ)` (:func:`invlatent.images.rotate`) each epoch, which teaches
    the angles between the :math:`N` exact rotations. Returns the result dict of
    :func:`~invlatent.models._training.fit` (``epochs``, ``final_loss``, ``final_accuracy``,
    ``seconds``, ``history``, ...) plus ``train_accuracy`` (= ``final_accuracy``) and ``augment``,
    the metadata saved by :func:`invlatent.io.train_or_load`.
    """
    from ..rotations import random_angles

    check_tensor(x, "x", ndim=4, expected="(n, C, H, W)")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != x.shape[:1]:
        raise TypeError(f"y must be an int64 tensor of shape (n,) = ({x.shape[0]},)")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    device = torch.device(device) if device is not None else x.device
    model.to(device)

    def batches(epoch, gen):
        perm = torch.randperm(x.shape[0], generator=gen)
        angles = random_angles(x.shape[0], generator=gen)
        return [((perm[s:s + batch_size], angles), len(perm[s:s + batch_size])) for s in range(0, x.shape[0], batch_size)]

    def step(batch, k):
        idx, angles = batch
        xb, yb = x[idx].to(device), y[idx].to(device)
        if augment:
            xb = rotate(xb, angles[idx].to(device=device, dtype=xb.dtype))
        logits = model(xb)
        return {"loss": F.cross_entropy(logits, yb), "accuracy": (logits.argmax(-1) == yb).to(logits.dtype).mean()}

    out = fit(model, batches, step, epochs=epochs, lr=lr, schedule="onecycle", seed=seed, desc="train GCNN")
    # ``train_accuracy`` (the last epoch's accuracy, as before) is kept next to ``final_accuracy``
    return {**out, "train_accuracy": out["final_accuracy"], "augment": augment}


@torch.no_grad()
def encode_images(model: GCNN, x: torch.Tensor, *, batch_size: int = 500, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents ``(n, c, N)`` and logits ``(n, n_classes)`` of many images, in batches, in eval mode."""
    check_tensor(x, "x", ndim=4, expected="(n, C, H, W)")
    check_positive_int(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    zs, ys = [], []
    for start in range(0, x.shape[0], batch_size):
        z = model.encode(x[start:start + batch_size].to(device))
        zs.append(z)
        ys.append(model.head(z))
    model.train(was_training)
    return torch.cat(zs), torch.cat(ys)
