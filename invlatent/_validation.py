"""Input checks shared by every public function.

Every check raises ``TypeError`` (wrong type or dtype) or ``ValueError`` (wrong shape,
empty, NaN/inf, mismatched sizes) with a message that names the argument and says what
was expected. Nothing is silently broadcast.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["check_tensor", "check_same_shape", "check_mask", "check_positive_int", "check_optional_positive_int",
           "all_finite", "describe"]


def _fmt_shape(shape: Sequence) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def describe(x, limit: int = 60) -> str:
    """A short description of ``x`` for an error message: never the ``repr`` of a large object.

    Numbers, ``None`` and short strings are shown as their ``repr``; tensors and arrays by type,
    shape and dtype; anything else by its type name, with its length when it has one (a data set
    of 130k molecules is "QM9Dataset of length 130831", not every SMILES it holds).

    Example
    -------
    >>> import torch
    >>> describe(3), describe(torch.zeros(2, 5))
    ('3', 'Tensor of shape (2, 5), dtype torch.float32')
    >>> describe(list(range(10**6)))
    'list of length 1000000'
    """
    if x is None or isinstance(x, (bool, int, float, complex)):
        return repr(x)
    if isinstance(x, str):
        return repr(x) if len(x) <= limit else f"str of length {len(x)}"
    shape = getattr(x, "shape", None)
    if isinstance(shape, tuple) or isinstance(x, torch.Tensor):
        dtype = getattr(x, "dtype", None)
        return f"{type(x).__name__} of shape {_fmt_shape(tuple(shape or ()))}" + (f", dtype {dtype}" if dtype is not None else "")
    if isinstance(x, (tuple, list)) and len(x) <= 8 and all(
            v is None or isinstance(v, (bool, int, float, str)) for v in x):
        r = repr(x)
        if len(r) <= limit:
            return r
    try:
        return f"{type(x).__name__} of length {len(x)}"
    except Exception:  # no len(): the type name is all that is safe to print
        return type(x).__name__


def check_tensor(
    x,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    min_ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
    floating: bool = True,
    finite: bool = True,
    allow_empty: bool = False,
    expected: str | None = None,
) -> torch.Tensor:
    """Validate ``x`` and return it.

    ``shape`` may contain ``None`` for free axes and is matched from the *right*
    when ``ndim`` is not given (so ``shape=(None, 3)`` means "last axis 3").
    ``expected`` is a human description such as ``"(B, n, c)"`` used in messages.
    """
    if torch.compiler.is_compiling():
        # inside a torch.compile'd region (e.g. a compiled training step): the inputs were
        # validated at the eager boundary, and data-dependent checks would break the graph
        return x
    desc = f" {expected}" if expected else ""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor{desc}, got {type(x).__name__}")
    if floating and not (x.is_floating_point() or x.is_complex()):
        raise TypeError(f"{name} must have a floating dtype (float32/float64), got {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.dim() not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dimensions{desc}, "
                f"got shape {_fmt_shape(x.shape)}"
            )
    if min_ndim is not None and x.dim() < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions{desc}, got shape {_fmt_shape(x.shape)}"
        )
    if shape is not None:
        if x.dim() < len(shape):
            raise ValueError(f"{name} must have shape {_fmt_shape(['*' if s is None else s for s in shape])}{desc}, got {_fmt_shape(x.shape)}")
        tail = x.shape[x.dim() - len(shape):]
        for want, got in zip(shape, tail):
            if want is not None and want != got:
                raise ValueError(
                    f"{name} must have shape ...{_fmt_shape(['*' if s is None else s for s in shape])}{desc}, "
                    f"got {_fmt_shape(x.shape)}"
                )
    if not allow_empty and x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {_fmt_shape(x.shape)}){desc}")
    if finite and (x.is_floating_point() or x.is_complex()) and x.numel() > 0:
        if not all_finite(x):
            raise ValueError(f"{name} contains NaN or inf")
    return x


def all_finite(x: torch.Tensor) -> bool:
    """True when every element of ``x`` is finite.

    A sum is about ten times cheaper than ``isfinite(x).all()`` and is NaN or inf whenever
    any element is; only when the sum is not finite (a NaN/inf is present, or the sum
    overflowed) is the exact elementwise test run.
    """
    with torch.no_grad():
        if bool(torch.isfinite(x.sum())):
            return True
        return bool(torch.isfinite(x).all())


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have exactly the same shape (no broadcasting)."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape (no broadcasting), "
            f"got {_fmt_shape(a.shape)} and {_fmt_shape(b.shape)}"
        )
    if a.dtype != b.dtype:
        raise TypeError(f"{name_a} and {name_b} must have the same dtype, got {a.dtype} and {b.dtype}")


def check_mask(mask, z: torch.Tensor, name: str = "mask", z_name: str = "z") -> torch.Tensor | None:
    """Validate a node mask of shape ``(B, n)`` (bool) against latents ``(B, n, c)``."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a bool torch.Tensor of shape (B, n), got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must have dtype torch.bool, got {mask.dtype}")
    if mask.shape != z.shape[:2]:
        raise ValueError(
            f"{name} must have shape (B, n) = {_fmt_shape(z.shape[:2])} to match {z_name} "
            f"of shape {_fmt_shape(z.shape)}, got {_fmt_shape(mask.shape)}"
        )
    return mask


def check_optional_positive_int(value, name: str) -> int | None:
    """``None`` or a positive int (``TypeError`` for other types, ``ValueError`` for ``<= 0``)."""
    return None if value is None else check_positive_int(value, name)


def check_positive_int(value, name: str) -> int:
    """Return ``value`` if it is a positive int (bools rejected)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be a positive int, got {describe(value)}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value
