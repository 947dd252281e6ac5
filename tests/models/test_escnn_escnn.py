"""Field types of escnn (e2cnn's successor) read as invlatent groups: the same checks as
test_escnn.py, through escnn's API (``GroupElement`` elements, ``rot2dOnR2``). Skipped where escnn
does not import; escnn 1.0.11 needs numpy < 2 (its dependency lie_learn is built against numpy 1),
which the book's environment does not have."""

import pytest
import torch

escnn = pytest.importorskip("escnn", reason="needs escnn, which imports only with numpy < 2",
                            exc_type=ImportError)

from escnn import gspaces  # noqa: E402
from escnn import nn as enn  # noqa: E402

from invlatent.groups import Cyclic  # noqa: E402
from invlatent.models.escnn import (FieldGroup, field_group, field_latent, group_elements,  # noqa: E402
                                    representation_matrices)

EPS32 = torch.finfo(torch.float32).eps


@pytest.fixture(scope="module")
def r2():
    return gspaces.rot2dOnR2(N=8)


def test_regular_fields_are_cyclic(r2):
    ft = enn.FieldType(r2, 3 * [r2.regular_repr])
    G = field_group(ft)
    assert isinstance(G, Cyclic) and G.N == 8
    M = representation_matrices(ft, dtype=torch.float32)  # escnn's own matrices, every element
    z = torch.randn(5, 24, generator=torch.Generator().manual_seed(0))
    for k in range(8):
        got = G.act(torch.full((5,), k), z.reshape(5, 3, 8)).reshape(5, 24)
        torch.testing.assert_close(got, z @ M[k].T, rtol=0, atol=10 * EPS32)


def test_elements_are_group_elements(r2):
    G = r2.fibergroup
    ft = enn.FieldType(r2, [r2.regular_repr])
    assert group_elements(ft, [G.element(0), G.element(2), G.element(7)]).tolist() == [0, 2, 7]
    with pytest.raises(ValueError, match="not an element"):
        group_elements(ft, [3])  # an int is not an escnn element


def test_mixed_fields_and_dihedral_give_field_groups(r2):
    ft = enn.FieldType(r2, [r2.trivial_repr, r2.irrep(1), r2.regular_repr])
    G = field_group(ft)
    assert isinstance(G, FieldGroup) and G.order == 8 and G.dim == 11
    x = enn.GeometricTensor(torch.randn(4, 11, 1, 1, generator=torch.Generator().manual_seed(1)), ft)
    z = field_latent(x)
    for g in r2.fibergroup.elements:
        moved = field_latent(x.transform_fibers(g))
        torch.testing.assert_close(moved, G.act(group_elements(ft, [g] * 4), z), rtol=0, atol=10 * EPS32)
    d4 = gspaces.flipRot2dOnR2(N=4)
    D = field_group(enn.FieldType(d4, 2 * [d4.regular_repr]))
    assert isinstance(D, FieldGroup) and D.order == 8 and D.dim == 16


def test_network_latent_rotates_as_read_from_the_field_type(r2, c8_network):
    """A C_8 network with random weights: quarter turns of the input move the pooled latent by the
    group read from the output's field type, to float32 rounding."""
    model, t_in, t_out = c8_network(enn, r2)
    G = field_group(t_out)
    x = enn.GeometricTensor(torch.randn(3, 1, 29, 29, generator=torch.Generator().manual_seed(3)), t_in)
    with torch.no_grad():
        z = field_latent(model(x))
        for quarter in range(4):
            moved = field_latent(model(x.transform(r2.fibergroup.element(2 * quarter))))
            expected = G.act(torch.full((3,), 2 * quarter), z)
            assert float((moved - expected).norm() / z.norm()) <= 1e-5, quarter


def test_continuous_groups_are_refused():
    so2 = gspaces.rot2dOnR2(N=-1, maximum_frequency=3)
    with pytest.raises(ValueError, match="finite group"):
        field_group(enn.FieldType(so2, [so2.irrep(1)]))
