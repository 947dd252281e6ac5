r"""Project data sets larger than device memory, chunk by chunk.

Every projection in ``invlatent`` acts on each latent independently, so a data set can be
streamed through the device: move a chunk of ``chunk_size`` latents to ``device``, project,
move the result back, repeat. Peak device memory is that of one chunk, whatever the data set
size; the result is identical to projecting all at once (batch-split invariance is tested for
every projection).

Example
-------
>>> import torch
>>> from invlatent import sort_projection
>>> z = torch.randn(10_000, 9, 1, generator=torch.Generator().manual_seed(0))
>>> out = project_in_chunks(sort_projection, z, chunk_size=3_000)
>>> torch.equal(out, sort_projection(z))
True
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from .._validation import check_positive_int, check_tensor

__all__ = ["project_in_chunks", "Chunked"]


def project_in_chunks(
    fn: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    *,
    chunk_size: int = 65_536,
    device: torch.device | str | None = None,
    out_device: torch.device | str | None = None,
    progress: bool = False,
) -> torch.Tensor:
    r"""Apply ``fn`` to ``z`` in chunks of rows, streaming them through ``device``.

    Parameters
    ----------
    fn : callable
        A projection ``(b, *latent_shape) -> (b, *out_shape)`` that treats rows
        independently.
    z : Tensor, shape ``(B, *latent_shape)``
        May live on the CPU (pinned memory makes host-to-device copies asynchronous).
    chunk_size : int
        Latents per chunk; peak device memory is that of one chunk.
    device : device, optional
        Where ``fn`` runs (default: ``z.device``).
    out_device : device, optional
        Where the result is gathered (default: ``z.device``).
    progress : bool
        Show a progress bar over chunks (quiet under CI).

    Returns
    -------
    Tensor, shape ``(B, *out_shape)`` on ``out_device``.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    check_tensor(z, "z", min_ndim=1, expected="(B, *latent_shape)")
    check_positive_int(chunk_size, "chunk_size")
    return _project_in_chunks(fn, z, chunk_size, device, out_device, progress)


def _project_in_chunks(fn, z, chunk_size, device=None, out_device=None, progress=False) -> torch.Tensor:
    """:func:`project_in_chunks` without input checks (the output of ``fn`` is still checked per chunk)."""
    device = torch.device(device) if device is not None else z.device
    out_device = torch.device(out_device) if out_device is not None else z.device
    starts: Iterable[int] = range(0, z.shape[0], chunk_size)
    if progress:
        from ..utils import progress as bar

        starts = bar(starts, desc="project", unit="chunk")
    out: torch.Tensor | None = None
    for start in starts:
        chunk = z[start:start + chunk_size].to(device, non_blocking=True)
        res = fn(chunk)
        if not isinstance(res, torch.Tensor) or res.dim() == 0 or res.shape[0] != chunk.shape[0]:
            raise ValueError(
                f"fn must map a chunk of {chunk.shape[0]} latents to a tensor with {chunk.shape[0]} rows, "
                f"got {type(res).__name__} of shape {tuple(getattr(res, 'shape', ()))}"
            )
        if out is None:
            out = torch.empty((z.shape[0], *res.shape[1:]), dtype=res.dtype, device=out_device)
        out[start:start + chunk.shape[0]] = res.to(out_device)
    assert out is not None  # z has at least one row (checked above)
    return out


class Chunked(nn.Module):
    r"""Wrap a projection module so that its forward streams in chunks (see :func:`project_in_chunks`).

    Example
    -------
    >>> import torch
    >>> from invlatent import SortProjection
    >>> proj = Chunked(SortProjection(), chunk_size=100)
    >>> proj(torch.randn(250, 5, 1)).shape
    torch.Size([250, 5, 1])
    """

    def __init__(self, module: nn.Module, chunk_size: int = 65_536, device: torch.device | str | None = None):
        super().__init__()
        if not callable(module):
            raise TypeError(f"module must be callable, got {type(module).__name__}")
        self.module = module
        self.chunk_size = check_positive_int(chunk_size, "chunk_size")
        self.device = device

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_tensor(z, "z", min_ndim=1, expected="(B, *latent_shape)")
        device = self.device
        if device is None:
            p = next(iter(self.module.parameters()), None) if isinstance(self.module, nn.Module) else None
            b = next(iter(self.module.buffers()), None) if isinstance(self.module, nn.Module) else None
            ref = p if p is not None else b
            device = ref.device if ref is not None else z.device
        return _project_in_chunks(self.module, z, self.chunk_size, device)

    def extra_repr(self) -> str:
        return f"chunk_size={self.chunk_size}, device={self.device}"
