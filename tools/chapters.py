#!/usr/bin/env python
"""Chapter tooling: list the book's chapters, convert them for nbval, make the Colab copies.

Usage::

    python tools/chapters.py list                  # chapters (from _toc.yml) that run code
    python tools/chapters.py to-ipynb DIR          # jupytext -> DIR/<name>.ipynb (for nbval)
    python tools/chapters.py to-ipynb --simulated-cuda DIR   # the same, on a simulated CUDA device
    python tools/chapters.py colab DIR             # write the Colab notebooks into DIR
    python tools/chapters.py check-colab DIR       # exit 1 if any Colab notebook is stale
    python tools/chapters.py run CHAPTER.md [--show] [--simulated-cuda]  # execute one chapter here
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _version() -> str:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


#: What Colab installs by default: this version of invlatent, by name, from the package index.
#: (Until that version is uploaded, set INVLATENT_PIP_SOURCE in Colab; see the README.)
COLAB_SOURCE = f"invlatent=={_version()}"

#: The default extras of :func:`colab_install_cell` (the lessons' data sets); each notebook
#: installs only what its chapter needs (:func:`colab_requirements`).
COLAB_EXTRAS = "molecules,images"

#: Modules a chapter may import that a Colab runtime has without any install of ours.
COLAB_HAS = {"IPython", "google", "threadpoolctl"}


def colab_install_cell(extras: str = COLAB_EXTRAS, packages: tuple[str, ...] = ()) -> str:
    """The first code cell of every Colab notebook: installs invlatent with ``extras`` (comma-separated,
    may be empty) and the pip requirements ``packages`` that no extra provides."""
    what = (f"with the extras [{extras}]" if extras else "(no extras)") + \
        (f", and {', '.join(packages)}" if packages else "")
    bracket = f"[{extras}]" if extras else ""
    return f'''\
# Colab only: install invlatent ({COLAB_SOURCE}) {what}; elsewhere this cell does nothing.
# torch is pinned to the version Colab already has, so pip never replaces Colab's CUDA build.
# The profile: with a GPU runtime (Runtime > Change runtime type) the chapter runs at `gpu`, else at
# `cpu`; set os.environ["INVLATENT_PROFILE"] before the chapter's cells to choose another.
# To install from elsewhere, first set os.environ["INVLATENT_PIP_SOURCE"] to a wheel file, a source
# folder or a VCS URL (e.g. "git+https://<your fork>.git").
import importlib
import sys
try:
    import google.colab  # noqa: F401  (present only in Colab)
except ImportError:
    pass
else:
    import os
    import subprocess
    import tempfile
    import torch

    source = os.environ.get("INVLATENT_PIP_SOURCE", "").strip() or "{COLAB_SOURCE}"
    extras = "{bracket}"
    # what the chapter imports that no extra of invlatent holds
    packages = {list(packages)!r}
    if os.path.exists(source):                      # a wheel or a source folder
        requirement = f"{{source}}{{extras}}"
    elif "://" in source:                           # a VCS URL
        requirement = f"invlatent{{extras}} @ {{source}}"
    elif source.startswith("invlatent"):            # by name, e.g. invlatent==<version>
        requirement = f"invlatent{{extras}}" + source[len("invlatent"):]
    else:
        requirement = source
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as pin:
        pin.write(f"torch=={{torch.__version__}}\\n")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", pin.name, requirement, *packages],
                         capture_output=True, text=True)
    importlib.invalidate_caches()
    if pip.returncode == 0:
        from importlib.metadata import version
        now = version("torch")
        kept = "Colab's own, unchanged" if now == torch.__version__ else f"was {{torch.__version__}}: restart the runtime"
        print(f"installed invlatent {{version('invlatent')}} from {{source}}; torch {{now}} ({{kept}})")
    else:
        print("\\n".join(pip.stderr.strip().splitlines()[-5:]))
        print(f"Could not install invlatent from {{source!r}} (pip exit code {{pip.returncode}}; its last lines are above).\\n"
              "If that version is not on the package index (yet), install from elsewhere: upload a wheel built\\n"
              "with `make dist` (or a copy of the source), set os.environ['INVLATENT_PIP_SOURCE'] to its path\\n"
              "(or to a VCS URL of a repository you host) and run this cell again.")'''


COLAB_INSTALL_CELL = colab_install_cell()


#: invlatent's extras that Colab may install, in the order the install cell names them
_EXTRA_ORDER = ("molecules", "images", "models", "so3lr", "e2cnn", "fast")


def _pyproject_requirements() -> tuple[set[str], dict[str, str], dict[str, str]]:
    """Distribution names of the core install, ``{distribution: extra}`` of invlatent's extras,
    and ``{distribution: requirement}`` of every other requirement of the book extra."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def name(req: str) -> str:
        return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", req).group()).lower()

    core = {name(r) for r in project["dependencies"]}
    extras, book = {}, {}
    for extra, reqs in project["optional-dependencies"].items():
        for r in reqs:
            if name(r) == "invlatent":
                continue
            if extra in _EXTRA_ORDER:
                extras[name(r)] = extra
            elif extra == "book":
                book[name(r)] = r
    return core, extras, book


