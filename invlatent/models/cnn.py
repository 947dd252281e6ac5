r"""A standard (non-equivariant) CNN for ``28 x 28`` images, the baseline of the augmentation chapter.

Same layout as :class:`invlatent.models.gcnn.GCNN` — conv stages with batch norm, ReLU and
2x2 max pooling, a final conv to the latent width, a spatial mean, a linear head — but with
ordinary convolutions, so nothing ties its latent to rotations of the input. Trained with
rotation augmentation it becomes *approximately* invariant in its predictions; its latent
:math:`f(R_\theta x)` still moves along a curve as :math:`\theta` turns, and that curve is not
the orbit of any group action we know in closed form.

Example
-------
>>> import torch
>>> cnn = CNN(channels=(8, 16), latent_dim=32)
>>> x = torch.rand(2, 1, 28, 28)
>>> cnn.encode(x).shape, cnn(x).shape
(torch.Size([2, 32]), torch.Size([2, 10]))
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .._validation import check_positive_int, check_tensor

__all__ = ["CNN"]


class CNN(nn.Module):
    r"""Plain CNN classifier with a ``(B, latent_dim)`` latent.

    Parameters
    ----------
    channels : sequence of int
        Channels of the stages; the spatial size halves after each (28 -> 14 -> 7 for two).
    latent_dim : int
        :math:`d`, width of the latent :math:`z = \operatorname{mean}_{\text{space}} h \in \mathbb{R}^d`.
    n_classes, in_channels : int
    depth : int
        Convolutions per stage.
    """

    def __init__(self, channels: Sequence[int] = (16, 32), latent_dim: int = 64, n_classes: int = 10,
                 in_channels: int = 1, depth: int = 2):
        super().__init__()
        if len(channels) == 0:
            raise ValueError("channels must name at least one stage")
        for c in channels:
            check_positive_int(c, "channels[i]")
        check_positive_int(latent_dim, "latent_dim")
        check_positive_int(depth, "depth")
        layers: list[nn.Module] = []
        c_in = in_channels
        for j, c in enumerate(channels):
            for k in range(depth):
                ks = 5 if (j == 0 and k == 0) else 3
                layers += [nn.Conv2d(c_in, c, ks, padding=ks // 2), nn.BatchNorm2d(c), nn.ReLU()]
                c_in = c
            layers.append(nn.MaxPool2d(2))
        layers += [nn.Conv2d(c_in, latent_dim, 3, padding=1), nn.BatchNorm2d(latent_dim), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.latent_dim = latent_dim
        self.classifier = nn.Linear(latent_dim, n_classes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent codes ``(B, latent_dim)``: spatial mean of the last feature map."""
        check_tensor(x, "x", ndim=4, expected="(B, C_in, H, W)")
        return self.features(x).mean(dim=(-2, -1))

    def head(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)`` from latents."""
        return self.classifier(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(x))
