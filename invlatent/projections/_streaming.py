r"""Project data sets larger than device memory, chunk by chunk.

Every projection in ``invlatent`` acts on each latent independently, so a data set can be
streamed through the device: move a chunk of ``chunk_size`` latents to ``device``, project,
move the result back, repeat. Peak device memory is that of one chunk, whatever the data set
size; the result is identical to projecting all at once (batch-split invariance is tested for
every projection).

:func:`project_in_chunks` streams latents that are already held (in host memory).
:func:`project_stream` streams latents that are *produced* batch by batch (a model's
intermediate features, say) and are too large to hold at all: each batch is projected as it
comes, only the projections are kept for every row, and the raw latents only for the first
``keep`` rows.

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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from .._validation import check_mask, check_positive_int, check_tensor, describe

__all__ = ["project_in_chunks", "Chunked", "project_stream", "StreamedProjections"]


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


@dataclass
class StreamedProjections:
    """What :func:`project_stream` keeps of a stream of latent batches.

    Attributes
    ----------
    views : dict[str, Tensor]
        ``views[name]`` is ``(n, *shape)``: row ``i`` is ``views[name](z, mask, rows)`` of the
        latent ``i``, on ``out_device``.
    z : Tensor, shape ``(keep, *latent_shape)``
        The raw latents of rows ``0 .. keep-1``, as produced (dtype unchanged), on ``out_device``.
    mask : BoolTensor, shape ``(n, n_slots)``, or None
        The batches' masks, gathered (None when the batches carry none).
    """

    views: dict[str, torch.Tensor]
    z: torch.Tensor
    mask: torch.Tensor | None


def _check_views(views) -> dict:
    if not isinstance(views, Mapping):
        raise TypeError(f"views must be a mapping name -> callable(z, mask, rows), got {describe(views)}")
    for name, fn in views.items():
        if not isinstance(name, str):
            raise TypeError(f"views must have str keys, got {describe(name)}")
        if not callable(fn):
            raise TypeError(f"views[{name!r}] must be callable(z, mask, rows) -> Tensor, got {describe(fn)}")
    return dict(views)


def _check_rows(rows, n: int, b: int) -> slice:
    if not isinstance(rows, slice) or not isinstance(rows.start, int) or not isinstance(rows.stop, int) \
            or rows.step not in (None, 1):
        raise TypeError(f"each batch's rows must be a slice(start, stop) of int, got {describe(rows)}")
    if not 0 <= rows.start < rows.stop <= n or rows.stop - rows.start != b:
        raise ValueError(f"a batch of {b} latents has rows {rows.start}:{rows.stop}, expected a range of "
                         f"{b} rows inside 0:{n} (n={n})")
    return rows


def project_stream(
    batches: Iterable,
    views: Mapping[str, Callable],
    *,
    n: int,
    keep: int = 0,
    dtype: torch.dtype | None = None,
    out_device: torch.device | str = "cpu",
) -> StreamedProjections:
    r"""Project latents as they are produced, keeping only the projections and a few raw rows.

    A model's intermediate features of a whole data set may not fit in memory (the node
    features of all 130,831 QM9 molecules after one SevenNet block are 7.3 GB in float32).
    ``project_stream`` consumes them batch by batch: every function of ``views`` is applied
    to the batch where it was produced (the model's device), its output is copied into a
    preallocated ``(n, *shape)`` tensor on ``out_device``, and the batch is dropped. The raw
    latents are copied only for rows ``0 .. keep-1`` (take a random order of the data set,
    and they are a random subsample). Peak memory is that of the kept outputs plus one
    batch, whatever ``n``: :math:`n \cdot \sum_v \mathrm{numel}(v) + \text{keep}\cdot
    \mathrm{numel}(z_i)` numbers on ``out_device``.

    Parameters
    ----------
    batches : iterable of ``(rows, z, mask)``
        ``rows`` a ``slice(start, stop)`` of the data set's rows, ``z`` the latents of those
        rows ``(b, *latent_shape)`` with ``b = stop - start`` (floating, any device), ``mask``
        a bool ``(b, n_slots)`` node mask of set latents, or None. Together the batches cover
        every row of ``0 .. n-1`` exactly once, in any order.
    views : mapping of str to callable
        ``views[name](z, mask, rows) -> Tensor (b, *shape)``: one output row per latent. ``z``
        is the batch (cast to ``dtype``), ``mask`` its mask, ``rows`` its slice, to index
        per-row data such as random group elements drawn for the whole data set.
    n : int
        Rows in the data set.
    keep : int
        Raw latents kept: rows ``0 .. keep-1`` (``0 <= keep <= n``).
    dtype : torch.dtype, optional
        The dtype the views see (the latents' own by default). The kept latents keep theirs.
    out_device : device
        Where the outputs are gathered (the CPU by default).

    Returns
    -------
    StreamedProjections
        ``views`` ``{name: (n, *shape)}``, ``z`` ``(keep, *latent_shape)``, ``mask``
        ``(n, n_slots)`` or None.

    Raises
    ------
    TypeError
        ``views`` not a mapping of callables, a batch that is not ``(rows, z, mask)``.
    ValueError
        ``n`` or ``keep`` out of range, a view output with the wrong number of rows or
        inconsistent shapes across batches, rows outside ``0 .. n-1``, covered twice or never.

    Example
    -------
    >>> import torch
    >>> gen = torch.Generator().manual_seed(0)
    >>> def produce(n, b):  # stands in for a model run batch by batch
    ...     for s in range(0, n, b):
    ...         yield slice(s, min(s + b, n)), torch.randn(min(b, n - s), 5, 8, generator=gen), None
    >>> out = project_stream(produce(1000, 64), {"norm": lambda z, m, rows: z.norm(dim=(1, 2)),
    ...                                          "mean": lambda z, m, rows: z.mean(1)},
    ...                      n=1000, keep=10)
    >>> out.views["norm"].shape, out.views["mean"].shape, out.z.shape
    (torch.Size([1000]), torch.Size([1000, 8]), torch.Size([10, 5, 8]))
    """
    views = _check_views(views)
    n = check_positive_int(n, "n")
    if isinstance(keep, bool) or not isinstance(keep, int) or not 0 <= keep <= n:
        raise ValueError(f"keep must be an int with 0 <= keep <= n = {n}, got {describe(keep)}")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype or None, got {describe(dtype)}")
    out_device = torch.device(out_device)
    out: dict[str, torch.Tensor] = {}
    kept: torch.Tensor | None = None
    mask_out: torch.Tensor | None = None
    seen = torch.zeros(n, dtype=torch.bool)
    for item in batches:
        if not isinstance(item, tuple) or len(item) != 3:
            raise TypeError(f"each batch must be a tuple (rows, z, mask), got {describe(item)}")
        rows, z, mask = item
        check_tensor(z, "z", min_ndim=1, finite=False, expected="(b, *latent_shape)")
        mask = check_mask(mask, z) if mask is not None else None
        rows = _check_rows(rows, n, z.shape[0])
        if bool(seen[rows].any()):
            raise ValueError(f"rows {rows.start}:{rows.stop} overlap rows of an earlier batch")
        seen[rows] = True
        if mask is not None:
            if mask_out is None:
                mask_out = torch.zeros((n, *mask.shape[1:]), dtype=torch.bool, device=out_device)
            mask_out[rows] = mask.to(out_device)
        if kept is None:
            kept = torch.zeros((keep, *z.shape[1:]), dtype=z.dtype, device=out_device)
        elif z.shape[1:] != kept.shape[1:]:
            raise ValueError(f"z of rows {rows.start}:{rows.stop} has latents of shape {tuple(z.shape[1:])}, "
                             f"earlier batches {tuple(kept.shape[1:])}")
        if rows.start < keep:
            stop = min(rows.stop, keep)
            kept[rows.start:stop] = z[:stop - rows.start].to(out_device)
        zv = z if dtype is None else z.to(dtype)
        for name, fn in views.items():
            res = fn(zv, mask, rows)
            if not isinstance(res, torch.Tensor) or res.dim() == 0 or res.shape[0] != z.shape[0]:
                raise ValueError(f"views[{name!r}] must map a batch of {z.shape[0]} latents to a tensor with "
                                 f"{z.shape[0]} rows, got {describe(res)}")
            if name not in out:
                out[name] = torch.zeros((n, *res.shape[1:]), dtype=res.dtype, device=out_device)
            elif res.shape[1:] != out[name].shape[1:]:
                raise ValueError(f"views[{name!r}] gave rows of shape {tuple(res.shape[1:])}, earlier batches "
                                 f"{tuple(out[name].shape[1:])}")
            out[name][rows] = res.detach().to(out_device)
        del z, zv
    if not bool(seen.all()):
        missing = int((~seen).sum())
        raise ValueError(f"the batches covered {n - missing} of n = {n} rows; every row needs one batch")
    assert kept is not None  # at least one batch (every row is covered)
    return StreamedProjections(views=out, z=kept, mask=mask_out)
