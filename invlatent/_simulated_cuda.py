r"""A simulated CUDA device on a CPU-only build of torch: device bugs found without a GPU.

Inside :func:`simulated_cuda`, ``torch.cuda.is_available()`` is true and tensors "on CUDA" are
ordinary CPU tensors whose class has been swapped in place for a marked subclass
(:class:`SimulatedCudaTensor`): the same object, the same storage, autograd untouched. A
``TorchFunctionMode`` sees every torch call and

* runs factories given ``device="cuda"`` (``zeros``, ``arange``, ``eye``, ``*_like``,
  ``tensor``, ``as_tensor``, ``new_*``, ...) on the CPU and marks what they return;
* implements ``.to`` / ``.cuda()`` / ``.cpu()`` / ``.type_as`` / ``Module.to`` as real copies
  between the two devices, and reports ``.device``, ``.is_cuda``, ``.get_device()`` as CUDA does;
* raises CUDA's ``RuntimeError`` when an op mixes a CUDA tensor with a CPU tensor that is not a
  0-dim scalar (``torch.equal`` included), CUDA's ``TypeError`` for ``.numpy()`` of a CUDA
  tensor, and CUDA's ``RuntimeError`` when a generator's device differs from the output's;
* marks every tensor an op returns when one of its inputs was marked.

What is allowed across devices follows CUDA: a 0-dim CPU tensor with CUDA tensors, CPU index
tensors for indexing a CUDA tensor (``x[idx]``, ``x[idx] = v``, ``index_put_``), ``copy_``, and
``param.data = t``.

What it cannot simulate
-----------------------
* **Memory**: data stays in host memory; ``torch.cuda.memory_allocated`` and friends report 0,
  so an out-of-memory error on a real GPU is not reproduced.
* **Speed and asynchrony**: no streams, no kernel overlap; ``synchronize`` does nothing, and a
  host sync in a hot loop costs nothing here.
* **Numerics**: kernels are the CPU's (no TF32, no atomics), so results are deterministic and
  equal to the CPU's; random numbers come from CPU generators, so a seeded CUDA run on a real GPU
  draws other numbers. Ops or dtypes that exist only on one of the two (e.g. some float16 ops) are
  not caught.
* **Compilation**: ``torch.compile`` is not supported inside; e3nn's TorchScript is switched off
  (``jit_script_fx=False``) for modules built inside, and the outputs of scripted modules called
  inside are marked after the call.
* **Other threads** see marked tensors as CUDA tensors, but factories there with
  ``device="cuda"`` need the mode, which is thread-local: this package's worker threads
  (``workers=`` of the k-NN search) enter it; other thread pools do not.
* Tensors created inside keep their device after the context ends (as real CUDA tensors would);
  ``torch.save`` of a marked tensor stores a CPU tensor.

Example
-------
>>> import torch
>>> with simulated_cuda() as dev:
...     x = torch.arange(4.0, device=dev)
...     print(x.device, torch.cuda.is_available())
...     try:
...         x + torch.ones(4)                 # a CPU tensor mixed in: what CUDA raises
...     except RuntimeError as e:
...         print(str(e).split(",")[0])
cuda:0 True
Expected all tensors to be on the same device
"""

from __future__ import annotations

import threading
import time
import types
from typing import Any, Callable

import torch
from torch.nn.parameter import Parameter
from torch.overrides import TorchFunctionMode

__all__ = ["simulated_cuda", "is_simulated_cuda", "SimulatedCudaTensor"]

_CUDA = torch.device("cuda", 0)
_CPU = torch.device("cpu")
_T4_MEMORY = 15 * 2**30
_MIXED = ("Expected all tensors to be on the same device, but found at least two devices, "
          "cuda:0 and cpu! (simulated CUDA, in {})")
_NUMPY = ("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the "
          "tensor to host memory first.")


# --- marking tensors -----------------------------------------------------------------------
class _Marked:
    """Mixin of the marked classes: a marked tensor is a CUDA tensor of the simulation."""

    __slots__ = ()

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        # reached when the mode is not active (another thread, or after the context)
        if not all(issubclass(t, _Marked) for t in types):
            return NotImplemented                       # an fx Proxy or another override first
        return _dispatch(func, args, kwargs or {})


