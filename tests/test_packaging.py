"""The repository's promises: two README commands, CI, conda env == pyproject, Colab copies in sync."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import chapters  # noqa: E402


def _name(req: str) -> str:
    return re.split(r"[<>=!~;\[ @]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


CORE = {"torch", "numpy", "scipy", "e3nn", "scikit-learn", "pandas", "matplotlib", "tqdm", "safetensors"}


def _expand(reqs, extras) -> list[str]:
    """Requirements with the package's own extras (``invlatent[a,b]``) replaced by their contents."""
    out = []
    for r in reqs:
        if _name(r) == "invlatent":
            for extra in re.search(r"\[(.*)\]", r).group(1).split(","):
                out += _expand(extras[extra.strip()], extras)
        else:
            out.append(r)
    return out


def test_pyproject_core_is_lean_and_extras_hold_the_rest():
    proj = _pyproject()["project"]
    deps = {_name(d): d for d in proj["dependencies"]}
    assert set(deps) == CORE, f"core dependencies must be exactly {sorted(CORE)}, got {sorted(deps)}"
    assert deps["torch"].replace(" ", "") == "torch>=2.2", "torch must stay a range so Colab keeps its own build"
    extras = proj["optional-dependencies"]
    names = {k: {_name(d) for d in v} for k, v in extras.items()}
    assert {"rdkit", "qm9pack", "torch-geometric", "networkx"} <= names["molecules"]
    assert "mlxtend" in names["images"]
    assert [d.replace(" ", "") for d in extras["models"]] == ["sevenn==0.13.0"]
    assert {"lapx", "faiss-cpu"} <= names["fast"]
    assert [d.replace(" ", "") for d in extras["so3lr"]] == ["so3krates-torch==0.2.1"]
    assert [d.replace(" ", "") for d in extras["e2cnn"]] == ["e2cnn==0.2.3"]
    book = {_name(d): d for d in _expand(extras["book"], extras)}
    for extra in ("molecules", "images", "models", "fast", "so3lr", "e2cnn"):
        assert names[extra] <= set(book), f"[book] lacks the {extra} extra"
    assert book["jupyter-book"].replace(" ", "") == "jupyter-book>=1.0.4,<2"
    assert {"jupytext", "sphinx-mathjax-offline", "sphinxcontrib-bibtex"} <= set(book)
    test = {_name(d): d for d in extras["test"]}
    assert {"pytest", "nbval", "hypothesis", "jupytext"} <= set(test)
    assert re.fullmatch(r"mypy==[0-9.]+", test["mypy"].replace(" ", "")), "the type checker must be pinned"
    assert _pyproject()["project"]["scripts"]["invlatent"] == "invlatent.cli:main"


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    env_reqs = {_name(r): r.replace(" ", "") for r in pip if not r.startswith("-e")}
    proj = _pyproject()["project"]
    extras = proj["optional-dependencies"]
    want = list(proj["dependencies"]) + _expand(extras["book"], extras) + extras["test"]
    want_reqs = {_name(r): r.replace(" ", "") for r in want}
    assert env_reqs == want_reqs, (
        f"environment.yml and pyproject.toml disagree: only in env {sorted(set(env_reqs.items()) - set(want_reqs.items()))}, "
        f"only in pyproject {sorted(set(want_reqs.items()) - set(env_reqs.items()))}"
    )
    assert "-e ." in pip


def test_readme_starts_with_the_two_commands_and_ci_calls_the_test_one():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no command block"
    commands = [line.strip() for line in blocks[0].splitlines() if line.strip() and not line.strip().startswith("#")]
    assert commands == ["make book", "make test"], commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\s*(exec\s+)?make test\s*$", ci, flags=re.M), ".ci/run must call the README's test command"
    make = (ROOT / "Makefile").read_text()
    for target in ("book:", "test:", "unit:", "nbval:", "book-check:", "prose:", "code-width:",
                   "browser:", "portability:"):
        assert target in make
    test_line = re.search(r"^test:.*\n\t(.*)$", make, flags=re.M).group(1)
    for target in ("unit", "prose", "code-width", "nbval", "book-check", "browser"):
        assert f" {target}" in test_line, f"make test does not run {target}"
    # the four-combination portability run is separate: `make test` must not grow by four suites
    test_recipe = re.search(r"^test:.*\n(?:\t.*\n)*", make, flags=re.M).group(0)
    assert "portability" not in test_recipe and "ATEN_CPU_CAPABILITY=$$cap" in make
    assert "torch==2.13.0" in make and "nvidia-smi" in make


def test_every_toc_file_exists_and_chapters_assert():
    files = chapters.toc_files()
    assert files[0].name == "intro.md"
    code = chapters.chapters()
    assert code, "no chapter runs code"
    for ch in code:
        text = ch.read_text()
        assert "assert" in text, f"{ch} runs code but asserts nothing"
        assert "get_profile()" in text, f"{ch} must print the profile it runs at"


def test_toc_has_the_parts_in_order():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    captions = [p["caption"] for p in toc["parts"]]
    order = ["Foundations", "Molecules", "Images", "Beyond the paper", "Appendix"]
    present = [c for c in order if c in captions]
    assert captions == present, f"parts out of order or unknown: {captions}"
    assert captions[0] == "Foundations" and captions[-1] == "Appendix"


