"""The package's layout: what a reader of ``invlatent`` and of the book may rely on.

* the chapters import public names only (nothing from a private ``_x`` module), so code copied
  from a chapter depends only on what the package promises to keep;
* the chapters' helpers (:mod:`invlatent.book`) are in no library namespace's ``__all__``;
* the package's comments name no issue numbers (the code says what it does; the CHANGELOG says
  when it changed).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(p for p in (ROOT / "book").rglob("*.md") if "_build" not in p.parts)
#: every library namespace: the top level and its public subpackages (not the book's helpers)
LIBRARY = ("invlatent", "invlatent.groups", "invlatent.audit", "invlatent.projections", "invlatent.quotient",
           "invlatent.probes", "invlatent.molecules", "invlatent.images", "invlatent.data", "invlatent.models",
           "invlatent.io", "invlatent.utils", "invlatent.testing")
_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def private_imports(source: str) -> list[str]:
    """The ``invlatent`` modules with a private part (``_x``) that ``source`` imports from."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        else:
            continue
        out += [m for m in modules if m.split(".")[0] == "invlatent"
                and any(part.startswith("_") for part in m.split(".")[1:])]
    return out


def _cells(path: Path) -> list[str]:
    """The Python of each code cell: its options (a ``---`` block or ``:key: value`` lines) and
    IPython magics or shell lines blanked."""
    out = []
    for cell in _CELL.findall(path.read_text()):
        cell = re.sub(r"\A---\n.*?^---\n", "", cell, flags=re.S | re.M)
        cell = re.sub(r"^(\s*[%!].*|:\w[\w-]*:.*)$", "", cell, flags=re.M)
        out.append(cell)
    return out


def test_private_import_finder_sees_both_forms():
    """Sanity check of the finder on planted lines (and none on public ones)."""
    assert private_imports("from invlatent.probes._separation import x") == ["invlatent.probes._separation"]
    assert private_imports("import invlatent._fft_correlation as f") == ["invlatent._fft_correlation"]
    assert private_imports("from invlatent.book import x\nimport invlatent\nfrom invlatent import _x") == []


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT / "book")))
def test_chapters_import_public_names_only(chapter):
    found = [m for cell in _cells(chapter) for m in private_imports(cell)]
    assert not found, f"{chapter.name} imports private modules {found}: import the public name instead"


def _imported_names(source: str) -> list[tuple[str, str]]:
    """``(module, name)`` of every ``from invlatent... import name`` in ``source``."""
    return [(node.module, a.name) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom) and node.module and not node.level
            and node.module.split(".")[0] == "invlatent" for a in node.names]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT / "book")))
def test_chapters_import_current_names_only(chapter):
    """Every name a chapter imports from a package is in that package's ``__all__`` (or is one of
    its modules): a moved name still imports, with a warning that would land in the built page."""
    stale = []
    for cell in _cells(chapter):
        for module, name in _imported_names(cell):
            mod = importlib.import_module(module)
            public = getattr(mod, "__all__", None)
            if public is None or name in public or importlib.util.find_spec(f"{module}.{name}") is not None:
                continue
            stale.append(f"{module}.{name}")
    assert not stale, f"{chapter.name} imports names its package no longer exports: {stale}"


@pytest.mark.parametrize("namespace", LIBRARY)
def test_no_book_helper_in_a_library_namespace(namespace):
    import invlatent.book

    helpers = set(invlatent.book.__all__)
    exported = set(getattr(importlib.import_module(namespace), "__all__", ()))
    assert not helpers & exported, f"{namespace}.__all__ exports the book's helpers {sorted(helpers & exported)}"


def test_no_issue_numbers_in_the_package():
    """No comment and no docstring of ``invlatent/`` names an issue."""
    found = []
    for path in sorted((ROOT / "invlatent").rglob("*.py")):
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if tok.type in (tokenize.COMMENT, tokenize.STRING) and re.search(r"\bissues?\b", tok.string, re.I):
                found.append(f"{path.relative_to(ROOT)}:{tok.start[0]}")
    assert not found, "issue references in the package: " + ", ".join(found)


def test_no_issue_numbers_in_the_book_or_benchmarks():
    """Readers of the book and of the benchmarks' records do not know the tracker: no chapter, no
    benchmark script and no README names an issue by number."""
    files = [*sorted((ROOT / "book").rglob("*.md")), *sorted((ROOT / "benchmarks").glob("*.py")),
             ROOT / "README.md"]
    found = [f"{path.relative_to(ROOT)}:{n}" for path in files
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\bissues? #?\d+", line, re.I)]
    assert not found, "issue numbers: " + ", ".join(found)


def test_top_level_groups_the_path():
    """``invlatent/__init__.py`` names the five steps and the subpackage of each, in order."""
    import invlatent

    doc = invlatent.__doc__
    steps = ["invlatent.groups", "invlatent.audit", "invlatent.projections", "invlatent.quotient", "invlatent.probes"]
    where = [doc.index(f":mod:`{s}`") for s in steps]
    assert where == sorted(where)
    for s in steps:
        importlib.import_module(s)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT / "book")))
def test_every_included_file_exists(chapter):
    """A ``literalinclude`` of a moved file is a build warning, so it fails here first."""
    text = chapter.read_text()
    paths = re.findall(r"^`{3,}\{literalinclude\} (\S+)", text, flags=re.M)
    missing = [p for p in paths if not (chapter.parent / p).resolve().is_file()]
    assert not missing, f"{chapter.name} includes files that do not exist: {missing}"