class SimulatedCudaTensor(_Marked, torch.Tensor):
    """A CPU tensor that plays a CUDA tensor inside :func:`simulated_cuda` (class swapped in
    place: the same object, storage and autograd graph)."""


class _SimulatedCudaParameter(_Marked, Parameter):
    pass


_MARKED: dict[type, type] = {torch.Tensor: SimulatedCudaTensor, Parameter: _SimulatedCudaParameter}
_PLAIN: dict[type, type] = {v: k for k, v in _MARKED.items()}


def is_simulated_cuda(t: Any) -> bool:
    """True when ``t`` is a tensor on the simulated CUDA device."""
    return isinstance(t, _Marked)


def _mark(t: torch.Tensor) -> torch.Tensor:
    if isinstance(t, _Marked):
        return t
    cls = type(t)
    marked = _MARKED.get(cls)
    if marked is None:                      # a tensor subclass of a library: a marked twin
        marked = type(f"SimulatedCuda{cls.__name__}", (_Marked, cls), {"__slots__": ()})
        _MARKED[cls], _PLAIN[marked] = marked, cls
    t.__class__ = marked
    return t


def _unmark(t: torch.Tensor) -> torch.Tensor:
    if isinstance(t, _Marked):
        t.__class__ = _PLAIN[type(t)]
    return t


def _mark_all(out: Any, skip: tuple = ()) -> None:
    if isinstance(out, torch.Tensor):
        if not any(out is s for s in skip):
            _mark(out)
    elif isinstance(out, (list, tuple)):
        for o in out:
            _mark_all(o, skip)


def _collect(obj: Any, into: list) -> None:
    if isinstance(obj, torch.Tensor):
        into.append(obj)
    elif isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
        for o in obj:
            _collect(o, into)


def _name(func: Callable) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def _device_of(t: torch.Tensor) -> torch.device:
    return _CUDA if isinstance(t, _Marked) else t.device


# --- the dispatch --------------------------------------------------------------------------
def _dispatch(func: Callable, args: tuple, kwargs: dict) -> Any:
    with torch._C.DisableTorchFunctionSubclass():
        special = _SPECIAL.get(func)
        if special is not None:
            return special(func, args, kwargs)
        if kwargs.get("device") is not None:
            return _with_device(func, args, kwargs)
        tensors: list = []
        _collect(args, tensors)
        if kwargs:
            _collect(tuple(kwargs.values()), tensors)
        on, cpu = False, []
        for t in tensors:
            if isinstance(t, _Marked):
                on = True
            else:
                cpu.append(t)
        gen = kwargs.get("generator")
        if gen is not None:
            _check_generator(gen, _CUDA if on else _CPU)
        if not on:
            return func(*args, **kwargs)
        if any(t.dim() > 0 for t in cpu):
            raise RuntimeError(_MIXED.format(_name(func)))
        out = func(*args, **kwargs)
        _mark_all(out, tuple(cpu))
        return out


def _check_generator(gen: Any, device: torch.device) -> None:
    kind = gen.device.type
    if isinstance(gen, torch._C.Generator) and kind != device.type:
        raise RuntimeError(f"Expected a '{device.type}' device type for generator but found '{kind}'"
                           " (simulated CUDA)")


def _target(device: Any) -> torch.device:
    d = torch.device(device)
    if d.type == "cuda" and d.index not in (None, 0):
        raise RuntimeError(f"CUDA error: invalid device ordinal (simulated CUDA has one device, "
                           f"got {d})")
    return d


def _with_device(func: Callable, args: tuple, kwargs: dict) -> Any:
    dev = _target(kwargs["device"])
    if dev.type not in ("cuda", "cpu"):
        return func(*args, **kwargs)
    gen = kwargs.get("generator")
    if gen is not None:
        _check_generator(gen, dev)
    to_cuda = dev.type == "cuda"
    inputs: list = []
    _collect(args, inputs)
    out = func(*args, **{**kwargs, "device": "cpu"})
    return _place(out, inputs, to_cuda)


def _place(out: Any, inputs: list, to_cuda: bool) -> Any:
    """Put ``out`` on the target device: a result that aliases an input of the other device is
    copied first (a real transfer never aliases)."""
    if isinstance(out, torch.Tensor):
        if isinstance(out, _Marked) != to_cuda and any(out is t for t in inputs):
            out = out.clone()
        return _mark(out) if to_cuda else _unmark(out)
    if isinstance(out, (list, tuple)) and not isinstance(out, torch.Size):
        return type(out)(_place(o, inputs, to_cuda) for o in out)
    return out