def _chapter_imports(chapter: Path) -> tuple[set[str], set[tuple[str, str]]]:
    """Top-level modules the chapter's code imports, and the ``(invlatent module, name)`` pairs
    it uses (``from invlatent.x import name``, ``invlatent.name``)."""
    import ast

    from invlatent.profiles import _code_cells

    modules, names = set(), set()
    for src in _code_cells(chapter.read_text()):
        tree = ast.parse(src)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
                if node.module.split(".")[0] == "invlatent":
                    names |= {(node.module, a.name) for a in node.names}
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "invlatent":
                names.add(("invlatent", node.attr))
    return modules, names


_DECLARED_EXTRA = re.compile(
    r"""(?:needs|require)\(\s*["'](\w+)["']|the '(\w+)' extra|^EXTRA\s*=\s*["'](\w+)["']""", re.M)


def colab_requirements(chapter: Path) -> tuple[str, tuple[str, ...]]:
    """``(extras, packages)`` the Colab copy of ``chapter`` installs: the invlatent extras whose
    packages it imports or that a package function it uses declares (``@needs``/``require``), and
    the pip requirements (from the book extra) of what else it imports beyond the core install.
    An import that nothing provides is an error, so a new dependency is decided here."""
    import importlib.util
    import inspect
    from importlib.metadata import packages_distributions

    core, extras_of, book = _pyproject_requirements()
    providers = packages_distributions()
    modules, names = _chapter_imports(chapter)
    extras, packages = set(), set()
    for mod in sorted(modules - set(sys.stdlib_module_names) - COLAB_HAS - {"invlatent"}):
        dists = {re.sub(r"[-_.]+", "-", d).lower() for d in providers.get(mod, [])}
        if dists & core:
            continue
        if dists & extras_of.keys():
            extras |= {extras_of[d] for d in dists & extras_of.keys()}
        elif dists & book.keys():
            packages |= {book[d] for d in dists & book.keys()}
        else:
            raise ValueError(f"{chapter.name} imports {mod!r}, which neither invlatent's requirements nor "
                             "Colab provide: add it to the book extra in pyproject.toml (or to COLAB_HAS)")
    for module, name in sorted(names):
        obj = getattr(importlib.import_module(module), name, None)
        if obj is None and importlib.util.find_spec(f"{module}.{name}") is not None:
            obj = importlib.import_module(f"{module}.{name}")  # a submodule not yet imported
        source = inspect.getmodule(obj) if obj is not None and not inspect.ismodule(obj) else obj
        if getattr(source, "__file__", None):
            found = _DECLARED_EXTRA.findall(Path(source.__file__).read_text())
            extras |= {e for pair in found for e in pair if e in set(extras_of.values())}
    return ",".join(e for e in _EXTRA_ORDER if e in extras), tuple(sorted(packages))


def colab_extras(chapter: Path) -> str:
    """The extras the Colab copy of ``chapter`` installs (see :func:`colab_requirements`)."""
    return colab_requirements(chapter)[0]


