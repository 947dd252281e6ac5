"""Equivariance audit on a small e3nn message-passing model: passes when equivariant, catches a broken layer."""

import importlib.util
from pathlib import Path

import matplotlib
import pytest
import torch

from invlatent._irreps import float64_default
from invlatent.groups import SO3, PermuteNodes, Permutation, RotatePositions
from invlatent.audit import equivariance_audit, plot_equivariance_audit

matplotlib.use("Agg")

LAYERS = ["embed", "lin1", "gate", "mp", "lin2"]


def load_toy():
    spec = importlib.util.spec_from_file_location("e3nn_toy_model", Path(__file__).with_name("e3nn_toy_model.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


toy = load_toy()
ROT = {n: SO3(toy.LATENT_IRREPS.get(n, toy.GATE)) for n in LAYERS}


def model(broken=False, float64=True):
    if float64:  # e3nn builds its constants in the default dtype: float64 constants, float64 tolerance
        with float64_default():
            return toy.ToyModel(broken=broken)
    return toy.ToyModel(broken=broken)


def audit(m, group="rotation", **kw):
    data = toy.random_batch()
    if group == "rotation":
        return equivariance_audit(m, data, LAYERS, RotatePositions(), ROT, **kw)
    return equivariance_audit(m, data, LAYERS, PermuteNodes(), Permutation(), **kw)


def test_equivariant_model_passes_rotations_and_permutations_in_float64():
    m = model()
    for group in ("rotation", "permutation"):
        df = audit(m, group)
        assert list(df.columns) == ["layer", "group", "dtype", "rel_error_max", "rel_error_mean", "tolerance",
                                    "equivariant"]
        assert df["layer"].tolist() == LAYERS and set(df["dtype"]) == {"float64"}
        assert df["equivariant"].all(), df
        assert (df["rel_error_max"] < 1e-13).all()  # float64 round-off (tolerance 100 eps sqrt(depth) ~ 2e-14..5e-14)
        assert (df["rel_error_mean"] <= df["rel_error_max"]).all()


def test_broken_l1_bias_is_flagged_at_its_layer_and_downstream():
    m = model(broken=True)
    df = audit(m).set_index("layer")
    assert df.loc["embed", "equivariant"]  # before the broken layer: passes
    for n in ["lin1", "gate", "mp", "lin2"]:
        assert not df.loc[n, "equivariant"], n
        assert df.loc[n, "rel_error_max"] > 1e3 * df.loc[n, "tolerance"]
    # the bias is the same for every node: permutations still commute with the model
    assert audit(m, "permutation")["equivariant"].all()


def test_float64_path_casts_a_deep_copy():
    m = model(float64=False)
    w = m.lin1.weight.detach().clone()
    df = audit(m)
    assert m.lin1.weight.dtype == torch.float32 and torch.equal(m.lin1.weight, w)
    # a float32-built model keeps float32-rounded constants: its tolerance is float32's
    assert df["equivariant"].all() and (df["tolerance"] > 1e-6).all()


def test_float32_path_tolerance_from_eps():
    m = model(float64=False)
    df = audit(m, dtype=torch.float32)
    assert set(df["dtype"]) == {"float32"}
    eps = torch.finfo(torch.float32).eps
    expected = [100 * eps * (k + 1) ** 0.5 for k in range(len(LAYERS))]
    assert df["tolerance"].tolist() == pytest.approx(expected)
    assert df["equivariant"].all(), df
    bad = audit(model(broken=True, float64=False), dtype=torch.float32)
    assert bad["equivariant"].tolist() == [True, False, False, False, False]


def test_callable_latent_group_and_select():
    m = model()
    data = toy.random_batch()

    def rotate_rows(layer, R, z):  # the user's own action: rows of an SO3 latent
        return ROT[layer].act(R.expand(z.shape[0], 3, 3), z)

    df = equivariance_audit(m, data, ["lin2"], RotatePositions(), rotate_rows, n_elements=2)
    assert df["equivariant"].all()
    # capture a dict output through select (the whole model's "x" = lin2's output)
    wrapper = torch.nn.ModuleDict({"net": m})
    df2 = equivariance_audit(wrapper, data, ["net"], RotatePositions(), {"net": ROT["lin2"]}, select="x",
                             forward=lambda mod, x: mod["net"](x))
    assert df2["equivariant"].all()


def test_plot():
    df = audit(model(broken=True))
    ax = plot_equivariance_audit(df)
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == LAYERS


def test_bad_inputs():
    m = model()
    data = toy.random_batch()
    with pytest.raises(ValueError, match="no submodule named 'lin3'.*near matches"):
        equivariance_audit(m, data, ["lin3"], RotatePositions(), ROT)
    with pytest.raises(ValueError, match=r"latent_group has no group for the layers \['gate'\]"):
        equivariance_audit(m, data, ["lin1", "gate"], RotatePositions(), {"lin1": ROT["lin1"]})
    with pytest.raises(TypeError, match="latent_group must be a group"):
        equivariance_audit(m, data, ["lin1"], RotatePositions(), "SO3")
    with pytest.raises(TypeError, match="input_group must have sample"):
        equivariance_audit(m, data, ["lin1"], object(), ROT)
    with pytest.raises(ValueError, match="dtype must be"):
        equivariance_audit(m, data, ["lin1"], RotatePositions(), ROT, dtype=torch.float16)
    with pytest.raises(ValueError, match="n_elements must be a positive int"):
        equivariance_audit(m, data, ["lin1"], RotatePositions(), ROT, n_elements=0)
    with pytest.raises(ValueError, match=r"layer 'lin1': a latent of shape \(15, 32\) fits SO3.*neither row by row.*dimension 26"):  # wrong latent group for the layer
        equivariance_audit(m, data, ["lin1"], RotatePositions(), ROT["gate"])
    with pytest.raises(TypeError, match="df must be the pandas DataFrame"):
        plot_equivariance_audit({"layer": []})
    with pytest.raises(ValueError, match="columns"):
        plot_equivariance_audit(audit(m).drop(columns="tolerance"))
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        plot_equivariance_audit(audit(m), ax="left")


def test_parity_audit_with_reflections():
    from e3nn import o3

    from invlatent.groups import O3

    m = model()
    data = toy.random_batch()
    right = {n: O3(toy.LATENT_IRREPS.get(n, toy.GATE)) for n in LAYERS}
    df = equivariance_audit(m, data, LAYERS, RotatePositions(improper=True), right, n_elements=6)
    assert df["equivariant"].all(), df
    # mislabelled parity (1o called 1e, 2e called 2o): reflections expose it from the first layer on
    wrong = {n: O3(o3.Irreps([(mul, (ir.l, ir.p * (-1) ** (ir.l > 0))) for mul, ir in g.irreps]))
             for n, g in right.items()}
    bad = equivariance_audit(m, data, LAYERS, RotatePositions(improper=True), wrong, n_elements=6)
    assert not bad["equivariant"].any(), bad


def test_nan_latents_and_inputs_are_reported():
    class NaNLayer(torch.nn.Module):
        def forward(self, x):
            return x * float("nan")

    net = torch.nn.Sequential(torch.nn.Linear(3, 3), NaNLayer())
    x = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"layer '1' produced NaN or inf on the input"):
        equivariance_audit(net, x, ["0", "1"], Permutation(), Permutation())
    data = toy.random_batch()
    data.pos[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"inputs\['pos'\] contains NaN or inf"):
        equivariance_audit(model(), data, ["lin1"], RotatePositions(), ROT)
