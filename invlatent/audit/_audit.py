r"""Equivariance audit: which layers of a model are equivariant, measured one captured layer at a time.

For a model :math:`f`, an input :math:`x`, an action of a group on the inputs (e.g.
:class:`~invlatent.groups.RotatePositions`, :class:`~invlatent.groups.PermuteNodes`) and, per
captured layer :math:`\ell`, the group's action :math:`\rho_\ell` on that layer's latent,
:func:`equivariance_audit` reports

.. math::

    e_\ell(g) = \frac{\lVert h_\ell(g\cdot x) - \rho_\ell(g)\, h_\ell(x)\rVert}{\lVert h_\ell(x)\rVert}

(Frobenius norms over the whole latent) for random elements :math:`g`, as a table, and
:func:`plot_equivariance_audit` draws it. A layer that breaks equivariance is flagged, and so is
everything downstream that inherits the error, while the layers before it pass.

Example
-------
>>> import torch
>>> from invlatent.groups import Permutation
>>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh())   # node-wise: S_n-equivariant
>>> x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0))
>>> df = equivariance_audit(model, x, ["0", "1"], Permutation(), Permutation())
>>> df[["layer", "equivariant"]].values.tolist()
[['0', True], ['1', True]]
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections.abc import Mapping

import torch
from torch import nn

from .._validation import all_finite, check_positive_int, describe
from ._capture import LatentCapture, _check_layers, _check_select

__all__ = ["equivariance_audit", "plot_equivariance_audit"]

#: The tolerance factor ``c`` of ``c * eps * sqrt(depth)``.
TOLERANCE_FACTOR = 100.0


def _gen(seed):
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, int) and not isinstance(seed, bool):
        return torch.Generator().manual_seed(seed)
    raise TypeError(f"generator must be a torch.Generator, an int seed or None, got {type(seed).__name__}")


def _model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's parameters and buffers (the least precise one); float32 if none."""
    dtypes = {t.dtype for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()}
    if not dtypes:
        return torch.float32
    return max(dtypes, key=lambda d: torch.finfo(d).eps)


