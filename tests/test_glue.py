"""invlatent.utils.glue: what reaches myst-nb is a Python number that {glue:text} can format."""

import numpy as np
import pytest
import torch

import invlatent.utils as utils

myst_nb = pytest.importorskip("myst_nb")
from myst_nb.core.variables import format_plain_text  # noqa: E402


@pytest.fixture
def recorded(monkeypatch):
    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: calls.append(
        (name, value, display)))
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    return calls


@pytest.mark.parametrize("value, text", [
    (np.float64(0.8361), "0.84"), (np.float32(0.5), "0.50"), (torch.tensor(2.25), "2.25"),
    (0.125, "0.12"), (np.int64(7), "7.00"),
])
def test_scalars_reach_myst_nb_as_python_numbers(recorded, value, text):
    assert utils.glue("x", value) is value
    (name, plain, display), = recorded
    assert name == "x" and display is False and type(plain) in (int, float)
    assert format_plain_text(repr(plain), ".2f") == text


def test_numpy_repr_alone_would_not_format():
    # the reason for the conversion: myst-nb formats the repr, and NumPy 2 reprs are not numbers
    with pytest.raises(ValueError):
        format_plain_text(repr(np.float64(0.5)), ".2f")


def test_outside_a_kernel_nothing_is_recorded(monkeypatch):
    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda *a, **k: calls.append(a))
    assert utils.glue("x", 1.5) == 1.5
    assert calls == []


def test_bad_name():
    with pytest.raises(TypeError, match="name"):
        utils.glue("", 1.0)
