"""Field types of e2cnn read as invlatent groups (invlatent.models.escnn): skipped without e2cnn."""

import pytest
import torch

e2cnn = pytest.importorskip("e2cnn", reason="needs the 'e2cnn' extra: pip install 'invlatent[e2cnn]'")

from e2cnn import gspaces  # noqa: E402
from e2cnn import nn as enn  # noqa: E402

from invlatent.groups import Cyclic  # noqa: E402
from invlatent.models.escnn import (FieldGroup, field_group, field_latent, group_elements,  # noqa: E402
                                    representation_matrices)

EPS32 = torch.finfo(torch.float32).eps


@pytest.fixture(scope="module")
def r2():
    return gspaces.Rot2dOnR2(N=8)


@pytest.fixture(scope="module")
def net(r2, c8_network):
    """A small C_8 steerable CNN with random weights: 29 x 29 digits -> 6 regular fields."""
    return c8_network(enn, r2)


def test_regular_fields_are_cyclic(r2):
    ft = enn.FieldType(r2, 3 * [r2.regular_repr])
    G = field_group(ft)
    assert isinstance(G, Cyclic) and G.N == 8
    # the group read from the field type equals the field type's own matrices on every element
    M = representation_matrices(ft, dtype=torch.float32)
    z = torch.randn(5, 24, generator=torch.Generator().manual_seed(0))
    for k in range(8):
        want = z @ M[k].T
        got = G.act(torch.full((5,), k), z.reshape(5, 3, 8)).reshape(5, 24)
        torch.testing.assert_close(got, want, rtol=0, atol=10 * EPS32)


def test_mixed_fields_give_a_field_group(r2):
    ft = enn.FieldType(r2, [r2.trivial_repr, r2.irrep(1), r2.regular_repr, r2.irrep(3)])
    G = field_group(ft)
    assert isinstance(G, FieldGroup) and G.order == 8 and G.dim == 1 + 2 + 8 + 2
    x = enn.GeometricTensor(torch.randn(4, 13, 1, 1, generator=torch.Generator().manual_seed(1)), ft)
    z = field_latent(x)
    for k in range(8):  # every element of C_8, the fibres only (no grid)
        moved = field_latent(x.transform_fibers(k))
        torch.testing.assert_close(moved, G.act(group_elements(ft, [k] * 4), z), rtol=0, atol=10 * EPS32)
    # quotient distance of a point and its transformed copy: 0 to rounding
    g = G.sample(4, generator=torch.Generator().manual_seed(2))
    assert float(G.quotient_distance(z, G.act(g, z)).max()) < 100 * EPS32


def test_network_latent_rotates_as_read_from_the_field_type(net):
    """Rotating the input by 90 degree multiples (exact C_8 elements 0, 2, 4, 6 on the grid) moves
    the pooled latent by the group read from the output's field type, to float32 rounding."""
    model, t_in, t_out = net
    G = field_group(t_out)
    x = enn.GeometricTensor(torch.randn(3, 1, 29, 29, generator=torch.Generator().manual_seed(3)), t_in)
    with torch.no_grad():
        z = field_latent(model(x))
        assert z.shape == (3, 6, 8)
        for quarter in range(4):
            rotated = torch.rot90(x.tensor, quarter, dims=(2, 3))   # counter-clockwise, as e2cnn's rotation
            moved = field_latent(model(enn.GeometricTensor(rotated, t_in)))
            expected = G.act(torch.full((3,), 2 * quarter), z)
            rel = float((moved - expected).norm() / z.norm())
            assert rel <= 1e-5, (quarter, rel)
            # e2cnn's own transform of the input gives the same
            moved_e2 = field_latent(model(x.transform(2 * quarter)))
            assert float((moved_e2 - expected).norm() / z.norm()) <= 1e-5


def test_group_elements_and_bad_input(r2):
    ft = enn.FieldType(r2, [r2.regular_repr])
    assert group_elements(ft, [0, 2, 7]).tolist() == [0, 2, 7]
    with pytest.raises(ValueError, match="not an element"):
        group_elements(ft, [9])
    with pytest.raises(TypeError, match="field_type must be an e2cnn/escnn FieldType"):
        field_group("regular")
    with pytest.raises(ValueError, match=r"C = field_type.size = 8"):
        field_latent(torch.zeros(2, 5, 3, 3), ft)
    with pytest.raises(TypeError, match="GeometricTensor"):
        field_latent(torch.zeros(2, 8, 3, 3))
    with pytest.raises(ValueError, match="pool must be"):
        field_latent(torch.zeros(2, 8, 3, 3), ft, pool="max")


def test_continuous_groups_are_refused():
    so2 = gspaces.Rot2dOnR2(N=-1, maximum_frequency=3)
    ft = enn.FieldType(so2, [so2.irrep(1)])
    with pytest.raises(ValueError, match="finite group"):
        field_group(ft)


def test_field_group_checks_its_matrices():
    with pytest.raises(ValueError, match="orthogonal"):
        FieldGroup(torch.stack([torch.eye(2), 2 * torch.eye(2)]))
    with pytest.raises(ValueError, match="identity"):
        FieldGroup(torch.stack([-torch.eye(2), torch.eye(2)]))
    with pytest.raises(ValueError, match=r"\(\|G\|, C, C\)"):
        FieldGroup(torch.zeros(2, 2, 3))
