"""Input-space orbits: the sampled orbit is a C_G fibre, so the package's C_G projections apply."""

import pytest
import torch

import invlatent
from invlatent.models.cnn import CNN
from invlatent.probes import orbit_latents, orbit_spread, view_correlation


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    net = CNN(channels=(4, 8), latent_dim=6)
    with torch.no_grad():  # calibrate batch-norm statistics so that the codes are not all dead ReLUs
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None
        net.train()(torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1)))
    return net.eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_shape_and_cyclic_shift(cnn, images):
    Z = orbit_latents(cnn.encode, images, n_angles=4)
    assert Z.shape == (5, 6, 4)
    for k in range(4):
        Zk = orbit_latents(cnn.encode, torch.rot90(images, k, dims=(-2, -1)), n_angles=4)
        assert torch.allclose(Zk, Z.roll(-k, dims=-1), atol=1e-5)


def test_per_image_offset_equals_rotating_the_input(cnn, images):
    offset = torch.tensor([0.0, 90.0, 180.0, 270.0, 90.0])
    Z = orbit_latents(cnn.encode, images, n_angles=4, offset=offset)
    rotated = torch.stack([torch.rot90(img, int(a) // 90, dims=(-2, -1)) for img, a in zip(images, offset)])
    assert torch.allclose(Z, orbit_latents(cnn.encode, rotated, n_angles=4), atol=1e-5)


def test_interpolated_angles_agree_with_exact_ones_inside_the_disc(cnn, images):
    # n_angles=8 goes through bilinear rotation; its even columns are multiples of 90 degrees,
    # where bilinear interpolation at exact grid points reproduces rot90 up to round-off
    # except at the image corners, which the CNN sees only through padding.
    Z8 = orbit_latents(cnn.encode, images, n_angles=8)
    Z4 = orbit_latents(cnn.encode, images, n_angles=4)
    rel = (Z8[..., ::2] - Z4).norm() / Z4.norm()
    assert rel < 0.2


def test_max_filters_on_the_orbit_are_invariant_to_the_sampled_rotations(cnn, images):
    Z = orbit_latents(cnn.encode, images, n_angles=4)
    mf = invlatent.MaxFilter(invlatent.Cyclic(4), (6, 4), n_out=16, seed=0)
    rotated = orbit_latents(cnn.encode, torch.rot90(images, 1, dims=(-2, -1)), n_angles=4)
    assert torch.allclose(mf(Z), mf(rotated), atol=1e-5)
    assert torch.allclose(Z.mean(-1), rotated.mean(-1), atol=1e-5)
    assert (Z[..., 0] - rotated[..., 0]).norm() > 0.05 * Z[..., 0].norm()  # the raw code does move


def test_orbit_spread_zero_iff_invariant(images):
    def invariant(x):  # pixel statistics: exactly invariant under rot90
        return torch.stack([x.mean((1, 2, 3)), x.pow(2).mean((1, 2, 3))], 1)

    assert orbit_spread(orbit_latents(invariant, images, 4)).max() < 1e-6
    first_row = lambda x: x[:, 0, 0, :5]  # noqa: E731 - not invariant
    assert orbit_spread(orbit_latents(first_row, images, 4)).min() > 1e-3


def test_view_correlation():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 8, generator=g)
    assert view_correlation(z, z) == pytest.approx(1.0, abs=1e-6)
    assert abs(view_correlation(z, torch.randn(500, 8, generator=g))) < 0.1


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda e, x: orbit_latents(e, x[0], 4), ValueError, "x must have 4 dimensions"),
        (lambda e, x: orbit_latents(e, x, 0), ValueError, "n_angles"),
        (lambda e, x: orbit_latents(e, x, 4.0), TypeError, "n_angles"),
        (lambda e, x: orbit_latents(e, x, 4, offset=torch.zeros(2)), ValueError, "offset"),
        (lambda e, x: orbit_latents(e, x.long(), 4), TypeError, "floating"),
        (lambda e, x: orbit_spread(torch.zeros(3, 4)), ValueError, "Z must have 3 dimensions"),
        (lambda e, x: view_correlation(torch.zeros(3, 4), torch.zeros(3, 5)), ValueError, "same shape"),
        (lambda e, x: view_correlation(torch.zeros(1, 4), torch.zeros(1, 4)), ValueError, "at least 2"),
        (lambda e, x: CNN(channels=()), ValueError, "channels"),
        (lambda e, x: CNN(latent_dim=0), ValueError, "latent_dim"),
    ],
)
def test_bad_input(cnn, images, call, exc, match):
    with pytest.raises(exc, match=match):
        call(cnn.encode, images)


def test_nan_is_detected(cnn, images):
    bad = images.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        orbit_latents(cnn.encode, bad, 4)