def test_colab_notebooks_are_in_sync():
    problems = chapters.stale_colab(ROOT / "notebooks")
    assert not problems, "\n".join(problems)


def test_colab_install_cell_is_guarded_and_keeps_torch():
    lessons = chapters.lesson_chapters()
    assert len(lessons) >= 6 and all("appendix" not in str(p) for p in lessons)
    for ch in lessons:
        nb = chapters.colab_notebook(ch)
        first_code = next(c for c in nb["cells"] if c["cell_type"] == "code")
        src = "".join(first_code["source"])
        assert "import google.colab" in src and "except ImportError:" in src
        assert "torch=={torch.__version__}" in src and '"-c", pin.name' in src, "the install must pin Colab's own torch"
        assert f'or "invlatent=={chapters._version()}"' in src, "by default Colab installs this version by name"
        # outside Colab the cell is a no-op
        ns: dict = {}
        exec(compile(src, "colab-cell", "exec"), ns)


def test_config_is_jupyter_book_1_and_offline():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["only_build_toc_files"] is True
    assert cfg["execute"]["allow_errors"] is False
    assert isinstance(cfg["execute"]["timeout"], int) and cfg["execute"]["timeout"] > 30
    assert "sphinx-mathjax-offline" in cfg["sphinx"]["extra_extensions"]
    assert cfg["bibtex_bibfiles"] == ["book/references.bib"]
    macros = cfg["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]
    assert {"G", "Sn", "SO", "R", "quot"} <= set(macros)


def test_every_citation_has_a_bib_entry():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"^@\w+\{([^,]+),", bib, flags=re.M))
    assert len(keys) == len(re.findall(r"^@\w+\{", bib, flags=re.M)), "duplicate bibliography keys"
    for src in chapters.toc_files():
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", src.read_text()):
            for key in group.split(","):
                assert key.strip() in keys, f"{src.name} cites unknown key {key.strip()!r}"


def test_package_has_no_network_at_import():
    code = (
        "import socket\n"
        "def deny(*a, **k):\n    raise RuntimeError('network used at import')\n"
        "socket.socket.connect = deny\nsocket.create_connection = deny\n"
        "import invlatent\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


PUBLIC_SUBPACKAGES = ("invlatent.groups", "invlatent.audit", "invlatent.projections", "invlatent.quotient",
                      "invlatent.probes", "invlatent.molecules", "invlatent.images", "invlatent.models",
                      "invlatent.data", "invlatent.book")


def _api_page_members() -> dict[str, object]:
    """``name -> object`` for everything the API page documents: each ``automodule`` with ``:members:``
    documents its module's ``__all__`` (autodoc's rule), or its public names defined there when it has none;
    ``autofunction``/``autoclass`` entries document one name each."""
    import importlib
    import inspect

    page = (ROOT / "book" / "appendix" / "api.md").read_text()
    out: dict[str, list] = {}
    for block in re.finditer(r"\.\. automodule:: (\S+)\n((?:   .*\n)*)", page):
        mod = importlib.import_module(block.group(1))
        if ":members:" not in block.group(2):
            continue
        names = getattr(mod, "__all__", None)
        if names is None:
            names = [n for n, v in vars(mod).items() if not n.startswith("_")
                     and getattr(v, "__module__", None) == mod.__name__ and (inspect.isfunction(v) or inspect.isclass(v))]
        for n in names:
            out.setdefault(n, []).append(getattr(mod, n))
    for kind, path in re.findall(r"\.\. auto(function|class|data):: (\S+)", page):
        mod, _, n = path.rpartition(".")
        out.setdefault(n, []).append(getattr(importlib.import_module(mod), n))
    return out


def test_api_reference_covers_every_public_name():
    """Every name of ``invlatent.__all__`` and of each public subpackage's ``__all__`` is documented on
    the API page (the same object, not just the same name). The README only links the page."""
    import importlib

    import invlatent

    documented = _api_page_members()
    missing = []
    for pkg in ("invlatent",) + PUBLIC_SUBPACKAGES:
        mod = importlib.import_module(pkg)
        for name in mod.__all__:
            if name == "__version__":
                continue
            obj = getattr(mod, name)
            if not any(o is obj for o in documented.get(name, [])):
                missing.append(f"{pkg}.{name}")
    assert not missing, f"book/appendix/api.md does not document {missing}"
    readme = (ROOT / "README.md").read_text()
    assert "book/appendix/api.md" in readme and "| `sort_projection`" not in readme, \
        "README links the API reference instead of repeating it"
    assert invlatent.__all__


def test_api_reference_page_documents_every_public_module():
    import invlatent

    page = (ROOT / "book" / "appendix" / "api.md").read_text()
    modules = {getattr(invlatent, name).__module__ for name in invlatent.__all__
               if name != "__version__" and hasattr(getattr(invlatent, name), "__module__")}
    # names re-exported from a package's __init__ are documented with that package
    missing = sorted(m for m in modules if f"automodule:: {m}" not in page
                     and f"automodule:: {m.rsplit('.', 1)[0]}" not in page)
    assert not missing, f"book/appendix/api.md lacks automodule sections for {missing}"
