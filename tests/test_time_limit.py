"""TimeLimit: a training time cap that prints one warning line when it cuts a run short."""

import pytest

from invlatent.utils import TimeLimit


def test_cap_reports_only_when_it_stopped_the_run_early(capsys):
    cap = TimeLimit(0.0, "toy")
    assert cap.expired() and cap.hit
    msg = cap.report(done=2, planned=10)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("WARNING: toy stopped by its time limit of 0 s after 2 of 10 epochs")
    assert msg in out
    # the cap was hit after the last epoch: nothing was cut short, nothing to say
    assert cap.report(done=10, planned=10) is None
    assert capsys.readouterr().out == ""


def test_no_cap_or_unexpired_cap_is_silent(capsys):
    for cap in (TimeLimit(None, "free"), TimeLimit(3600.0, "long")):
        assert not cap.expired()
        assert cap.report(done=1, planned=10) is None
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_negative_limit_is_a_value_error(bad):
    with pytest.raises(ValueError, match="limit must be a non-negative number of seconds"):
        TimeLimit(bad, "x")


@pytest.mark.parametrize("bad", ["60", True, [1]])
def test_non_number_limit_is_a_type_error(bad):
    with pytest.raises(TypeError, match="limit must be a number of seconds or None"):
        TimeLimit(bad, "x")
