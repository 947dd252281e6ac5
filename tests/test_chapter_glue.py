"""tools/chapters.py glue_problems: a key glued twice or used but never glued is reported."""

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "chapters.py"
spec = importlib.util.spec_from_file_location("chapters_tool", TOOL)
chapters = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = chapters
spec.loader.exec_module(chapters)


def notebook(*names):
    """An executed notebook with one glue output per name (myst-nb's output metadata)."""
    cell = nbformat.v4.new_code_cell("glue(...)")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"text/plain": "1"},
            metadata={"scrapbook": {"name": n, "mime_prefix": "application/papermill.record/"}},
        )
        for n in names
    ]
    return nbformat.v4.new_notebook(cells=[cell])


PROSE = "A is {glue:text}`a:.3f` and B is {glue}`b`."


def test_clean_chapter_has_no_problems():
    assert chapters.glue_problems(notebook("a", "b", "unused"), PROSE) == []


@pytest.mark.parametrize(
    "names, expected",
    [
        (("a", "b", "a"), "glue key 'a' glued 2 times"),
        (("a",), "glue key 'b' used in the prose but never glued"),
    ],
)
def test_duplicate_and_missing_keys_are_reported(names, expected):
    assert chapters.glue_problems(notebook(*names), PROSE) == [expected]
