"""The book's graph VAE recipe: settings, load-or-train with its cache, curve reading, FLOPs."""

import numpy as np
import pytest
import torch

from invlatent.models.graph_vae import GraphVAE
from invlatent.book import book_vae_settings, curve_flatness, load_book_vae, step_flops


def tiny_data(M=16):
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(M, 9, 4)
    x[:, :3, 0] = 1  # three carbons
    adj = torch.zeros(M, 9, 9, 3)
    adj[:, 0, 1, 0] = adj[:, 1, 0, 0] = adj[:, 1, 2, 0] = adj[:, 2, 1, 0] = 1  # propane
    mask = torch.zeros(M, 9, dtype=torch.bool)
    mask[:, :3] = True
    perm = torch.stack([torch.randperm(9, generator=g) for _ in range(M)])
    x = x.gather(1, perm[..., None].expand(-1, -1, 4))
    adj = adj.gather(1, perm[:, :, None, None].expand(-1, -1, 9, 3)).gather(2, perm[:, None, :, None].expand(-1, 9, -1, 3))
    return {"x": x, "adj": adj, "mask": mask.gather(1, perm)}


def test_settings_follow_the_profile(monkeypatch):
    monkeypatch.setenv("INVLATENT_PROFILE", "smoke")
    model_cfg, train_cfg = book_vae_settings()
    assert model_cfg["decoder"] == "sort-transformer" and train_cfg["epochs"] == 5
    monkeypatch.setenv("INVLATENT_PROFILE", "cpu")
    model_cfg, train_cfg = book_vae_settings()
    assert model_cfg["decoder"] == "sort-autoregressive" and train_cfg["batch_size"] == 256


def test_load_book_vae_trains_once_then_loads_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("INVLATENT_PROFILE", "smoke")
    monkeypatch.setenv("INVLATENT_CACHE", str(tmp_path))
    data = tiny_data()
    m1, meta1 = load_book_vae(1, data, epochs=1, batch_size=8)
    m2, meta2 = load_book_vae(1, data, epochs=1, batch_size=8)
    assert meta1["source"] == "trained" and meta2["source"] == "cache"
    assert not m1.training and int(meta1["epochs"]) == 1
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    # other settings are another model: never mistaken for the cached one
    _, meta3 = load_book_vae(1, data, epochs=2, batch_size=8)
    assert meta3["source"] == "trained"
    with pytest.raises(ValueError, match="c must be"):
        load_book_vae(0, data)
    with pytest.raises(TypeError, match="train_data"):
        load_book_vae(1, {"x": data["x"]})


def test_curve_flatness_on_lines_with_known_slopes():
    def line(slope, last=20):
        return [{"epoch": e, "exact": 0.3 + slope * e, "prior_validity": 0.5 + 0.01 * (e % 2)}
                for e in range(1, last + 1)]

    f = curve_flatness(line(0.01), planned=20)
    assert f["tail_from"] == 16 and f["rise"] == pytest.approx(0.01 * 4, abs=1e-12)
    assert not f["flat"]  # 0.04 >= 0.02
    g = curve_flatness(line(0.001), planned=20)
    assert g["flat"] and (g["pv_lo"], g["pv_hi"]) == (0.5, 0.51)
    assert not curve_flatness(line(0.001), planned=40)["flat"]  # schedule not finished
    with pytest.raises(ValueError):
        curve_flatness(line(0.0)[:1], planned=1)


def test_step_flops_are_per_molecule_and_grow_with_width():
    data = tiny_data(8)
    torch.manual_seed(0)
    model = GraphVAE(hidden=8, decoder="maron")
    per2 = step_flops(model, data, batch=2)
    per8 = step_flops(model, data, batch=8)
    # the same work per molecule whatever the batch (FLOP counts are exact integers)
    assert per2 == pytest.approx(per8, rel=1e-12) and per2 > 0
    # a larger hidden width costs more
    assert step_flops(GraphVAE(hidden=16, decoder="maron"), data, batch=2) > per2
    assert all(p.grad is None for p in model.parameters())  # gradients are not left behind
    assert np.isfinite(per2)
