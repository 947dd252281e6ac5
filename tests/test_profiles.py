"""The compute-profile switch: one function, three names, a clear error for anything else."""

import pytest
import torch

import invlatent.book
from invlatent.profiles import PROFILES, by_profile, get_profile


@pytest.mark.parametrize("name", PROFILES)
def test_known_profiles(monkeypatch, name):
    monkeypatch.setenv("INVLATENT_PROFILE", name)
    assert get_profile() == name
    assert invlatent.book.get_profile() == name
    assert by_profile(smoke=1, cpu=2, gpu=3) == {"smoke": 1, "cpu": 2, "gpu": 3}[name]


def test_case_and_spaces_are_ignored(monkeypatch):
    monkeypatch.setenv("INVLATENT_PROFILE", "  SMOKE ")
    assert get_profile() == "smoke"


@pytest.mark.parametrize("value", [None, ""])
def test_default_follows_cuda(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("INVLATENT_PROFILE", raising=False)
    else:
        monkeypatch.setenv("INVLATENT_PROFILE", value)
    assert get_profile() == ("gpu" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_profile() == "gpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile() == "cpu"


@pytest.mark.parametrize("bad", ["fast", "cpu2", "GPU!", "smoke,cpu"])
def test_unknown_profile_is_a_clear_error(monkeypatch, bad):
    monkeypatch.setenv("INVLATENT_PROFILE", bad)
    with pytest.raises(ValueError, match=r"INVLATENT_PROFILE=.*not a known profile.*smoke, cpu, gpu"):
        get_profile()
    with pytest.raises(ValueError, match="INVLATENT_PROFILE"):
        by_profile(smoke=1, cpu=2, gpu=3)


def test_by_profile_needs_all_three(monkeypatch):
    monkeypatch.setenv("INVLATENT_PROFILE", "cpu")
    with pytest.raises(TypeError):
        by_profile(smoke=1, cpu=2)  # type: ignore[call-arg]