# --- functions with their own device rules -----------------------------------------------------
def _to(self: torch.Tensor, device: torch.device | None, dtype, non_blocking=False, copy=False,
        memory_format=torch.preserve_format) -> torch.Tensor:
    src = isinstance(self, _Marked)
    if device is not None and device.type not in ("cuda", "cpu"):
        return torch.Tensor.to(self, device, dtype, non_blocking, copy, memory_format=memory_format)
    dst = src if device is None else device.type == "cuda"
    if device is not None:
        _target(device)
    out = torch.Tensor.to(self, dtype=dtype if dtype is not None else self.dtype, copy=copy,
                          memory_format=memory_format)
    if src != dst and out is self:
        out = out.clone(memory_format=memory_format)
    if out is self:
        return out
    return _mark(out) if dst else _unmark(out)


def _tensor_to(func, args, kwargs):
    self, rest = args[0], list(args[1:])
    kwargs = dict(kwargs)
    copy = kwargs.pop("copy", False)
    if rest and isinstance(rest[0], torch.Tensor):               # .to(other[, non_blocking, copy])
        other = rest.pop(0)
        return _to(self, _device_of(other), other.dtype, *rest[:1], copy=copy or (rest[1:2] or [False])[0])
    device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*rest, **kwargs)
    if len(rest) >= 2 and isinstance(rest[-1], bool) and isinstance(rest[-2], bool):
        copy = rest[-1]                                          # .to(device, dtype, nb, copy)
    return _to(self, device, dtype, non_blocking, copy,
               memory_format if memory_format is not None else torch.preserve_format)


def _tensor_cuda(func, args, kwargs):
    device = kwargs.get("device", args[1] if len(args) > 1 else None)
    _target(_CUDA if device is None else (torch.device("cuda", device) if isinstance(device, int) else device))
    return _to(args[0], _CUDA, None,
               memory_format=kwargs.get("memory_format", torch.preserve_format))


def _tensor_cpu(func, args, kwargs):
    return _to(args[0], _CPU, None, memory_format=kwargs.get("memory_format", torch.preserve_format))


def _type_as(func, args, kwargs):
    self, other = args[0], (args[1] if len(args) > 1 else kwargs["other"])
    return _to(self, _device_of(other), other.dtype)


def _numpy(func, args, kwargs):
    if isinstance(args[0], _Marked):
        raise TypeError(_NUMPY)
    return func(*args, **kwargs)


def _set_data(func, args, kwargs):
    self, value = args
    func(self, value)
    if isinstance(value, _Marked):
        _mark(self)
    else:
        _unmark(self)


def _set_grad(func, args, kwargs):
    self, value = args
    if value is not None and isinstance(value, _Marked) != isinstance(self, _Marked):
        raise RuntimeError("assigned grad has data located on a different device (simulated CUDA)")
    return func(self, value)


def _copy(func, args, kwargs):
    return func(*args, **kwargs)                                 # cross-device copies are allowed


def _index_tensors(index: Any) -> list:
    found: list = []
    _collect(index if isinstance(index, tuple) else (index,), found)
    return found


def _getitem(func, args, kwargs):
    self = args[0]
    if isinstance(self, _Marked):
        out = func(*args, **kwargs)
        _mark_all(out)
        return out
    if any(isinstance(t, _Marked) and t.dim() > 0 for t in _index_tensors(args[1])):
        raise RuntimeError("indices should be either on cpu or on the same device as the indexed "
                           "tensor (cpu) (simulated CUDA)")
    return func(*args, **kwargs)


def _setitem(func, args, kwargs):
    self, index = args[0], args[1]
    if not isinstance(self, _Marked) and any(
            isinstance(t, _Marked) and t.dim() > 0 for t in _index_tensors(index)):
        raise RuntimeError("indices should be either on cpu or on the same device as the indexed "
                           "tensor (cpu) (simulated CUDA)")
    return func(*args, **kwargs)


