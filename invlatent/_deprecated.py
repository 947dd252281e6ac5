"""Old module paths, kept for one release: each import (or attribute access) warns and gives the new module.

``import invlatent.diagnostics`` returns :mod:`invlatent.probes._diagnostics` itself (the same
module object, so ``from invlatent.diagnostics import x`` is ``invlatent.probes.x``), with a
``DeprecationWarning`` naming the new path. The finder below answers only for the names in
:data:`MOVED`; nothing else goes through it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import FrameType

__all__ = ["MOVED", "install", "warn_moved"]

#: old module path -> (module that holds it now, public path to use instead)
MOVED: dict[str, tuple[str, str]] = {
    "invlatent.diagnostics": ("invlatent.probes._diagnostics", "invlatent.probes"),
    "invlatent.orbits": ("invlatent.probes._orbits", "invlatent.probes"),
    "invlatent.sklearn": ("invlatent.probes._sklearn", "invlatent.probes"),
    "invlatent.chem": ("invlatent.probes._chem", "invlatent.probes"),
    "invlatent.frames": ("invlatent.projections._frames", "invlatent.projections"),
    "invlatent.relative": ("invlatent.projections._relative", "invlatent.projections"),
    "invlatent.streaming": ("invlatent.projections._streaming", "invlatent.projections"),
    "invlatent.projections.sort": ("invlatent.projections._sort", "invlatent.projections"),
    "invlatent.projections.align": ("invlatent.projections._align", "invlatent.projections"),
    "invlatent.projections.maxfilter": ("invlatent.projections._maxfilter", "invlatent.projections"),
    "invlatent.projections.reynolds": ("invlatent.projections._reynolds", "invlatent.projections"),
    "invlatent.projections.spectral": ("invlatent.projections._spectral", "invlatent.projections"),
    "invlatent.projections.irreps": ("invlatent.projections._irrep_invariants", "invlatent.projections"),
}

# frames of the import machinery and of this file are skipped, so the warning points at the
# user's import line (and Python's default filter shows it there, in __main__ and notebooks)
_SKIP = ("<frozen importlib", __file__)


def warn_moved(old: str):
    """Warn that ``old`` moved, and return the module it names now."""
    new, public = MOVED[old]
    message = f"{old} is deprecated and will be removed in the next release: import from {public} instead"
    warnings.warn(message, DeprecationWarning, stacklevel=_user_stacklevel())
    return importlib.import_module(new)


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside the import machinery and this file."""
    frame: FrameType | None = sys._getframe(2)
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(_SKIP):
        frame, level = frame.f_back, level + 1
    return level


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old path as the module that holds its code now (same object)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        module = warn_moved(spec.name)
        self._specs = getattr(self, "_specs", {})
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module):
        # the import system set module.__spec__ to the alias's spec: give the module its own back
        spec = self._specs.pop(module.__spec__.name, None)
        if spec is not None:
            module.__spec__ = spec


_FINDER = _Alias()


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_FINDER)
