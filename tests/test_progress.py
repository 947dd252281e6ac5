"""invlatent.utils.progress: outside a terminal a loop leaves exactly one line."""

import io

import pytest

from invlatent.utils import progress


@pytest.fixture
def not_quiet(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("INVLATENT_QUIET", raising=False)


def test_one_final_line_with_postfix(monkeypatch, not_quiet):
    monkeypatch.setenv("INVLATENT_PROGRESS", "line")
    out = io.StringIO()
    bar = progress(range(12), desc="GraphVAE", unit="epoch", file=out, mininterval=0.0)
    for epoch in bar:
        bar.set_postfix(loss=f"{epoch:.3f}")  # tqdm redraws on every set_postfix by default
    text = out.getvalue()
    assert text.count("\n") == 1 and "\r" not in text
    assert text.startswith("GraphVAE: 100%") and "12/12" in text and "loss=11.000" in text


def test_interrupted_loop_still_leaves_its_line(monkeypatch, not_quiet):
    monkeypatch.setenv("INVLATENT_PROGRESS", "line")
    out = io.StringIO()
    with pytest.raises(RuntimeError):
        for i in progress(range(5), desc="x", file=out):
            if i == 2:
                raise RuntimeError("stop")
    assert out.getvalue().count("\n") == 1 and "2/5" in out.getvalue()


def test_leave_false_and_disable_print_nothing(monkeypatch, not_quiet):
    monkeypatch.setenv("INVLATENT_PROGRESS", "line")
    for kw in ({"leave": False}, {"disable": True}):
        out = io.StringIO()
        assert sum(progress(range(4), file=out, **kw)) == 6
        assert out.getvalue() == ""


def test_live_bar_redraws(monkeypatch, not_quiet):
    monkeypatch.setenv("INVLATENT_PROGRESS", "live")
    out = io.StringIO()
    bar = progress(range(3), desc="live", file=out, mininterval=0.0)
    for i in bar:
        bar.set_postfix(i=i)
    assert out.getvalue().count("\r") > 2  # the terminal bar: one redraw per update
