"""The SevenNet adapter (invlatent.models.sevenn): skipped when the optional sevenn is absent."""

import os
import socket
import subprocess
import sys

import pytest
import torch

sevenn = pytest.importorskip("sevenn")

from invlatent.models.sevenn import (interaction_layers, layer_irreps, load_sevenn,  # noqa: E402
                                     node_features, sevenn_batch)

LAYER = "3_equivariant_gate"


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return load_sevenn("7net-0")


@pytest.fixture(scope="module")
def molecules():
    """Four small molecules padded to 6 slots: water, methanol, ammonia, HCN (Å)."""
    from ase.build import molecule

    names = ["H2O", "CH3OH", "NH3", "HCN"]
    pos = torch.zeros(len(names), 6, 3)
    num = torch.zeros(len(names), 6, dtype=torch.long)
    mask = torch.zeros(len(names), 6, dtype=torch.bool)
    for b, name in enumerate(names):
        a = molecule(name)
        n = len(a)
        pos[b, :n] = torch.tensor(a.get_positions(), dtype=torch.float32)
        num[b, :n] = torch.tensor(a.get_atomic_numbers())
        mask[b, :n] = True
    return pos, num, mask


def test_layers_and_irreps(model):
    names = interaction_layers(model)
    assert names == [f"{i}_equivariant_gate" for i in range(5)]
    assert str(layer_irreps(model, LAYER)) == "128x0e+64x1e+32x2e"
    assert str(layer_irreps(model, names[-1])) == "128x0e"


def test_shapes_and_mask(model, molecules):
    pos, num, mask = molecules
    f = node_features(model, pos, num, mask, layers=[LAYER, "0_equivariant_gate"], batch_size=3)
    assert list(f.z) == ["0_equivariant_gate", LAYER]  # forward order
    z = f.z[LAYER]
    assert z.shape == (4, 6, 480) and z.dtype == torch.float32
    assert torch.equal(f.mask, mask)
    assert bool((z[~mask] == 0).all()) and bool((z[mask].norm(dim=-1) > 0).all())


def test_matches_sevenn_own_input_path(model):
    """Independent check: the adapter's batched graph gives the features of sevenn's own
    ASE -> AtomGraphData path (matscipy neighbour list, one molecule, unbatched mode)."""
    from ase.build import molecule
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.train.dataload import unlabeled_atoms_to_graph

    from invlatent.audit import capture_latents

    a = molecule("CH3CH2OH")
    d = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(a, 5.0, with_shift=False))
    model.set_is_batch_data(False)
    try:
        ref = capture_latents(model, LAYER, d, select="x")[LAYER]
    finally:
        model.set_is_batch_data(True)
    pos = torch.tensor(a.get_positions(), dtype=torch.float32)[None]
    num = torch.tensor(a.get_atomic_numbers())[None]
    z = node_features(model, pos, num, layers=LAYER).z[LAYER][0]
    # float32, summed over neighbours in another edge order
    assert float((z - ref).norm() / ref.norm()) < 1e-5


def test_features_rotate_with_molecule(model, molecules):
    from invlatent import SO3

    pos, num, mask = molecules
    R = SO3("1x1o").sample(len(pos), generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    z = node_features(model, pos, num, mask, layers=LAYER).z[LAYER]
    z_rot = node_features(model, pos @ R.transpose(1, 2), num, mask, layers=LAYER).z[LAYER]
    D = layer_irreps(model, LAYER).D_from_matrix(R)
    expected = torch.einsum("bij,bnj->bni", D, z)
    rel = float((z_rot - expected).norm() / z.norm())
    assert rel < 1e-4, rel  # float32 through five message-passing blocks


def test_features_permute_with_atoms(model, molecules):
    pos, num, mask = molecules
    g = torch.Generator().manual_seed(1)
    perm = torch.stack([torch.randperm(6, generator=g) for _ in range(len(pos))])
    take = perm[..., None]
    z = node_features(model, pos, num, mask, layers=LAYER).z[LAYER]
    f = node_features(model, pos.gather(1, take.expand(-1, -1, 3)), num.gather(1, perm),
                      mask.gather(1, perm), layers=LAYER)
    assert torch.equal(f.mask, mask.gather(1, perm))
    expected = z.gather(1, take.expand(-1, -1, z.shape[-1]))
    assert float((f.z[LAYER] - expected).norm() / z.norm()) < 1e-5


def test_no_network(model, molecules, monkeypatch):
    """Loading and running the model open no socket (no download, no telemetry)."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    pos, num, mask = molecules
    m = load_sevenn("7net-0")
    assert node_features(m, pos, num, mask, layers="0_equivariant_gate").z["0_equivariant_gate"].shape[0] == 4


def test_bad_input(model, molecules):
    pos, num, mask = molecules
    with pytest.raises(ValueError, match="7net-0"):
        load_sevenn("7net-omni")  # not shipped: would download
    with pytest.raises(TypeError, match="name"):
        load_sevenn(3)
    with pytest.raises(ValueError, match="layers"):
        node_features(model, pos, num, mask, layers="3_convolution")
    with pytest.raises(ValueError, match="pos"):
        node_features(model, pos[..., :2], num, mask)
    with pytest.raises(TypeError, match="numbers"):
        sevenn_batch(pos, num.float(), mask)
    with pytest.raises(ValueError, match="mask"):
        sevenn_batch(pos, num, mask[:, :3])
    bad = pos.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        sevenn_batch(bad, num, mask)
    with pytest.raises(ValueError, match="cutoff"):
        sevenn_batch(pos, num, mask, cutoff=0.0)
    with pytest.raises(TypeError, match="model"):
        interaction_layers("7net-0")
    with pytest.raises(ValueError, match="layer"):
        layer_irreps(model, "nope")


def test_import_invlatent_does_not_import_sevenn():
    code = ("import sys, invlatent, invlatent.models, invlatent.models.sevenn; "
            "print('sevenn' in sys.modules)")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_missing_sevenn_says_how_to_install(monkeypatch):
    import importlib.util

    from invlatent.models import sevenn as adapter

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sevenn" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install 'invlatent\[models\]'") as err:
        adapter.load_sevenn()
    assert "\n" not in str(err.value)
