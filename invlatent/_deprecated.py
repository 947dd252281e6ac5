"""Old module paths and moved names, kept for one release: each use warns and gives the new object.

* Modules (:data:`MOVED`): ``import invlatent.diagnostics`` returns
  :mod:`invlatent.probes._diagnostics` itself (the same module object, so
  ``from invlatent.diagnostics import x`` is ``invlatent.probes.x``), with a
  ``DeprecationWarning`` naming the new path. The finder below answers only for the names in
  :data:`MOVED`; nothing else goes through it.
* Names (:data:`MOVED_NAMES`): a package whose names moved elsewhere (``invlatent.probes``,
  ``invlatent``) answers for them from its module ``__getattr__`` through
  :func:`moved_attribute`, which imports the new home by name when the old name is first used
  (so the old package imports nothing of the new home's at import time, and no import circle
  is made).

The old paths are listed in ``CHANGELOG.md``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import FrameType

__all__ = ["MOVED", "MOVED_NAMES", "install", "warn_moved", "moved_attribute"]

#: old module path -> (module that holds it now, public path to use instead)
MOVED: dict[str, tuple[str, str]] = {
    "invlatent.diagnostics": ("invlatent.probes._diagnostics", "invlatent.probes"),
    "invlatent.orbits": ("invlatent.probes._orbits", "invlatent.probes"),
    "invlatent.sklearn": ("invlatent.probes._sklearn", "invlatent.probes"),
    "invlatent.chem": ("invlatent.molecules._chem", "invlatent.molecules"),
    "invlatent.rotations": ("invlatent.images._rotate", "invlatent.images"),
    "invlatent.budget": ("invlatent.book._budget", "invlatent.book"),
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

_BOOK = ("book_vae_settings", "load_book_vae", "curve_flatness", "step_flops", "automorphism_twins", "disconnected",
         "wl_hashes", "map_r2", "pooled_invariants", "regression_scores", "PATH_ROWS", "three_lines", "decode_lines",
         "path_table", "window_all_valid", "equal_step_paths", "path_scores", "mean_ci")
_AUDIT = ("capture_latents", "LatentCapture", "equivariance_audit", "plot_equivariance_audit", "rotation_pairs",
          "fit_basis", "diagnose_basis", "BasisFit")
_CHEM = ("graph_to_mol", "graphs_to_smiles", "canonical_smiles", "generation_metrics", "draw_molecules",
         "valence_decode", "tanimoto")

#: package -> {name that moved out of it: public module that holds it now}
MOVED_NAMES: dict[str, dict[str, str]] = {
    "invlatent.probes": {**dict.fromkeys(_BOOK, "invlatent.book"), **dict.fromkeys(_AUDIT, "invlatent.audit"),
                         **dict.fromkeys(_CHEM, "invlatent.molecules")},
    "invlatent": dict.fromkeys(("get_profile", "by_profile"), "invlatent.book"),
    "invlatent.rotations": {"ImageRotation": "invlatent.groups"},
}


def moved_attribute(package: str, name: str):
    """``package.name`` for a name that moved out of ``package``: warn, and return it from its new home.

    Raises the usual ``AttributeError`` for any other name, so a module ``__getattr__`` can end
    with ``return moved_attribute(__name__, name)``.
    """
    new = MOVED_NAMES.get(package, {}).get(name)
    if new is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    caller = sys._getframe(2).f_code.co_filename  # who called the package's __getattr__
    if not caller.startswith("<frozen importlib"):  # ``from pkg import name`` asks twice: warn once
        warnings.warn(f"{package}.{name} is deprecated and will be removed in the next release: use {new}.{name}",
                      DeprecationWarning, stacklevel=_user_stacklevel())
    return getattr(importlib.import_module(new), name)


# frames of the import machinery, of this file and of a package's ``__getattr__`` are skipped,
# so the warning points at the
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
    while frame is not None and (frame.f_code.co_filename.startswith(_SKIP) or frame.f_code.co_name == "__getattr__"):
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
