"""A small e3nn message-passing model on PyG graphs, shared by the capture and audit tests.

Layers (names from ``named_modules()``):

* ``embed`` -- species one-hot (``3x0e``) and the sum over incoming edges of the spherical
  harmonics of the edge vector times a Gaussian of its length (``1x0e+1x1o+1x2e``);
* ``lin1`` -- ``o3.Linear`` to ``10x0e+4x1o+2x2e`` (``broken=True``: plus a constant bias on
  the ``1o`` channels, which is not rotation equivariant);
* ``gate`` -- ``e3nn.nn.Gate`` (4 scalars, 6 gates for ``4x1o+2x2e``);
* ``mp`` -- a sum over incoming edges (message passing);
* ``lin2`` -- ``o3.Linear`` to ``2x0e+2x1o``; the model returns ``{"energy", "x"}``.

Load it with :func:`load` (tests run with ``--import-mode=importlib``).
"""

import torch
from torch import nn

from e3nn import o3
from e3nn.nn import Gate

EMBED = o3.Irreps("4x0e + 1x1o + 1x2e")
LIN1 = o3.Irreps("10x0e + 4x1o + 2x2e")
GATE = o3.Irreps("4x0e + 4x1o + 2x2e")
OUT = o3.Irreps("2x0e + 2x1o")


class Embed(nn.Module):
    def forward(self, data):
        src, dst = data["edge_index"]
        vec = data["pos"][dst] - data["pos"][src]
        sh = o3.spherical_harmonics([0, 1, 2], vec, normalize=True, normalization="component")
        w = torch.exp(-vec.square().sum(-1, keepdim=True))
        agg = torch.zeros(data["pos"].shape[0], sh.shape[1], dtype=sh.dtype).index_add_(0, dst, sh * w)
        onehot = nn.functional.one_hot(data["z"], 3).to(sh.dtype)
        return torch.cat([onehot, agg], dim=1)  # 3x0e + (1x0e + 1x1o + 1x2e) = EMBED


class BiasedL1(nn.Module):
    """``o3.Linear`` plus a constant vector added to every ``1o`` copy (breaks rotation equivariance)."""

    def __init__(self, lin):
        super().__init__()
        self.lin = lin
        self.bias = nn.Parameter(torch.full((4 * 3,), 0.5))

    def forward(self, x):
        out = self.lin(x)
        return torch.cat([out[:, :10], out[:, 10:22] + self.bias, out[:, 22:]], dim=1)


class Aggregate(nn.Module):
    def forward(self, h, edge_index):
        src, dst = edge_index
        return h + torch.zeros_like(h).index_add_(0, dst, h[src])


class ToyModel(nn.Module):
    def __init__(self, broken: bool = False, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = Embed()
        lin1 = o3.Linear(EMBED, LIN1)
        self.lin1 = BiasedL1(lin1) if broken else lin1
        self.gate = Gate("4x0e", [torch.tanh], "6x0e", [torch.sigmoid], "4x1o + 2x2e")
        self.mp = Aggregate()
        self.lin2 = o3.Linear(GATE, OUT)
        self.head = nn.Linear(2, 1)

    def forward(self, data):
        h = self.gate(self.lin1(self.embed(data)))
        h = self.lin2(self.mp(h, data["edge_index"]))
        return {"energy": self.head(h[:, :2]).sum(), "x": h}


def random_batch(sizes=(4, 6, 5), seed: int = 0, dtype=torch.float32):
    """A PyG ``Batch`` of fully connected random point clouds with species ``z`` in {0, 1, 2}."""
    from torch_geometric.data import Batch, Data

    g = torch.Generator().manual_seed(seed)
    graphs = []
    for n in sizes:
        pos = torch.randn(n, 3, generator=g, dtype=dtype)
        i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        keep = i != j
        graphs.append(Data(pos=pos, z=torch.randint(0, 3, (n,), generator=g),
                           edge_index=torch.stack([i[keep], j[keep]])))
    return Batch.from_data_list(graphs)


LATENT_IRREPS = {"embed": EMBED, "lin1": LIN1, "gate": GATE, "lin2": OUT}