def _index_put(func, args, kwargs):
    self = args[0]
    if not isinstance(self, _Marked):
        return _dispatch_plain(func, args, kwargs)
    values = args[2] if len(args) > 2 else kwargs.get("values")
    if values is not None and not isinstance(values, _Marked) and values.dim() > 0:
        raise RuntimeError(_MIXED.format(_name(func)))
    out = func(*args, **kwargs)
    _mark_all(out)
    return out


def _dispatch_plain(func, args, kwargs):
    tensors: list = []
    _collect(args, tensors)
    if any(isinstance(t, _Marked) and t.dim() > 0 for t in tensors):
        raise RuntimeError(_MIXED.format(_name(func)))
    return func(*args, **kwargs)


def _iter(func, args, kwargs):
    self = args[0]
    if not isinstance(self, _Marked):
        return func(*args, **kwargs)
    if self.dim() == 0:
        raise TypeError("iteration over a 0-d tensor")
    return iter([_mark(t) for t in self.unbind(0)])


def _repr(func, args, kwargs):
    self = args[0]
    if not isinstance(self, _Marked):
        return func(*args, **kwargs)
    text = _unmarked_call(func, args, kwargs)
    return text[:-1] + ", device='cuda:0')" if text.endswith(")") else text


def _unmarked_call(func, args, kwargs):
    """``func(self, ...)`` with ``self`` unmarked during the call (for what reads its class)."""
    self = args[0]
    _unmark(self)
    try:
        return func(*args, **kwargs)
    finally:
        _mark(self)


def _format(func, args, kwargs):                  # torch formats 0-dim plain tensors only
    if not isinstance(args[0], _Marked):
        return func(*args, **kwargs)
    return _unmarked_call(func, args, kwargs)


def _deepcopy(func, args, kwargs):
    if not isinstance(args[0], _Marked):
        return func(*args, **kwargs)
    return _mark(_unmarked_call(func, args, kwargs))


def _shallow_copy_type(func, args, kwargs):
    # CPU and CUDA tensors have different TensorImpl key sets: Module.to then makes new Parameters
    if isinstance(args[0], _Marked) != isinstance(args[1], _Marked):
        return False
    return func(*args, **kwargs)


def _reduce_ex(func, args, kwargs):
    if not isinstance(args[0], _Marked):
        return func(*args, **kwargs)
    return _unmarked_call(func, args, kwargs)


def _pin_memory(func, args, kwargs):
    if isinstance(args[0], _Marked):
        raise RuntimeError("cannot pin 'torch.cuda.FloatTensor' only dense CPU tensors can be pinned"
                           " (simulated CUDA)")
    return args[0].clone()                                       # pinning itself is not simulated


def _as_tensor(func, args, kwargs):
    if len(args) > 2:                                            # as_tensor(data, dtype, device)
        args, kwargs = args[:2], {**kwargs, "device": args[2]}
    if kwargs.get("device") is not None:
        return _with_device(func, args, kwargs)
    return _dispatch_generic(func, args, kwargs)


def _dispatch_generic(func, args, kwargs):
    tensors: list = []
    _collect(args, tensors)
    out = func(*args, **kwargs)
    if any(isinstance(t, _Marked) for t in tensors):
        _mark_all(out)
    return out


_SPECIAL: dict[Any, Callable] = {
    torch.Tensor.device.__get__: lambda f, a, k: _CUDA if isinstance(a[0], _Marked) else f(*a, **k),
    torch.Tensor.is_cuda.__get__: lambda f, a, k: isinstance(a[0], _Marked) or f(*a, **k),
    torch.Tensor.is_cpu.__get__: lambda f, a, k: not isinstance(a[0], _Marked) and f(*a, **k),
    torch.Tensor.get_device: lambda f, a, k: 0 if isinstance(a[0], _Marked) else f(*a, **k),
    torch.Tensor.is_pinned: lambda f, a, k: False,
    torch.Tensor.to: _tensor_to,
    torch.Tensor.cuda: _tensor_cuda,
    torch.Tensor.cpu: _tensor_cpu,
    torch.Tensor.type_as: _type_as,
    torch.Tensor.numpy: _numpy,
    torch.Tensor.__array__: _numpy,
    torch.Tensor.data.__set__: _set_data,
    torch.Tensor.grad.__set__: _set_grad,
    torch.Tensor.copy_: _copy,
    torch.Tensor.__getitem__: _getitem,
    torch.Tensor.__setitem__: _setitem,
    torch.Tensor.index_put_: _index_put,
    torch.Tensor.index_put: _index_put,
    torch.index_put: _index_put,
    torch.Tensor.__iter__: _iter,
    torch.Tensor.__repr__: _repr,
    torch.Tensor.__reduce_ex__: _reduce_ex,
    torch.Tensor.__deepcopy__: _deepcopy,
    torch.Tensor.__format__: _format,
    torch.Tensor.pin_memory: _pin_memory,
    torch.as_tensor: _as_tensor,
    torch._has_compatible_shallow_copy_type: _shallow_copy_type,
    # Module.to(device=...) parses its arguments with this: the device must reach it unchanged
    torch._C._nn._parse_to: lambda f, a, k: f(*a, **k),
}


