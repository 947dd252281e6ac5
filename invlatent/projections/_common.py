"""Helpers shared by the projection modules."""

from __future__ import annotations

import warnings

import torch

from .._validation import check_positive_int, describe
from ..groups.base import check_group_latent


def check_latent_shape(latent_shape, name: str = "latent_shape") -> tuple[int, ...]:
    if isinstance(latent_shape, int) and not isinstance(latent_shape, bool):
        latent_shape = (latent_shape,)
    if not isinstance(latent_shape, (tuple, list, torch.Size)) or len(latent_shape) == 0:
        raise TypeError(f"{name} must be a non-empty tuple of positive ints such as (n, c), got {describe(latent_shape)}")
    return tuple(check_positive_int(s, f"{name}[{i}]") for i, s in enumerate(latent_shape))


def check_seed(seed) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return seed


def random_templates(shape: tuple[int, ...], seed: int, normalize: bool = True) -> torch.Tensor:
    """Gaussian templates (float64 then float32, so every platform draws the same numbers)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(*shape, generator=g, dtype=torch.float64)
    if normalize:
        w = w / w.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (w.dim() - 1)))
    return w.float()


def check_batch_latent(z, group, latent_shape, name: str = "z") -> torch.Tensor:
    check_group_latent(group, z, name)
    if tuple(z.shape[1:]) != tuple(latent_shape):
        raise ValueError(
            f"{name} must have shape (B, {', '.join(map(str, latent_shape))}) as the module was built "
            f"for latent_shape={tuple(latent_shape)}, got {tuple(z.shape)}"
        )
    return z


def renamed_count(n_out, old_value, old_name: str):
    """``n_out``, or the value of its deprecated name ``old_name`` (with a ``DeprecationWarning``)."""
    if old_value is not None:
        if n_out is not None:
            raise TypeError(f"pass n_out only (not also its deprecated name {old_name})")
        warnings.warn(f"{old_name}= is deprecated: use n_out=", DeprecationWarning, stacklevel=3)
        return old_value
    if n_out is None:
        raise TypeError("n_out (the number of outputs) is required")
    return n_out


def group_first(second, third, fname: str, pname: str):
    """``(group, params)`` from ``f(z, group, params)``; the old order ``f(z, params, group)`` (a tensor
    second) still works for one release, with a ``DeprecationWarning``."""
    if isinstance(second, torch.Tensor) and not isinstance(third, torch.Tensor):
        warnings.warn(f"{fname}(z, {pname}, group) is deprecated: use {fname}(z, group, {pname}) "
                      "(data first, then the group, then the parameters, as in the module)",
                      DeprecationWarning, stacklevel=3)
        return third, second
    return second, third
