"""tools/check_code_width.py on literalinclude excerpts: selected by text, never by line number,
and every line they show fits 88 columns; the resolution agrees with Sphinx's own reader."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "check_code_width.py"
spec = importlib.util.spec_from_file_location("check_code_width_includes", TOOL)
ccw = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = ccw
spec.loader.exec_module(ccw)

SOURCE = '''"""A module the chapter shows."""

import functools


@functools.lru_cache(maxsize=None)
def helper(x, y):
    """Add two numbers.

    A long docstring line: ''' + "d" * 70 + '''
    """
    total = x + y
    # the interesting part starts here
    twice = 2 * total
    return twice


class Box:
    def area(self, w, h):
        """Width times height."""
        value = w * h
        return value
'''


def chapter(tmp_path, options: str, source: str = SOURCE) -> Path:
    """A chapter in tmp_path/book/ that includes tmp_path/pkg/mod.py with ``options``."""
    (tmp_path / "pkg").mkdir(exist_ok=True)
    (tmp_path / "pkg" / "mod.py").write_text(source)
    (tmp_path / "book").mkdir(exist_ok=True)
    page = tmp_path / "book" / "ch.md"
    page.write_text(f"# A chapter\n\nProse.\n\n```{{literalinclude}} ../pkg/mod.py\n{options}\n```\n")
    return page


def problems(page: Path) -> list[tuple[int, str]]:
    return ccw.include_problems(page, page.read_text())


def test_lines_option_fails(tmp_path, capsys):
    page = chapter(tmp_path, ":pyobject: helper\n:lines: 1,7-9")
    (lineno, message), = problems(page)
    assert lineno == 5 and ":lines:" in message
    assert ccw.main([str(page)]) == 1
    assert ":lines: selects by line number" in capsys.readouterr().out
    # the MyST yaml spelling of the options is caught too
    page = chapter(tmp_path, "---\npyobject: helper\nlines: 7-9\n---")
    assert [":lines:" in m for _, m in problems(page)] == [True]


def test_text_markers_pass_and_resolve(tmp_path):
    page = chapter(tmp_path, ":pyobject: helper\n:start-at: total = x + y\n:dedent: 4")
    assert problems(page) == []
    assert ccw.main([str(page)]) == 0
    (_, _, options), = ccw.literal_includes(page.read_text())
    shown = ccw.include_lines(SOURCE, options)
    assert [t for _, t in shown] == ["total = x + y", "# the interesting part starts here",
                                     "twice = 2 * total", "return twice"]
    assert shown[0][0] == SOURCE.splitlines().index("    total = x + y") + 1


def test_long_excerpt_line_fails_and_names_the_source_line(tmp_path):
    # the whole function shows the 88+ column docstring line; starting below it passes
    page = chapter(tmp_path, ":pyobject: helper")
    (lineno, message), = problems(page)
    src_line = next(i for i, t in enumerate(SOURCE.splitlines(), 1) if "ddd" in t)
    assert lineno == 5 and f"mod.py:{src_line}" in message and "> 88" in message
    assert ccw.main([str(page)]) == 1
    assert ccw.main(["--max", "100", str(page)]) == 0
    assert problems(chapter(tmp_path, ":pyobject: helper\n:end-before: A long docstring")) == []


@pytest.mark.parametrize("options, expected", [
    (":pyobject: helper\n:start-at: not in the code", ":start-at: text"),
    (":pyobject: helper\n:end-before: nowhere", ":end-before: text"),
    (":pyobject: missing", "object 'missing' not found"),
    (":pyobject: helper\n:emphasize-lines: 2\n:linenos:\n:diff: old.py", "diff"),
    (":pyobject: helper\n:start-at: total\n:start-after: total", "cannot be used together"),
    (":pyobject: Box.area\n:dedent: 8", "would cut off code"),
])
def test_unresolvable_excerpts_fail(tmp_path, options, expected):
    (_, message), = problems(chapter(tmp_path, options))
    assert expected in message


def test_missing_file_fails(tmp_path):
    page = chapter(tmp_path, ":pyobject: helper")
    page.write_text(page.read_text().replace("../pkg/mod.py", "../pkg/nothing.py"))
    (_, message), = problems(page)
    assert "file not found" in message


SPHINX_CASES = [
    {"pyobject": "helper"},
    {"pyobject": "helper", "start-at": "total", "dedent": 4},
    {"pyobject": "helper", "start-after": "interesting", "end-at": "return", "dedent": 4},
    {"pyobject": "Box.area", "end-before": "return", "dedent": 4},
    {"pyobject": "Box.area", "end-before": " w"},  # Sphinx skips a hit on the first line
    {"pyobject": "Box"},
    {"start-after": "import functools", "end-before": "class Box"},
    {"pyobject": "Box.area", "dedent": None},
]


def _sphinx_lines(path: Path, options: dict) -> list[str]:
    code = pytest.importorskip("sphinx.directives.code")
    from sphinx.config import Config

    reader = code.LiteralIncludeReader(str(path), options, Config({}, {}))
    return reader.read()[0].splitlines()


@pytest.mark.parametrize("options", SPHINX_CASES)
def test_resolution_matches_sphinx(tmp_path, options):
    path = tmp_path / "mod.py"
    path.write_text(SOURCE)
    ours = ccw.include_lines(SOURCE, {k: "" if v is None else str(v) for k, v in options.items()})
    assert [t for _, t in ours] == _sphinx_lines(path, options)


def test_every_book_excerpt_matches_sphinx():
    sys.path.insert(0, str(ROOT / "tools"))
    from chapters import toc_files

    n = 0
    for page in (p for p in toc_files() if p.suffix == ".md"):
        for _, target, options in ccw.literal_includes(page.read_text(encoding="utf-8")):
            path = page.parent / target
            ours = ccw.include_lines(path.read_text(encoding="utf-8"), options)
            sphinx_options = {k: (int(v) if k == "dedent" and v else v) for k, v in options.items()}
            assert [t for _, t in ours] == _sphinx_lines(path, sphinx_options), (page, target)
            n += 1
    assert n >= 10  # the book shows package code in about a dozen places