def _foreign(obj: Any) -> bool:
    """An argument with its own ``__torch_function__`` that is not a tensor (an fx ``Proxy``),
    also inside a list (``torch.einsum(eq, [a, b])`` hides its operands from ``types``)."""
    if isinstance(obj, torch.Tensor):
        return False
    if isinstance(obj, (list, tuple)):
        return any(_foreign(o) for o in obj)
    return hasattr(type(obj), "__torch_function__")


class _Mode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if not all(issubclass(t, _Marked) for t in types) or any(_foreign(a) for a in args):
            # another override among the arguments (an fx Proxy while e3nn generates code, a
            # library's tensor subclass): it handles the call (the mode is off inside this method)
            return func(*args, **(kwargs or {}))
        return _dispatch(func, args, kwargs or {})


# --- torch.Generator(device="cuda") ------------------------------------------------------------
class _GeneratorMeta(type(torch._C.Generator)):  # type: ignore[misc]
    def __instancecheck__(cls, obj):
        return isinstance(obj, torch._C.Generator)

    def __subclasscheck__(cls, sub):
        return issubclass(sub, torch._C.Generator)


class _Generator(torch._C.Generator, metaclass=_GeneratorMeta):
    """``torch.Generator`` inside the simulation: ``device="cuda"`` gives a CPU generator that
    reports ``cuda:0``."""

    def __new__(cls, device: Any = "cpu"):
        dev = _target(device)
        self = super().__new__(cls, "cpu" if dev.type == "cuda" else dev)
        self._simulated_cuda = dev.type == "cuda"
        return self

    @property
    def device(self) -> torch.device:
        return _CUDA if self._simulated_cuda else torch._C.Generator.device.__get__(self)


