r"""Latent capture: record named intermediate outputs of any ``nn.Module`` with forward hooks.

:func:`capture_latents` runs a model once and returns ``{layer: output}`` for the requested
submodules (names as in ``model.named_modules()``); :class:`LatentCapture` is the same as a
context manager, for models whose call is more than ``model(*args, **kwargs)``.

* ``select`` reads a tensor out of outputs that are not tensors: a key of a dict, an attribute
  (or key) of a PyG ``Data``/``Batch``, or any callable ``output -> Tensor``.
* ``stop=True`` ends the forward pass as soon as the last requested layer has fired (a private
  exception raised from the hook and swallowed by the capture): no heads, no force
  computation, no wasted time after the layers of interest.
* The capture runs under ``torch.no_grad()`` unless ``grad=True`` (for models that need
  autograd *before* the last requested layer, e.g. a force head with ``stop=False``).
* The captured tensors are detached **copies** (``detach().clone()``) on the device where the
  model produced them, so a later in-place operation of the model cannot change them.

A module called several times in one forward pass (a shared block) is recorded at its
**first** call.

Example
-------
>>> import torch
>>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
>>> x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
>>> lat = capture_latents(model, ["0", "1"], x)
>>> {k: tuple(v.shape) for k, v in lat.items()}
{'0': (5, 4), '1': (5, 4)}
>>> with LatentCapture(model, "1") as cap:
...     model(x)
>>> bool((cap.latents["1"] >= 0).all())
True
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Callable

import torch
from torch import nn

__all__ = ["capture_latents", "LatentCapture"]


class _StopForward(Exception):
    """Raised by a capture hook once every requested layer has fired (``stop=True``)."""


def _check_layers(model, layers) -> tuple[list[str], dict[str, nn.Module]]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, Sequence) or not all(isinstance(n, str) for n in layers):
        raise TypeError(f"layers must be a str or a sequence of str (names from model.named_modules()), "
                        f"got {type(layers).__name__}")
    layers = list(layers)
    if not layers:
        raise ValueError("layers must name at least one submodule, got an empty sequence")
    if len(set(layers)) != len(layers):
        dup = sorted({n for n in layers if layers.count(n) > 1})
        raise ValueError(f"layers must not repeat a name, got {dup} more than once")
    modules = dict(model.named_modules())
    found = {}
    for name in layers:
        if name not in modules:
            near = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
            hint = f"; near matches: {near}" if near else f"; the model has {len(modules) - 1} named submodules"
            raise ValueError(f"layers: {type(model).__name__} has no submodule named {name!r}{hint}")
        found[name] = modules[name]
    return layers, found


def _check_select(select):
    if select is None or isinstance(select, str) or callable(select):
        return select
    raise TypeError(f"select must be None, a str key/attribute or a callable(output) -> Tensor, "
                    f"got {type(select).__name__}")


def _read(output, select, layer: str) -> torch.Tensor:
    """The tensor ``select`` picks out of ``output`` (``TypeError`` naming the layer if it cannot)."""
    what = "None" if select is None else repr(select) if isinstance(select, str) else "the select callable"
    try:
        if select is None:
            value = output
        elif isinstance(select, str):
            if isinstance(output, Mapping) or (hasattr(output, "keys") and hasattr(output, "__getitem__")
                                               and not isinstance(output, torch.Tensor)):
                value = output[select]
            else:
                value = getattr(output, select)
        else:
            value = select(output)
    except (KeyError, AttributeError, IndexError, TypeError) as exc:
        raise TypeError(f"layer {layer!r}: select={what} cannot read its output of type "
                        f"{type(output).__name__} ({type(exc).__name__}: {exc})") from None
    if not isinstance(value, torch.Tensor):
        hint = " (pass select= a key, an attribute or a callable)" if select is None else ""
        raise TypeError(f"layer {layer!r}: select={what} gives {type(value).__name__} from an output of type "
                        f"{type(output).__name__}, expected a torch.Tensor{hint}")
    return value.detach().clone()


class LatentCapture:
    r"""Context manager recording the outputs of named submodules; see :func:`capture_latents`.

    Parameters
    ----------
    model : nn.Module
    layers : str or sequence of str
        Names from ``model.named_modules()``.
    select : None, str or callable, optional
        ``None``: the output must be a tensor (a tuple is not guessed). A str: a dict key, or an
        attribute/key of a PyG ``Data`` (or any object). A callable: ``output -> Tensor``.
    stop : bool
        Stop the forward pass right after the last requested layer fired (the stop is swallowed
        when the ``with`` block exits).
    grad : bool
        Run under ``torch.enable_grad()`` instead of ``torch.no_grad()``.

    Attributes
    ----------
    latents : dict[str, Tensor]
        ``{layer: output}`` in the order of ``layers``, detached copies.
    order : list[str]
        The layers in the order they fired (their depth along the forward pass).

    Raises
    ------
    ValueError
        An unknown layer name (the near matches are listed).
    TypeError
        ``select`` cannot read a layer's output (the layer, the output type and the selector are named).
    RuntimeError
        On exit, a requested layer that never fired.

    Example
    -------
    >>> import torch
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.body, self.head = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
    ...     def forward(self, d):
    ...         return self.head(self.body(d["x"]))
    >>> net = Net()
    >>> out = None
    >>> with LatentCapture(net, ["body"]) as cap:
    ...     out = net({"x": torch.ones(4, 2)})     # stopped after "body": the head never runs
    >>> tuple(cap.latents["body"].shape), out is None
    ((4, 3), True)
    """

    def __init__(self, model: nn.Module, layers, *, select=None, stop: bool = True, grad: bool = False):
        self.layers, self._modules = _check_layers(model, layers)
        self.select = _check_select(select)
        if not isinstance(stop, bool):
            raise TypeError(f"stop must be a bool, got {type(stop).__name__}")
        if not isinstance(grad, bool):
            raise TypeError(f"grad must be a bool, got {type(grad).__name__}")
        self.model, self.stop, self.grad = model, stop, grad
        self.latents: dict[str, torch.Tensor] = {}
        self.order: list[str] = []
        self._handles: list = []
        self._grad_ctx = None

    def _hook(self, name: str):
        def hook(module, args, output):
            if name in self.latents:  # a shared module: keep its first call
                return
            self.latents[name] = _read(output, self.select, name)
            self.order.append(name)
            if self.stop and len(self.latents) == len(self.layers):
                raise _StopForward
        return hook

    def __enter__(self) -> "LatentCapture":
        self.latents, self.order = {}, []
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self._modules.items()]
        self._grad_ctx = torch.enable_grad() if self.grad else torch.no_grad()
        self._grad_ctx.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._grad_ctx.__exit__(None, None, None)
        for h in self._handles:
            h.remove()
        self._handles = []
        stopped = exc_type is not None and issubclass(exc_type, _StopForward)
        if exc_type is not None and not stopped:
            return False  # a real error of the model (or of select): let it through
        missing = [n for n in self.layers if n not in self.latents]
        if missing:
            raise RuntimeError(f"layers {missing} never fired during the forward pass of "
                               f"{type(self.model).__name__}: they are not on this input's path")
        self.latents = {n: self.latents[n] for n in self.layers}
        return stopped


def capture_latents(model: nn.Module, layers, *args, select=None, stop: bool = True, grad: bool = False,
                    **kwargs) -> dict[str, torch.Tensor]:
    r"""Run ``model(*args, **kwargs)`` and return the outputs of the submodules ``layers``.

    Forward hooks record :math:`h_\ell(x)` for every requested layer :math:`\ell`; with
    ``stop=True`` the pass ends right after the last of them fired, so nothing after it runs.

    Parameters
    ----------
    model : nn.Module
    layers : str or sequence of str
        Names from ``model.named_modules()``.
    *args, **kwargs
        The model's inputs.
    select : None, str or callable, optional
        How to read a tensor out of a layer's output (see :class:`LatentCapture`).
    stop : bool
        Stop the forward pass after the last requested layer.
    grad : bool
        Run with autograd enabled (default: ``torch.no_grad()``).

    Returns
    -------
    dict[str, Tensor]
        ``{layer: output}`` in the order of ``layers``: detached copies on the model's device.

    Example
    -------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh())
    >>> out = capture_latents(model, "0", torch.zeros(2, 3), select=lambda t: t[:, :2])
    >>> tuple(out["0"].shape)
    (2, 2)
    """
    with LatentCapture(model, layers, select=select, stop=stop, grad=grad) as cap:
        model(*args, **kwargs)
    return cap.latents
