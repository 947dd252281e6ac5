"""load_shipped_graph_vae: the architecture comes from the file, the weights load and encode."""

import pytest
import torch

from invlatent import Permutation
from invlatent.models.graph_vae import permute_graphs
from invlatent.book import load_shipped_graph_vae


def random_graphs(B=4, n=9, seed=0):
    """Dense random molecules-like graphs: (x one-hot atoms, symmetric one-hot bonds, mask)."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(3, n + 1, (B,), generator=g)
    mask = torch.arange(n)[None] < sizes[:, None]
    x = torch.nn.functional.one_hot(torch.randint(4, (B, n), generator=g), 4).float()
    bonds = torch.randint(4, (B, n, n), generator=g)
    bonds = torch.triu(bonds, 1)
    bonds = bonds + bonds.transpose(1, 2)
    adj = torch.nn.functional.one_hot(bonds, 4)[..., 1:].float()
    pair = mask[:, :, None] & mask[:, None, :]
    return x * mask[..., None], adj * pair[..., None], mask


@pytest.mark.parametrize("c", [1, 2])
def test_architecture_from_metadata_and_equivariant_codes(c):
    vae, meta = load_shipped_graph_vae(c)
    assert vae.latent_channels == c == int(meta["latent_channels"])
    assert not vae.training
    x, adj, mask = random_graphs()
    perm = Permutation(9)
    g = perm.sample(len(x), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z = vae.encode(x, adj, mask)[0]
        z_perm = vae.encode(*permute_graphs(g, x, adj, mask))[0]
    assert z.shape == (4, 9, c)
    # the shipped encoder is permutation-equivariant: float32 round-off of a sum over <= 9 nodes
    assert torch.allclose(z_perm, perm.act(g, z), atol=1e-4 * float(z.abs().max()) + 1e-6)


def test_bad_c():
    with pytest.raises(ValueError, match="no shipped weights"):
        load_shipped_graph_vae(3)
    with pytest.raises(TypeError, match="c must be an int"):
        load_shipped_graph_vae(1.0)