# --- torch.cuda ----------------------------------------------------------------------------------
class _Event:
    """``torch.cuda.Event`` on the host clock (no streams: ``record`` takes the time at once)."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False):
        self._t: float | None = None

    def record(self, stream=None) -> None:
        self._t = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def query(self) -> bool:
        return True

    def wait(self, stream=None) -> None:
        pass

    def elapsed_time(self, end: "_Event") -> float:
        if self._t is None or end._t is None:
            raise RuntimeError("Both events must be recorded before calculating elapsed time.")
        return (end._t - self._t) * 1e3


_PROPERTIES = types.SimpleNamespace(name="simulated CUDA (CPU)", major=7, minor=5,
                                    total_memory=_T4_MEMORY, multi_processor_count=40)
_CUDA_PATCH: dict[str, Callable] = {
    "is_available": lambda: True,
    "device_count": lambda: 1,
    "current_device": lambda: 0,
    "get_device_name": lambda device=None: _PROPERTIES.name,
    "get_device_capability": lambda device=None: (_PROPERTIES.major, _PROPERTIES.minor),
    "get_device_properties": lambda device=None: _PROPERTIES,
    "synchronize": lambda device=None: None,
    "empty_cache": lambda: None,
    "memory_allocated": lambda device=None: 0,
    "max_memory_allocated": lambda device=None: 0,
    "memory_reserved": lambda device=None: 0,
    "max_memory_reserved": lambda device=None: 0,
    "reset_peak_memory_stats": lambda device=None: None,
    "reset_max_memory_allocated": lambda device=None: None,
    "mem_get_info": lambda device=None: (_T4_MEMORY, _T4_MEMORY),
    "Event": _Event,
}

_state_lock = threading.Lock()
_depth = 0
_saved: dict[str, Any] = {}


def _patch_script_call() -> Callable:
    cls = torch.jit.RecursiveScriptModule
    original = cls.__call__

    def call(self, *args, **kwargs):
        tensors: list = []
        _collect(args, tensors)
        _collect(tuple(kwargs.values()), tensors)
        on = any(isinstance(t, _Marked) for t in tensors)
        if on and any(not isinstance(t, _Marked) and t.dim() > 0 for t in tensors):
            raise RuntimeError(_MIXED.format(type(self).__name__))
        out = original(self, *args, **kwargs)
        if on:
            _mark_all(out)
        return out

    cls.__call__ = call
    return original


def _enter() -> None:
    global _depth
    with _state_lock:
        _depth += 1
        if _depth > 1:
            return
        _saved["cuda"] = {k: getattr(torch.cuda, k) for k in _CUDA_PATCH}
        for k, v in _CUDA_PATCH.items():
            setattr(torch.cuda, k, v)
        _saved["Generator"] = torch.Generator
        torch.Generator = _Generator  # type: ignore[misc]
        _saved["script_call"] = _patch_script_call()
        try:
            import e3nn
        except ImportError:
            _saved["e3nn"] = None
        else:
            _saved["e3nn"] = e3nn.get_optimization_defaults()
            e3nn.set_optimization_defaults(jit_script_fx=False)


def _exit() -> None:
    global _depth
    with _state_lock:
        _depth -= 1
        if _depth > 0:
            return
        for k, v in _saved["cuda"].items():
            setattr(torch.cuda, k, v)
        torch.Generator = _saved["Generator"]  # type: ignore[misc]
        torch.jit.RecursiveScriptModule.__call__ = _saved["script_call"]
        if _saved["e3nn"] is not None:
            import e3nn

            e3nn.set_optimization_defaults(**_saved["e3nn"])
        _saved.clear()


def active() -> bool:
    """True while a :func:`simulated_cuda` context is open (in any thread)."""
    return _depth > 0


class _SimulatedCuda:
    """The context manager :func:`simulated_cuda` returns (a class, so that a context entered
    with ``__enter__()`` alone stays open until ``__exit__``, even when no reference is kept)."""

    def __init__(self) -> None:
        self._mode: _Mode | None = None

    def __enter__(self) -> torch.device:
        if self._mode is not None:
            raise RuntimeError("this simulated_cuda() context is already open")
        _enter()
        self._mode = _Mode()
        self._mode.__enter__()
        return _CUDA

    def __exit__(self, *exc) -> None:
        mode, self._mode = self._mode, None
        if mode is not None:
            try:
                mode.__exit__(*exc)
            finally:
                _exit()


def simulated_cuda() -> _SimulatedCuda:
    r"""Simulate one CUDA device on the CPU build of torch; ``with`` yields ``torch.device("cuda", 0)``.

    Inside the block, :func:`invlatent.default_device` and ``torch.cuda.is_available()`` say
    CUDA; tensors and modules moved there keep their data on the CPU but behave like CUDA tensors
    in everything that concerns devices (see :mod:`invlatent._simulated_cuda` for the rules and
    for what it cannot simulate: memory, speed, streams, CUDA's numerics and random streams).
    Device bugs surface as the errors CUDA raises:

    * an op mixing a CUDA tensor with a CPU tensor that is not a 0-dim scalar:
      ``RuntimeError: Expected all tensors to be on the same device``;
    * ``.numpy()`` of a CUDA tensor: ``TypeError``;
    * a generator on the other device than the tensor it fills: ``RuntimeError``.

    Code that is consistent about devices gives the same numbers as on the CPU.
    Contexts nest. ``simulated_cuda().__enter__()`` opens one for the rest of a notebook kernel
    (``tools/run_chapter.py --simulated-cuda`` does this).

    Example
    -------
    >>> import torch
    >>> from invlatent.testing import simulated_cuda
    >>> with simulated_cuda() as dev:
    ...     lin = torch.nn.Linear(3, 2).to(dev)
    ...     y = lin(torch.randn(5, 3, device=dev))
    ...     (y.device, lin.weight.device, y.cpu().device)
    (device(type='cuda', index=0), device(type='cuda', index=0), device(type='cpu'))
    """
    return _SimulatedCuda()
