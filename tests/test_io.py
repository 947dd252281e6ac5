"""Checkpoints: safetensors round trip, checksum verification, train-or-load keyed by profile and config."""

import pytest
import torch

from invlatent.io import load_checkpoint, save_checkpoint, train_or_load
from invlatent.utils import sha256_file


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def test_round_trip_with_optimizer(tmp_path):
    m = _model()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    m(torch.randn(5, 4)).sum().backward()
    opt.step()
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, m, optimizer=opt, metadata={"epoch": 7})
    m2 = _model()
    for p in m2.parameters():
        torch.nn.init.zeros_(p)
    opt2 = torch.optim.Adam(m2.parameters(), lr=1e-2)
    meta = load_checkpoint(path, m2, optimizer=opt2)
    assert meta == {"epoch": "7"}
    for a, b in zip(m.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys()
    for k in s1:
        assert torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"])


def test_checksum_mismatch_is_refused(tmp_path):
    m = _model()
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, m)
    good = sha256_file(path)
    load_checkpoint(path, _model(), sha256=good)
    with pytest.raises(ValueError, match="SHA-256"):
        load_checkpoint(path, _model(), sha256="0" * 64)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors", _model())


def test_train_or_load_keys_on_profile_and_config(tmp_path, monkeypatch):
    monkeypatch.setenv("INVLATENT_CACHE", str(tmp_path))
    calls = []

    def train(module):
        calls.append(1)
        with torch.no_grad():
            for p in module.parameters():
                p.add_(1.0)
        return {"epochs": 1}

    monkeypatch.setenv("INVLATENT_PROFILE", "smoke")
    _, meta = train_or_load("toy", _model(), train, config={"width": 8})
    assert meta["source"] == "trained" and len(calls) == 1
    m, meta = train_or_load("toy", _model(), train, config={"width": 8})
    assert meta["source"] == "cache" and len(calls) == 1
    # another config or another profile never reuses these weights
    _, meta = train_or_load("toy", _model(), train, config={"width": 16})
    assert meta["source"] == "trained" and len(calls) == 2
    monkeypatch.setenv("INVLATENT_PROFILE", "cpu")
    _, meta = train_or_load("toy", _model(), train, config={"width": 8})
    assert meta["source"] == "trained" and len(calls) == 3
    # a shipped checkpoint wins, and only with the right checksum
    shipped = tmp_path / "shipped.safetensors"
    save_checkpoint(shipped, m)
    _, meta = train_or_load("toy", _model(), train, shipped=shipped, shipped_sha256=sha256_file(shipped))
    assert meta["source"] == "shipped"
    with pytest.raises(ValueError):
        train_or_load("toy", _model(), train, shipped=shipped, shipped_sha256="f" * 64)


def test_shipped_checkpoints_are_verified_against_sha256sums(tmp_path, monkeypatch):
    monkeypatch.setenv("INVLATENT_CACHE", str(tmp_path / "cache"))
    ship = tmp_path / "ship"
    ship.mkdir()
    path = ship / "w.safetensors"
    save_checkpoint(path, _model())
    never = lambda m: pytest.fail("must not train when a verified shipped checkpoint exists")  # noqa: E731
    with pytest.raises(ValueError, match="no checksum recorded"):
        train_or_load("w", _model(), never, shipped=path)
    (ship / "SHA256SUMS").write_text(f"{sha256_file(path)}  w.safetensors\n")
    _, meta = train_or_load("w", _model(), never, shipped=path)
    assert meta["source"] == "shipped"
    (ship / "SHA256SUMS").write_text(f"{'0' * 64}  w.safetensors\n")
    with pytest.raises(ValueError, match="SHA-256"):
        train_or_load("w", _model(), never, shipped=path)


def test_shipped_weights_match_their_recorded_sums():
    from invlatent.io import CHECKPOINT_DIR, recorded_sha256

    files = sorted(CHECKPOINT_DIR.glob("*.safetensors"))
    assert files, "the repository ships checkpoints"
    for f in files:
        assert sha256_file(f) == recorded_sha256(f), f
        assert f.stat().st_size <= 5 * 2**20, f"{f.name} is larger than 5 MB"


def test_all_finite_is_exact_even_when_the_sum_overflows():
    from invlatent._validation import all_finite

    big = torch.full((10,), 3e38)                     # finite, but the float32 sum overflows
    assert all_finite(big)
    for bad in (float("nan"), float("inf"), float("-inf")):
        x = torch.zeros(1000)
        x[123] = bad
        assert not all_finite(x)
    x = torch.tensor([float("inf"), float("-inf")])   # sums to NaN
    assert not all_finite(x)
    assert not all_finite(torch.tensor([1.0 + 0j, complex(float("nan"), 0.0)]))