def _cast(x, dtype):
    """Floating tensors of ``x`` (a tensor, mapping, PyG data, list or tuple) cast to ``dtype``; the rest shared."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype) if x.is_floating_point() else x
    if isinstance(x, Mapping):
        return {k: _cast(v, dtype) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_cast(v, dtype) for v in x)
    if hasattr(x, "keys") and hasattr(x, "__setitem__"):  # PyG Data / Batch
        out = copy.copy(x)
        keys = x.keys() if callable(x.keys) else x.keys
        for k in keys:
            out[k] = _cast(x[k], dtype)
        return out
    return x


def _is_group(obj) -> bool:
    return all(hasattr(obj, m) for m in ("act", "check_latent"))


def _element_batch(g) -> int:
    if isinstance(g, tuple):
        return _element_batch(g[0])
    if isinstance(g, torch.Tensor):
        return g.shape[0]
    return len(g)


def _repeat(g, N: int):
    if isinstance(g, tuple):
        return tuple(_repeat(h, N) for h in g)
    if isinstance(g, torch.Tensor):
        return g.expand(N, *g.shape[1:])
    raise TypeError(f"cannot repeat a group element of type {type(g).__name__} over {N} rows")


def act_on_latent(group, g, z: torch.Tensor) -> torch.Tensor:
    r""":math:`\rho(g)` on a captured latent, row-wise or as one set.

    * ``group.check_latent(z)`` accepts ``z`` (e.g. :class:`~invlatent.groups.SO3` on node latents
      ``(N, irreps.dim)``): ``group.act(g, z)``, with ``g`` repeated over the rows when it holds one
      element;
    * otherwise ``z`` is one set ``(1, *z.shape)`` (e.g. :class:`~invlatent.groups.Permutation` on
      ``(N, c)`` node latents with a ``(1, N)`` permutation): ``group.act(g, z[None])[0]``.
    """
    nb = _element_batch(g)
    try:
        group.check_latent(z)
        row_error = None
    except (TypeError, ValueError) as exc:
        row_error = exc
    if row_error is None and nb == z.shape[0]:
        return group.act(g, z)
    if row_error is None and nb == 1:
        return group.act(_repeat(g, z.shape[0]), z)
    if nb != 1:
        raise ValueError(f"the input group sampled {nb} elements but a latent of shape {tuple(z.shape)} "
                         f"takes 1 (one set) or {z.shape[0]} (one per row) under {group!r}")
    zs = z.unsqueeze(0)
    try:
        group.check_latent(zs, "latent")
    except (TypeError, ValueError) as set_error:
        raise ValueError(f"a latent of shape {tuple(z.shape)} fits {group!r} neither row by row ({row_error}) "
                         f"nor as one set ({set_error})") from None
    return group.act(g, zs)[0]


def _sample(input_group, inputs, gen):
    B = inputs.shape[0] if isinstance(inputs, torch.Tensor) else 1
    kwargs = {}
    try:
        if "data" in inspect.signature(input_group.sample).parameters:
            kwargs["data"] = inputs
    except (TypeError, ValueError):  # builtins without a signature
        pass
    return input_group.sample(B, generator=gen, **kwargs)


def _run(model, inputs, layers, select, forward):
    with LatentCapture(model, layers, select=select, stop=True) as cap:
        forward(model, inputs)
    return cap.latents, cap.order


def _input_tensors(x, name="inputs"):
    """``(name, tensor)`` for every tensor of ``x`` (a tensor, mapping, PyG data, list or tuple)."""
    if isinstance(x, torch.Tensor):
        yield name, x
    elif isinstance(x, Mapping):
        for k, v in x.items():
            yield from _input_tensors(v, f"{name}[{k!r}]")
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            yield from _input_tensors(v, f"{name}[{i}]")
    elif hasattr(x, "keys") and hasattr(x, "__getitem__"):
        for k in (x.keys() if callable(x.keys) else x.keys):
            yield from _input_tensors(x[k], f"{name}[{k!r}]")


def _check_finite(latents, what: str):
    for n, z in latents.items():
        if z.is_floating_point() and not all_finite(z):
            raise ValueError(f"layer {n!r} produced NaN or inf on {what}: the audit needs finite latents")


def tolerance(dtype: torch.dtype, depth: int, model_dtype: torch.dtype | None = None) -> float:
    r"""``TOLERANCE_FACTOR * eps * sqrt(depth)``, ``eps`` the machine epsilon of the less precise of
    ``dtype`` and ``model_dtype`` (see :func:`equivariance_audit`)."""
    eps = torch.finfo(dtype).eps
    if model_dtype is not None:
        eps = max(eps, torch.finfo(model_dtype).eps)
    return TOLERANCE_FACTOR * eps * math.sqrt(depth)


def equivariance_audit(model: nn.Module, inputs, layers, input_group, latent_group, *, select=None,
                       n_elements: int = 4, generator=0, dtype: torch.dtype = torch.float64, forward=None,
                       tolerance_override: float | None = None):
    r"""Relative equivariance error of every captured layer under random group elements, as a table.

    For each of ``n_elements`` random elements ``g = input_group.sample(...)`` (one element for a
    graph input; ``B`` elements for a tensor input ``(B, ...)``), the layers' latents of
    ``model(input_group.act(g, inputs))`` are compared with the latent action applied to those of
    ``model(inputs)`` (captured with :class:`~invlatent.audit.LatentCapture`, ``stop=True``):
    :math:`e_\ell(g) = \lVert h_\ell(g x) - \rho_\ell(g) h_\ell(x)\rVert / \lVert h_\ell(x)\rVert`.

    **Precision.** With ``dtype=torch.float64`` a deep copy of the model and the floating tensors
    of the input are cast to float64 (the model itself is never modified), so the error measures the
    model, not float32 rounding; if the float64 forward fails, the audit warns and runs in
    float32. The tolerance of a layer is

    .. math:: \mathrm{tol}_\ell = 100\, \varepsilon \sqrt{k_\ell},

    :math:`k_\ell` the position of the layer in the order the captured layers fire (a proxy for
    depth: rounding errors add up along the pass) and :math:`\varepsilon` the machine epsilon of the
    **less precise** of the audit dtype and the model's own parameter dtype: casting a model built
    in float32 to float64 does not undo the float32 rounding of its stored constants (e.g. e3nn's
    Clebsch--Gordan buffers), which limits its equivariance at the float32 level. Build the model in
    float64 (``torch.set_default_dtype(torch.float64)`` before constructing it) for a float64
    tolerance. ``tolerance_override`` replaces the formula.

    Parameters
    ----------
    model : nn.Module
    inputs : Tensor, PyG Data/Batch, dict, ...
        What ``forward(model, inputs)`` takes.
    layers : str or sequence of str
        Names from ``model.named_modules()``.
    input_group : group action on the inputs
        ``sample(B, generator=...)`` (``data=inputs`` is passed when the method takes it, as
        :class:`~invlatent.groups.PermuteNodes` does) and ``act(g, inputs)``.
    latent_group : group, dict ``{layer: group}`` or callable ``(layer, g, latent) -> latent``
        The action on each layer's latent; a group acts row-wise or on the latent as one set (see
        :func:`act_on_latent`).
    select : None, str or callable
        How to read a tensor from a layer's output (as in :func:`~invlatent.audit.capture_latents`).
    n_elements : int
    generator : torch.Generator or int seed
    dtype : torch.float64 or torch.float32
    forward : callable ``(model, inputs)``, optional
        How to run the model (default ``model(inputs)``).
    tolerance_override : float, optional

    Returns
    -------
    pandas.DataFrame
        One row per layer (in the order of ``layers``): ``layer``, ``group`` (the input group),
        ``dtype``, ``rel_error_max``, ``rel_error_mean`` (over the elements), ``tolerance``,
        ``equivariant`` (``rel_error_max <= tolerance``).

    Example
    -------
    >>> import torch
    >>> from invlatent.groups import Permutation
    >>> class Bad(torch.nn.Module):               # adds the node index: not permutation equivariant
    ...     def forward(self, x):
    ...         return x + torch.arange(x.shape[1], dtype=x.dtype).view(1, -1, 1)
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 3), Bad())
    >>> x = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(0))
    >>> equivariance_audit(model, x, ["0", "1"], Permutation(), Permutation())["equivariant"].tolist()
    [True, False]
    """
    import pandas as pd

    layers, _ = _check_layers(model, layers)
    select = _check_select(select)
    if not all(hasattr(input_group, m) for m in ("sample", "act")):
        raise TypeError(f"input_group must have sample() and act() (e.g. RotatePositions, PermuteNodes, "
                        f"Permutation), got {type(input_group).__name__}")
    if isinstance(latent_group, Mapping):
        missing = [n for n in layers if n not in latent_group]
        if missing:
            raise ValueError(f"latent_group has no group for the layers {missing}")
        for n in layers:
            if not (_is_group(latent_group[n]) or callable(latent_group[n])):
                raise TypeError(f"latent_group[{n!r}] must be a group or a callable, got {type(latent_group[n]).__name__}")
    elif not (_is_group(latent_group) or callable(latent_group)):
        raise TypeError(f"latent_group must be a group, a dict {{layer: group}} or a callable(layer, g, latent), "
                        f"got {type(latent_group).__name__}")
    check_positive_int(n_elements, "n_elements")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float64 or torch.float32, got {describe(dtype)}")
    if forward is None:
        def forward(m, x):
            return m(x)
    elif not callable(forward):
        raise TypeError(f"forward must be a callable (model, inputs) or None, got {type(forward).__name__}")
    if tolerance_override is not None and not (isinstance(tolerance_override, (int, float))
                                               and not isinstance(tolerance_override, bool) and tolerance_override > 0):
        raise ValueError(f"tolerance_override must be a positive float or None, got {describe(tolerance_override)}")
    gen = _gen(generator)
    for name, t in _input_tensors(inputs):
        if t.is_floating_point() and t.numel() and not all_finite(t):
            raise ValueError(f"{name} contains NaN or inf")

    model_dtype = _model_dtype(model)
    work, x = model, inputs
    if model_dtype != dtype:
        work = copy.deepcopy(model).to(dtype)
    x = _cast(inputs, dtype)
    try:
        base, order = _run(work, x, layers, select, forward)
    except (RuntimeError, TypeError) as exc:
        if dtype != torch.float64:
            raise
        warnings.warn(f"the model failed in float64 ({type(exc).__name__}: {exc}); auditing in float32",
                      RuntimeWarning, stacklevel=2)
        dtype = torch.float32
        work = model if model_dtype == dtype else copy.deepcopy(model).to(dtype)
        x = _cast(inputs, dtype)
        base, order = _run(work, x, layers, select, forward)

    _check_finite(base, "the input")

    def latent_action(layer, g, z):
        grp = latent_group[layer] if isinstance(latent_group, Mapping) else latent_group
        if _is_group(grp):
            return act_on_latent(grp, g, z)
        return grp(layer, g, z)

    errors = {n: [] for n in layers}
    for _ in range(n_elements):
        g = _sample(input_group, inputs, gen)
        moved, _ = _run(work, input_group.act(g, x), layers, select, forward)
        _check_finite(moved, "a transformed input")
        for n in layers:
            try:
                expected = latent_action(n, g, base[n])
            except ValueError as exc:
                raise ValueError(f"layer {n!r}: {exc}") from None
            if expected.shape != moved[n].shape:
                raise ValueError(f"layer {n!r}: the latent action gives shape {tuple(expected.shape)} but the "
                                 f"latent of the transformed input has shape {tuple(moved[n].shape)}")
            scale = float(base[n].double().norm())
            diff = float((moved[n].double() - expected.double().to(moved[n].device)).norm())
            errors[n].append(diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf))
    depth = {n: order.index(n) + 1 for n in layers}
    rows = []
    for n in layers:
        tol = float(tolerance_override) if tolerance_override is not None else tolerance(dtype, depth[n], model_dtype)
        e = errors[n]
        rows.append({"layer": n, "group": repr(input_group), "dtype": str(dtype).replace("torch.", ""),
                     "rel_error_max": max(e), "rel_error_mean": sum(e) / len(e), "tolerance": tol,
                     "equivariant": bool(max(e) <= tol)})
    return pd.DataFrame(rows)


def plot_equivariance_audit(df, ax=None):
    """Relative equivariance error per layer (log scale), one line per input group, the tolerance dashed.

    Flagged layers (``equivariant == False``) are marked with a red cross. Errors of exactly 0
    are drawn at the bottom of the axis (``1e-18``).

    Parameters
    ----------
    df : pandas.DataFrame
        The output of :func:`equivariance_audit` (several concatenated audits are fine).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Example
    -------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"layer": ["a", "b"], "group": ["G", "G"], "dtype": ["float64"] * 2,
    ...                    "rel_error_max": [1e-16, 0.3], "rel_error_mean": [1e-16, 0.2],
    ...                    "tolerance": [2e-14, 3e-14], "equivariant": [True, False]})
    >>> ax = plot_equivariance_audit(df)
    >>> ax.get_yscale()
    'log'
    """
    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.axes import Axes

    needed = {"layer", "group", "rel_error_max", "tolerance", "equivariant"}
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be the pandas DataFrame of equivariance_audit, got {type(df).__name__}")
    if not needed <= set(df.columns) or len(df) == 0:
        raise ValueError(f"df must be the (non-empty) DataFrame of equivariance_audit with columns {sorted(needed)}, "
                         f"got columns {list(df.columns)}")
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 0.9 * df["layer"].nunique() + 3), 4.5))
    layers = list(dict.fromkeys(df["layer"]))
    xpos = {n: i for i, n in enumerate(layers)}
    floor = 1e-18
    for group, part in df.groupby("group", sort=False):
        x = [xpos[n] for n in part["layer"]]
        y = part["rel_error_max"].clip(lower=floor)
        line, = ax.plot(x, y, marker="o", label=f"{group}")
        ax.plot(x, part["tolerance"], ls="--", color=line.get_color(), alpha=0.7, label=f"tolerance ({group})")
        bad = ~part["equivariant"].astype(bool)
        if bad.any():
            ax.scatter([xi for xi, b in zip(x, bad) if b], y[bad], marker="x", s=120, color="red", zorder=5,
                       label="not equivariant" if group == df["group"].iloc[0] else None)
    ax.set_yscale("log")
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(layers, rotation=30, ha="right")
    ax.set_xlabel("layer (forward order)")
    ax.set_ylabel("relative equivariance error (max)")
    ax.set_title("Equivariance audit")
    ax.legend(fontsize="small")
    ax.grid(True, which="major", alpha=0.3)
    return ax