def toc_names(root: Path = ROOT) -> list[str]:
    """The ``file`` entries of ``root/_toc.yml`` in order, the root page first."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                names.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return names


def toc_files() -> list[Path]:
    """Every file listed in _toc.yml (root first), as paths of existing sources."""
    names = toc_names()
    out = []
    for name in names:
        for ext in (".md", ".ipynb", ""):
            p = ROOT / f"{name}{ext}"
            if p.is_file():
                out.append(p)
                break
        else:
            raise FileNotFoundError(f"_toc.yml lists {name!r} but no such file exists")
    return out


def chapters() -> list[Path]:
    """The toc files that run code (contain a ``{code-cell}``)."""
    return [p for p in toc_files() if "```{code-cell}" in p.read_text()]


def _read(path: Path):
    import jupytext

    return jupytext.read(path)


SIMULATED_CUDA_CELL = """\
# --simulated-cuda: this kernel runs on invlatent's simulated CUDA device (a CPU build of torch
# playing CUDA, so that tensors left on the wrong device raise what CUDA raises)
from invlatent.testing import simulated_cuda as _simulated_cuda

_simulated_cuda().__enter__()"""


def with_simulated_cuda(nb):
    """``nb`` with a first code cell that opens :func:`invlatent.testing.simulated_cuda` for the
    whole kernel (tagged ``remove-cell``: it is a test harness, not part of the lesson)."""
    import nbformat

    cell = nbformat.v4.new_code_cell(SIMULATED_CUDA_CELL, metadata={"tags": ["remove-cell"]})
    if nb.cells and "id" not in nb.cells[0]:
        cell.pop("id", None)
    nb.cells.insert(0, cell)
    return nb


def to_ipynb(outdir: Path, simulated_cuda: bool = False) -> list[Path]:
    import jupytext

    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for ch in chapters():
        nb = _read(ch)
        if simulated_cuda:
            nb = with_simulated_cuda(nb)
        target = outdir / f"{ch.stem}.ipynb"
        jupytext.write(nb, target)
        written.append(target)
    return written


def lesson_chapters() -> list[Path]:
    """Chapters that get a Colab copy: every code chapter except the intro page (its profile
    table reads the chapters' sources) and the appendix (whose Performance page reads the
    repository's recorded benchmark JSON, absent in a pip install)."""
    root = toc_files()[0]
    return [p for p in chapters() if p != root and "appendix" not in p.relative_to(ROOT).parts]


def colab_notebook(chapter: Path) -> dict:
    """The Colab notebook of ``chapter`` as a JSON-ready dict (deterministic)."""
    import jupytext
    import nbformat

    nb = _read(chapter)
    nb = copy.deepcopy(nb)
    install = nbformat.v4.new_code_cell(colab_install_cell(*colab_requirements(chapter)))
    install.metadata["tags"] = ["colab-install"]
    note = nbformat.v4.new_markdown_cell(
        f"*Generated from `{chapter.relative_to(ROOT).as_posix()}` by `make colab`; "
        "edit the chapter, not this notebook.*"
    )
    nb.cells = [note, install] + list(nb.cells)
    nb.metadata.pop("jupytext", None)
    nb.metadata["colab"] = {"provenance": []}
    nb.metadata["accelerator"] = "GPU"
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
        if cell.cell_type == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    text = jupytext.writes(nb, fmt="ipynb")
    return json.loads(text)


def colab_path(chapter: Path, outdir: Path) -> Path:
    return outdir / f"{chapter.stem}.ipynb"


def write_colab(outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    wanted = set()
    for ch in lesson_chapters():
        target = colab_path(ch, outdir)
        target.write_text(json.dumps(colab_notebook(ch), indent=1, sort_keys=True) + "\n")
        written.append(target)
        wanted.add(target.name)
    for stale in outdir.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    return written


def stale_colab(outdir: Path) -> list[str]:
    """Problems with the Colab notebooks in ``outdir`` (empty list: all up to date)."""
    problems = []
    wanted = set()
    for ch in lesson_chapters():
        target = colab_path(ch, outdir)
        wanted.add(target.name)
        if not target.is_file():
            problems.append(f"{target} is missing (run `make colab`)")
            continue
        if json.loads(target.read_text()) != colab_notebook(ch):
            problems.append(f"{target} is out of date with {ch.relative_to(ROOT)} (run `make colab`)")
    for extra in outdir.glob("*.ipynb"):
        if extra.name not in wanted:
            problems.append(f"{extra} has no chapter in _toc.yml (run `make colab`)")
    return problems


def run(chapter: Path, show: bool = False, simulated_cuda: bool = False) -> None:
    """Execute one chapter in this Python (like nbval does), printing cell errors.

    The executed notebook is written to ``build/executed/<name>.ipynb``; ``show=True`` also
    prints every cell's text output; ``simulated_cuda=True`` runs the whole kernel inside
    :func:`invlatent.testing.simulated_cuda` (the profile is then ``gpu`` unless
    ``INVLATENT_PROFILE`` says otherwise).
    """
    import time

    import nbformat
    from nbclient import NotebookClient

    nb = _read(chapter)
    if simulated_cuda:
        nb = with_simulated_cuda(nb)
    nb = nbformat.from_dict(nb)
    client = NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(chapter.parent)}})
    t0 = time.perf_counter()
    client.execute()
    print(f"{chapter}: executed {sum(c.cell_type == 'code' for c in nb.cells)} code cells in {time.perf_counter() - t0:.1f} s")
    from datetime import datetime

    timings = []
    for i, cell in enumerate(nb.cells):
        ex = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in ex and "shell.execute_reply" in ex:
            t = (datetime.fromisoformat(ex["shell.execute_reply"].rstrip("Z"))
                 - datetime.fromisoformat(ex["iopub.execute_input"].rstrip("Z"))).total_seconds()
            timings.append((t, i, cell.source.splitlines()[0][:60] if cell.source else ""))
    for t, i, head in sorted(timings, reverse=True)[:5]:
        print(f"  cell {i:3d}: {t:7.1f} s  {head}")
    out = ROOT / "build" / "executed"
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / f"{chapter.stem}.ipynb")
    if show:
        for cell in nb.cells:
            for o in cell.get("outputs", []):
                if o.get("output_type") == "stream" and o.get("name") == "stdout":
                    print(o["text"], end="")
    problems = glue_problems(nb, chapter.read_text())
    for problem in problems:
        print(f"{chapter}: {problem}")
    if problems:
        raise SystemExit(1)


_GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([A-Za-z_][\w]*)")


def glue_problems(nb, source: str) -> list[str]:
    """What the book build would warn about the glue of an executed chapter.

    A key glued twice (Sphinx warns "glue key ... duplicate", which fails ``-W`` builds) and a
    ``{glue:text}`key``` role whose key no cell glued.
    """
    from collections import Counter

    seen = Counter(
        o["metadata"]["scrapbook"]["name"]
        for cell in nb.cells
        for o in cell.get("outputs", [])
        if "name" in o.get("metadata", {}).get("scrapbook", {})
    )
    problems = [f"glue key {k!r} glued {n} times" for k, n in seen.items() if n > 1]
    missing = sorted(set(_GLUE_ROLE.findall(source)) - set(seen))
    problems += [f"glue key {k!r} used in the prose but never glued" for k in missing]
    return problems


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    cmd, *rest = argv
    if cmd == "list":
        for ch in chapters():
            print(ch.relative_to(ROOT))
        return 0
    sim = "--simulated-cuda" in rest
    rest = [r for r in rest if r != "--simulated-cuda"]
    if cmd == "to-ipynb" and len(rest) == 1:
        for p in to_ipynb(Path(rest[0]), simulated_cuda=sim):
            print(p)
        return 0
    if cmd == "colab" and len(rest) == 1:
        for p in write_colab(ROOT / rest[0]):
            print(p.relative_to(ROOT))
        return 0
    if cmd == "check-colab" and len(rest) == 1:
        problems = stale_colab(ROOT / rest[0])
        print("\n".join(problems) or "Colab notebooks are up to date")
        return 1 if problems else 0
    if cmd == "run" and len(rest) in (1, 2) and rest[0] != "--show":
        run(Path(rest[0]).resolve(), show="--show" in rest, simulated_cuda=sim)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
