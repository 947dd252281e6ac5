"""Input actions on graph inputs: RotatePositions and PermuteNodes on PyG Data/Batch and dicts."""

import pytest
import torch
from torch_geometric.data import Batch, Data

from invlatent.groups import PermuteNodes, RotatePositions


def batch(sizes=(3, 5, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for n in sizes:
        src, dst = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        keep = src != dst
        ei = torch.stack([src[keep], dst[keep]])
        pos = torch.randn(n, 3, generator=g, dtype=torch.float64)
        graphs.append(Data(pos=pos, z=torch.randint(0, 5, (n,), generator=g), edge_index=ei,
                           edge_vec=pos[ei[1]] - pos[ei[0]], y=torch.randn(1, 2, generator=g)))
    return Batch.from_data_list(graphs)


def test_rotation_rotates_positions_and_listed_vectors_only():
    data = batch()
    act = RotatePositions(vector_keys=("edge_vec",))
    R = act.sample(1, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(R[0] @ R[0].T, torch.eye(3, dtype=R.dtype), atol=1e-12) and torch.linalg.det(R[0]) > 0
    out = act.act(R, data)
    torch.testing.assert_close(out.pos, data.pos @ R[0].T)
    ei = out.edge_index
    torch.testing.assert_close(out.edge_vec, out.pos[ei[1]] - out.pos[ei[0]])  # consistent after rotation
    assert out.z is data.z and out.y is data.y  # shallow copy: the rest is shared
    assert not torch.equal(out.pos, data.pos) and data.pos.dtype == torch.float64  # the input is untouched


def test_improper_elements_for_parity_audits():
    act = RotatePositions(improper=True)
    R = act.sample(64, generator=torch.Generator().manual_seed(5))
    det = torch.linalg.det(R)
    assert torch.allclose(det.abs(), torch.ones_like(det)) and (det < 0).any() and (det > 0).any()
    data = batch()
    out = act.act(-torch.eye(3, dtype=torch.float64)[None], data)
    torch.testing.assert_close(out.pos, -data.pos)


def test_per_graph_rotations():
    data = batch()
    act = RotatePositions()
    R = act.sample(data.num_graphs, generator=torch.Generator().manual_seed(1))
    out = act.act(R, data)
    for k in range(data.num_graphs):
        sel = data.batch == k
        torch.testing.assert_close(out.pos[sel], data.pos[sel] @ R[k].T)
    with pytest.raises(ValueError, match="1 rotation or one per graph"):
        act.act(R[:2], data)


def test_permutation_keeps_graphs_and_edges():
    data = batch()
    act = PermuteNodes()
    perm = act.sample(1, generator=torch.Generator().manual_seed(2), data=data)
    assert perm.shape == (1, data.num_nodes)
    out = act.act(perm, data)
    p = perm[0]
    assert torch.equal(out.batch, data.batch)
    assert not torch.equal(p, torch.arange(data.num_nodes))
    torch.testing.assert_close(out.pos, data.pos[p])
    assert torch.equal(out.z, data.z[p])
    # the same physical edges: positions at both ends are unchanged, in the same edge order
    torch.testing.assert_close(out.pos[out.edge_index], data.pos[data.edge_index])
    assert out.edge_vec is data.edge_vec and out.y is data.y  # edge- and graph-level fields untouched


def test_dict_inputs():
    data = dict(batch().to_dict())
    perm = PermuteNodes().sample(1, generator=torch.Generator().manual_seed(3), data=data)
    out = PermuteNodes().act(perm[0], data)
    torch.testing.assert_close(out["pos"][out["edge_index"]], data["pos"][data["edge_index"]])
    assert out["edge_vec"] is data["edge_vec"]
    R = RotatePositions().sample(1)
    torch.testing.assert_close(RotatePositions().act(R, data)["pos"], data["pos"] @ R[0].T)


def test_bad_inputs():
    data = batch()
    with pytest.raises(TypeError, match="node_keys must be None or a sequence of str"):
        PermuteNodes(3)
    with pytest.raises(TypeError, match="vector_keys must be a sequence of str"):
        RotatePositions(vector_keys="edge_vec")
    with pytest.raises(TypeError, match="key must be a str"):
        RotatePositions(3)
    with pytest.raises(TypeError, match="data must be a PyG Data/Batch or a dict"):
        RotatePositions().act(torch.eye(3)[None], torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"R must have 3 dimensions \(B, 3, 3\)"):
        RotatePositions().act(torch.eye(3), data)
    with pytest.raises(ValueError, match="no field 'coords'"):
        RotatePositions("coords").act(torch.eye(3)[None], data)
    with pytest.raises(ValueError, match="needs data="):
        PermuteNodes().sample(1)
    with pytest.raises(ValueError, match="perm must be a permutation"):
        PermuteNodes().act(torch.zeros(data.num_nodes, dtype=torch.long), data)
    with pytest.raises(ValueError, match="within its graph"):
        PermuteNodes().act(torch.arange(data.num_nodes).flip(0), data)
    with pytest.raises(TypeError, match="perm must be a long tensor"):
        PermuteNodes().act(torch.arange(data.num_nodes).double(), data)
    bad = {"pos": torch.tensor([[float("nan"), 0.0, 0.0]])}
    with pytest.raises(ValueError, match="NaN"):
        RotatePositions().act(torch.eye(3)[None], bad)
