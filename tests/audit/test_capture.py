"""Latent capture: forward hooks on a toy model, a dict-returning model and an e3nn model on PyG graphs."""

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from invlatent.audit import capture_latents, LatentCapture


def load_toy():
    spec = importlib.util.spec_from_file_location("e3nn_toy_model", Path(__file__).with_name("e3nn_toy_model.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Boom(nn.Module):
    def forward(self, x):
        raise AssertionError("this layer must never run")


def sequential():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_sequential_matches_manual_forward(gen):
    model = sequential()
    x = torch.randn(6, 3, generator=gen(0))
    lat = capture_latents(model, ["0", "1", "2"], x)
    assert list(lat) == ["0", "1", "2"]
    h0 = x @ model[0].weight.T + model[0].bias  # independent: the layer's formula
    torch.testing.assert_close(lat["0"], h0)
    torch.testing.assert_close(lat["1"], h0.clamp_min(0))
    torch.testing.assert_close(lat["2"], model(x))
    assert not any(v.requires_grad for v in lat.values())


def test_captured_tensors_are_copies_not_views():
    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Identity()

        def forward(self, x):
            h = self.a(x * 1.0)
            h.mul_(0)  # a later in-place change must not reach the capture
            return h

    x = torch.ones(2, 3)
    lat = capture_latents(InPlace(), "a", x)
    assert torch.equal(lat["a"], torch.ones(2, 3))


def test_stop_really_stops_before_a_later_layer():
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), Boom())
    lat = capture_latents(model, ["0", "1"], torch.zeros(2, 3))  # stop=True: Boom never runs
    assert set(lat) == {"0", "1"}
    with pytest.raises(AssertionError, match="never run"):
        capture_latents(model, ["0"], torch.zeros(2, 3), stop=False)
    out = None
    with LatentCapture(model, "1") as cap:
        out = model(torch.zeros(2, 3))
    assert out is None and tuple(cap.latents["1"].shape) == (2, 3)


def test_no_grad_by_default_and_grad_on_request():
    seen = {}

    class Probe(nn.Module):
        def forward(self, x):
            seen["grad"] = torch.is_grad_enabled()
            return x

    model = nn.Sequential(Probe(), nn.Identity())
    capture_latents(model, "1", torch.zeros(1, 2))
    assert seen["grad"] is False
    capture_latents(model, "1", torch.zeros(1, 2), grad=True)
    assert seen["grad"] is True
    assert torch.is_grad_enabled()  # restored after the capture


def test_dict_output_with_key_and_callable_selectors():
    class DictNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.ModuleDict({"lin": nn.Linear(2, 3)})
            self.inner = nn.Identity()

        def forward(self, d):
            h = self.block["lin"](d["x"])
            out = self.inner({"x": h, "aux": 2 * h})
            return out["x"].sum()

    net = DictNet()
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    lat = capture_latents(net, ["block.lin", "inner"], {"x": x}, select=lambda o: o["aux"] if isinstance(o, dict) else o)
    torch.testing.assert_close(lat["inner"], 2 * lat["block.lin"])
    only = capture_latents(net, "inner", {"x": x}, select="x")
    torch.testing.assert_close(only["inner"], lat["block.lin"])


def test_e3nn_model_on_pyg_batch():
    toy = load_toy()
    model = toy.ToyModel()
    batch = toy.random_batch()
    layers = ["embed", "lin1", "gate", "mp", "lin2"]
    lat = capture_latents(model, layers, batch)
    N = batch.num_nodes
    for name in layers:
        dim = toy.LATENT_IRREPS.get(name, toy.GATE).dim
        assert lat[name].shape == (N, dim)
    # the capture equals the composition of the modules (independent re-computation)
    with torch.no_grad():
        h = model.gate(model.lin1(model.embed(batch)))
        torch.testing.assert_close(lat["gate"], h)
        torch.testing.assert_close(lat["lin2"], model(batch)["x"])


def test_pyg_data_output_is_read_by_attribute():
    from torch_geometric.data import Data

    class Writes(nn.Module):
        def forward(self, data):
            out = data.clone()
            out.x = data.pos.norm(dim=1, keepdim=True)
            return out

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Writes()
            self.boom = Boom()

        def forward(self, data):
            return self.boom(self.block(data))

    data = Data(pos=torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]]))
    lat = capture_latents(Net(), "block", data, select="x")
    assert lat["block"].flatten().tolist() == [5.0, 2.0]


def test_unknown_layer_lists_near_matches():
    toy = load_toy()
    with pytest.raises(ValueError, match=r"no submodule named 'gates'.*near matches: \['gate'"):
        capture_latents(toy.ToyModel(), ["gates"], toy.random_batch())


def test_layer_that_never_fires_is_named():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(RuntimeError, match=r"\['unused'\] never fired"):
        capture_latents(Skips(), ["used", "unused"], torch.zeros(1, 2))


def test_selector_failures_name_layer_type_and_selector():
    class TupleOut(nn.Module):
        def forward(self, x):
            return x, 2 * x

    model = nn.Sequential(TupleOut())
    with pytest.raises(TypeError, match=r"layer '0'.*tuple.*expected a torch.Tensor"):
        capture_latents(model, "0", torch.zeros(1, 2))  # a tuple is not guessed
    with pytest.raises(TypeError, match=r"layer '0': select='x' cannot read its output of type tuple"):
        capture_latents(model, "0", torch.zeros(1, 2), select="x")
    lat = capture_latents(model, "0", torch.ones(1, 2), select=lambda o: o[1])
    assert lat["0"].tolist() == [[2.0, 2.0]]


def test_bad_arguments():
    model = sequential()
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        capture_latents(lambda x: x, "0", torch.zeros(1, 3))
    with pytest.raises(TypeError, match="layers must be a str or a sequence of str"):
        capture_latents(model, 0, torch.zeros(1, 3))
    with pytest.raises(ValueError, match="at least one"):
        capture_latents(model, [], torch.zeros(1, 3))
    with pytest.raises(ValueError, match="must not repeat"):
        capture_latents(model, ["0", "0"], torch.zeros(1, 3))
    with pytest.raises(TypeError, match="select must be"):
        capture_latents(model, "0", torch.zeros(1, 3), select=3)
    with pytest.raises(TypeError, match="stop must be a bool"):
        LatentCapture(model, "0", stop="yes")


def test_hooks_are_removed_after_errors():
    model = nn.Sequential(nn.Linear(3, 3), Boom())
    with pytest.raises(AssertionError):
        capture_latents(model, "0", torch.zeros(1, 3), stop=False)
    assert not model[0]._forward_hooks
    capture_latents(model, "0", torch.zeros(1, 3))
    assert not model[0]._forward_hooks
