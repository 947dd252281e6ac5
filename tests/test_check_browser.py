"""tools/check_browser.py in a real headless Chromium (skipped where none is installed).

``make browser`` runs the checker on the built smoke book; these tests show, on two
synthetic pages, that it passes a page whose math and images render and fails one whose
don't.
"""

import base64
import importlib.util
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "check_browser.py"
spec = importlib.util.spec_from_file_location("check_browser", TOOL)
check_browser = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = check_browser
spec.loader.exec_module(check_browser)

BROWSER = check_browser.find_browser()
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no Chromium installed")

# a 2 x 1 red PNG
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAIAAAB7QOjdAAAAEElEQVR4nGP4z8DAwMDAAAAHBQEA"
    "bX2F4wAAAABJRU5ErkJggg=="
)


def _page(tmp_path, name, body):
    (tmp_path / "fig.png").write_bytes(PNG)
    p = tmp_path / name
    p.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{body}</body></html>")
    return p


@needs_browser
def test_rendered_page_passes(tmp_path):
    page = _page(tmp_path, "good.html",
                 "<p>an orbit <mjx-container class='MathJax'>z</mjx-container></p>"
                 "<img src='fig.png'><pre>code may hold $$ and \\( freely</pre>"
                 "<div class='cell_input'><pre style='width:400px'>short = 1</pre></div>")
    report = check_browser.inspect(BROWSER, page)
    assert report["math"] == 1 and report["images"] == 1
    assert check_browser.problems(report, expect_math=True) == []
    assert not list(tmp_path.glob(".browser-check-*"))  # the probe copy is removed


@needs_browser
def test_raw_math_and_broken_image_fail(tmp_path):
    page = _page(tmp_path, "bad.html",
                 "<p>unrendered \\(d([z],[z'])\\) and $$x$$</p><img src='missing.png'>"
                 "<div class='cell_input'><pre style='width:100px;overflow:auto'>"
                 "wide = " + "1" * 200 + "</pre></div>")
    found = check_browser.problems(check_browser.inspect(BROWSER, page), expect_math=True)
    assert any("no MathJax output" in f for f in found)
    assert sum("raw math delimiter" in f for f in found) == 2
    assert any("missing.png" in f for f in found)
    assert any("scrolls sideways" in f and "wide = 111" in f for f in found)


def test_has_math_ignores_code():
    assert check_browser.has_math("Text $x$ here.\n")
    assert check_browser.has_math("$$\nd = 1\n$$\n")
    assert not check_browser.has_math("```{code-cell} ipython3\nprint('$x$')\n```\nplain `$a$`\n")


@needs_browser
def test_wide_tables_outputs_and_folded_code_fail(tmp_path):
    """Every pre, table and cell output is measured, folded cells included; narrow ones pass."""
    wide_row = "".join(f"<td>column{k}_with_a_long_unbreakable_value</td>" for k in range(12))
    page = _page(tmp_path, "wide.html",
                 "<div style='width:600px'>"
                 "<table><tr><td>narrow</td><td>table</td></tr></table>"
                 "<div class='cell_output'><pre>short output</pre></div>"
                 f"<div class='cell_output'><div class='output'><table><tr>{wide_row}</tr>"
                 "</table></div></div>"
                 "<pre style='overflow:auto'>printed = " + "2" * 300 + "</pre>"
                 "<div class='cell_output'><div class='output text_html' style='overflow:auto'>"
                 "<span style='white-space:nowrap'>html = " + "4" * 300 + "</span></div></div>"
                 "<details><summary>Show code cell source</summary><div class='cell_input'>"
                 "<pre style='overflow:auto'>folded = " + "3" * 300 + "</pre></div></details>"
                 "</div>")
    found = check_browser.problems(check_browser.inspect(BROWSER, page), expect_math=False)
    assert any(f.startswith("table scrolls sideways") and "column0" in f for f in found), found
    assert any(f.startswith("preformatted text scrolls sideways") and "printed = 222" in f
               for f in found), found
    assert any(f.startswith("code cell scrolls sideways") and "folded = 333" in f
               for f in found), found
    assert any(f.startswith("cell output scrolls sideways") and "html = 444" in f
               for f in found), found
    assert not any("narrow" in f or "short output" in f for f in found), found
    # the wide table is reported once, not again as the output that holds it
    assert sum("column0" in f for f in found) == 1, found


