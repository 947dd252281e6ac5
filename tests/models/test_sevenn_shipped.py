"""SHIPPED_MODELS against the checkpoints inside the installed sevenn (skipped without sevenn)."""

import os

import pytest
import torch

sevenn = pytest.importorskip("sevenn", reason="needs the 'models' extra: pip install 'invlatent[models]'")

from invlatent.models.sevenn import (SHIPPED_MODELS, interaction_layers, layer_irreps, load_sevenn,  # noqa: E402
                                     node_features)


def _shipped_checkpoints() -> set[str]:
    root = os.path.join(os.path.dirname(sevenn.__file__), "pretrained_potentials")
    found = set()
    for folder, _, files in os.walk(root):
        for f in files:
            if f.endswith(".pth"):
                found.add(os.path.relpath(os.path.join(folder, f), root).replace(os.sep, "/"))
    return found


def test_shipped_models_are_the_checkpoints_in_the_wheel():
    """Every checkpoint inside sevenn's wheel is listed, and nothing else: a new sevenn release
    that ships (or drops) a model fails here rather than downloading at run time."""
    assert set(SHIPPED_MODELS.values()) == _shipped_checkpoints()
    assert "7net-mf-0" in SHIPPED_MODELS


def test_shipped_names_are_sevenn_names():
    """Each key resolves, by sevenn's own name lookup, to the same file (no download: the file is there)."""
    import sevenn.util

    root = os.path.join(os.path.dirname(sevenn.__file__), "pretrained_potentials")
    for name, rel in SHIPPED_MODELS.items():
        assert os.path.samefile(sevenn.util.pretrained_name_to_path(name), os.path.join(root, rel)), name


def test_multi_fidelity_model_needs_its_modal():
    with pytest.raises(ValueError, match=r"modal must be one of \['PBE', 'R2SCAN'\]"):
        load_sevenn("7net-mf-0")
    with pytest.raises(ValueError, match="modal must be None"):
        load_sevenn("7net-0", modal="PBE")
    torch.set_num_threads(1)
    model = load_sevenn("7net-mf-0", modal="PBE")
    names = interaction_layers(model)
    pos = torch.tensor([[[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]])  # water (Å)
    f = node_features(model, pos, torch.tensor([[8, 1, 1]]), layers=names[0])
    assert f.z[names[0]].shape == (1, 3, layer_irreps(model, names[0]).dim)
    assert bool(torch.isfinite(f.z[names[0]]).all())
