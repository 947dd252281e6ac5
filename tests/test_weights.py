"""Shipped weights: package data found by importlib.resources, listed, verified, small, model-only."""

import shutil

import pytest
import torch
from safetensors.torch import load_file

from invlatent.io import (MAX_SHIPPED_BYTES, WEIGHTS_DIR, recorded_sha256, save_checkpoint,
                          shipped_weight_names, verify_shipped_weights)
from invlatent.utils import sha256_file


def test_weights_are_package_data_of_this_package():
    import importlib.resources

    import invlatent

    assert WEIGHTS_DIR == importlib.resources.files("invlatent") / "weights"
    assert WEIGHTS_DIR.parent.resolve() == type(WEIGHTS_DIR)(invlatent.__file__).parent.resolve()


def test_every_file_is_listed_verified_small_and_model_only():
    files = sorted(p.name for p in WEIGHTS_DIR.iterdir() if p.suffix == ".safetensors")
    assert files, "the package ships weights"
    others = sorted(p.name for p in WEIGHTS_DIR.iterdir() if p.suffix != ".safetensors")
    assert set(others) <= {"SHA256SUMS", "README.md", "__pycache__"}, others
    assert sorted(shipped_weight_names()) == files
    sums = verify_shipped_weights()
    assert sorted(sums) == files
    for name in files:
        path = WEIGHTS_DIR / name
        assert sums[name] == sha256_file(path) == recorded_sha256(path)
        assert path.stat().st_size <= MAX_SHIPPED_BYTES == 5 * 2**20
        tensors = load_file(str(path))
        assert tensors and all(k.startswith("model.") for k in tensors), name
        assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point()), name
    readme = (WEIGHTS_DIR / "README.md").read_text()
    for name in files:
        assert f"`{name}`" in readme, f"weights/README.md does not describe {name}"


def _copy(tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_unlisted_tampered_large_or_optimizer_files_are_refused(tmp_path):
    model = torch.nn.Linear(3, 2)
    folder = _copy(tmp_path)
    verify_shipped_weights(folder)
    extra = folder / "extra.safetensors"
    save_checkpoint(extra, model)
    with pytest.raises(ValueError, match="not listed"):
        verify_shipped_weights(folder)
    with open(folder / "SHA256SUMS", "a") as fh:
        fh.write(f"{sha256_file(extra)}  extra.safetensors\n")
    assert "extra.safetensors" in verify_shipped_weights(folder)
    # optimizer state is not model-only
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    save_checkpoint(extra, model, optimizer=opt)
    lines = [l for l in (folder / "SHA256SUMS").read_text().splitlines() if "extra" not in l]
    (folder / "SHA256SUMS").write_text("\n".join(lines + [f"{sha256_file(extra)}  extra.safetensors"]) + "\n")
    with pytest.raises(ValueError, match="model tensors only"):
        verify_shipped_weights(folder)
    # a changed byte
    folder = _copy(tmp_path / "b")
    victim = folder / shipped_weight_names(folder)[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256"):
        verify_shipped_weights(folder)
    # a listed file that is missing; a file that is not safetensors
    folder = _copy(tmp_path / "c")
    (folder / shipped_weight_names(folder)[0]).unlink()
    with pytest.raises(ValueError, match="does not exist"):
        verify_shipped_weights(folder)
    folder = _copy(tmp_path / "d")
    (folder / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="only .safetensors"):
        verify_shipped_weights(folder)


def test_a_file_over_5_mb_is_refused(tmp_path, monkeypatch):
    import invlatent.io as io

    folder = _copy(tmp_path)
    monkeypatch.setattr(io, "MAX_SHIPPED_BYTES", 1000)
    with pytest.raises(ValueError, match="bytes, more than"):
        io.verify_shipped_weights(folder)