@needs_browser
def test_wide_math_fails_and_narrow_math_passes(tmp_path):
    """A display equation wider than the column is reported once (the typeset equation, not
    again the math block that holds it); a narrow one passes."""
    wide = "<span style='display:inline-block;white-space:nowrap'>" + "x + " * 200 + "</span>"
    page = _page(tmp_path, "math.html",
                 "<div style='width:600px'>"
                 "<div class='math' style='overflow-x:auto'><mjx-container display='true' "
                 "style='display:block'>narrow = 1</mjx-container></div>"
                 "<div class='math' style='overflow-x:auto'><mjx-container display='true' "
                 f"style='display:block'>{wide}</mjx-container></div>"
                 "<p>inline <mjx-container>y</mjx-container> math</p>"
                 "</div>")
    found = check_browser.problems(check_browser.inspect(BROWSER, page), expect_math=True)
    assert [f for f in found if f.startswith("math scrolls sideways")] == found, found
    assert len(found) == 1 and "x + x + x" in found[0], found


def test_warnings_in_cell_outputs_are_found():
    """Every line of a cell output that holds a Python warning, and nothing else: not the
    prose, not a progress line on stderr, not a word such as 'warnings'."""
    html = (
        "<p>Prose may say UserWarning: freely.</p>"
        "<div class='cell docutils container'><div class='cell_output docutils container'>"
        "<div class='output stderr highlight-myst-ansi notranslate'><div class='highlight'><pre>"
        "/x/tqdm/auto.py:21: TqdmWarning: IProgress not found. Please update jupyter and ipywidgets."
        "\n  from .autonotebook import tqdm</pre></div></div>"
        "<div class='output stream highlight-myst-ansi notranslate'><pre>loss 1.2, no warnings</pre>"
        "</div></div></div>"
        "<div class='cell_output docutils container'><div class='output stderr'><pre>"
        "GraphVAE: 100%|##########| 12/12 [00:01&lt;00:00]</pre></div>"
        "<div class='output stderr'><pre>sklearn.exceptions.ConvergenceWarning: lbfgs failed"
        "</pre></div></div>"
        "<div class='cell_output'><pre>Warning: something printed</pre></div>"
    )
    found = check_browser.output_warnings(html)
    assert len(found) == 3, found
    assert found[0].startswith("/x/tqdm/auto.py:21: TqdmWarning: IProgress not found")
    assert found[1].startswith("sklearn.exceptions.ConvergenceWarning: lbfgs failed")
    assert found[2] == "Warning: something printed"
    assert check_browser.output_warnings(html.replace("Warning:", "Note:")) == []


def test_main_fails_on_a_warning_in_the_built_book(tmp_path, monkeypatch, capsys):
    """The whole check fails when a built page prints a warning, with or without Chromium."""
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (tmp_path / "intro.md").write_text("# Intro\n")
    html = tmp_path / "html"
    html.mkdir()
    page = html / "intro.html"
    page.write_text("<!DOCTYPE html><html><body><h1>Intro</h1><div class='cell_output'>"
                    "<pre>x.py:1: UserWarning: careful</pre></div></body></html>")
    for browser in ([None] if BROWSER is None else [None, BROWSER]):
        monkeypatch.setattr(check_browser, "find_browser", lambda: browser)
        assert check_browser.main([str(html), "--root", str(tmp_path)]) == 1
        assert "warning in a cell output: x.py:1: UserWarning: careful" in capsys.readouterr().out
    page.write_text(page.read_text().replace("UserWarning", "User note"))
    monkeypatch.setattr(check_browser, "find_browser", lambda: None)
    assert check_browser.main([str(html), "--root", str(tmp_path)]) == 0
