"""The intro's profile table is what the chapters run: built from their code, checked against it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from invlatent.profiles import PROFILES, by_profile, profile_table, profile_table_markdown

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import chapters as toc  # noqa: E402

CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.S | re.M)


def _calls_by_regex(path: Path) -> list[dict[str, str]]:
    """by_profile calls with three plain keyword values, found without the parser under test."""
    code = "\n".join(CELL.findall(path.read_text()))
    return [m.groupdict() for m in re.finditer(
        r"by_profile\(\s*smoke=(?P<smoke>[^,()\[\]]+),\s*cpu=(?P<cpu>[^,()\[\]]+),\s*gpu=(?P<gpu>[^,()\[\]]+)\)", code)]


PAGE = ROOT / "book" / "appendix" / "profiles.md"


def _intro_table(monkeypatch) -> str:
    """Run the Profiles page's code cell (from its folder, as the build does); return what it glues."""
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.__setitem__(name, value))
    monkeypatch.chdir(PAGE.parent)
    (code,) = [c for c in CELL.findall(PAGE.read_text()) if "profile_table_markdown" in c]
    code = "\n".join(l for l in code.splitlines() if not l.startswith(":"))
    exec(compile(code, "intro.md", "exec"), {})
    return glued["profile_table"].data


def test_intro_table_is_every_toc_chapter_in_order(monkeypatch):
    shown = _intro_table(monkeypatch)
    scaled = [p for p in toc.chapters() if "by_profile(" in "\n".join(CELL.findall(p.read_text()))]
    assert scaled, "no chapter scales with the profile"
    # one narrow table per chapter (a single wide one scrolls sideways at 1280 px)
    want = "\n\n".join(profile_table_markdown([p]) for p in scaled)
    assert shown == want, "the Profiles page's tables are not the toc's chapters, in toc order"
    assert "{glue:md} profile_table" in PAGE.read_text()
    assert "book/appendix/profiles" in (ROOT / "_toc.yml").read_text()


def test_table_rows_are_the_chapters_calls():
    for path in toc.chapters():
        rows = [r for r in profile_table([path])]
        code = "\n".join(CELL.findall(path.read_text()))
        assert len(rows) == len(re.findall(r"\bby_profile\(", code)), path
        simple = _calls_by_regex(path)
        got = [{k: r[k] for k in PROFILES} for r in rows]
        for call in simple:   # every plain call appears, values verbatim
            want = {k: " ".join(v.split()) for k, v in call.items()}
            assert want in got, (path, want)


def test_table_values_are_what_by_profile_returns(monkeypatch):
    import ast

    rows = profile_table(toc.chapters())
    literal = [r for r in rows if all(_is_literal(r[k]) for k in PROFILES)]
    assert len(literal) > len(rows) // 2
    for profile in PROFILES:
        monkeypatch.setenv("INVLATENT_PROFILE", profile)
        for r in literal:
            values = {k: ast.literal_eval(r[k]) for k in PROFILES}
            assert by_profile(**values) == ast.literal_eval(r[profile])


def _is_literal(text: str) -> bool:
    import ast

    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return False
    return True


def test_bad_by_profile_call_is_refused(tmp_path):
    ch = tmp_path / "ch.md"
    ch.write_text("# X\n```{code-cell} ipython3\nn = by_profile(smoke=1, cpu=2)\n```\n")
    with pytest.raises(ValueError, match="smoke=, cpu=, gpu="):
        profile_table([ch])
    ch.write_text("# X\n```{code-cell} ipython3\n:tags: [hide-input]\n%time n = 1\nf(k=by_profile(smoke=1, cpu=2, gpu=3))\n```\n")
    assert profile_table([ch]) == [{"chapter": "X", "setting": "f(…) k", "smoke": "1", "cpu": "2", "gpu": "3"}]


def test_yaml_cell_options_are_skipped(tmp_path):
    """A cell whose options are a YAML block (e.g. a fold label) is still read as Python."""
    ch = tmp_path / "ch.md"
    ch.write_text("# Y\n```{code-cell} ipython3\n---\ntags: [hide-input]\nmystnb:\n"
                  "  code_prompt_show: \"Checks of the claims above\"\n---\n"
                  "n = by_profile(smoke=1, cpu=2, gpu=3)\n```\n")
    assert profile_table([ch]) == [{"chapter": "Y", "setting": "n", "smoke": "1", "cpu": "2", "gpu": "3"}]
