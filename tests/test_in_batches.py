"""invlatent.utils.in_batches: batched calls equal one call, in every output form; bad input fails early."""

import pytest
import torch

from invlatent.models.graph_vae import GraphVAE
from invlatent.testing import tolerance
from invlatent.utils import in_batches

g = torch.Generator().manual_seed(0)
X = torch.randn(23, 4, generator=g)
Y = torch.randn(23, 3, generator=g)


@pytest.mark.parametrize("batch_size", [1, 5, 23, 100])
def test_forms_equal_one_call(batch_size):
    def fn(a, b):
        return {"cat": torch.cat([a, b], 1), "norm": a.norm(dim=1)}

    out, whole = in_batches(fn, X, Y, batch_size=batch_size), fn(X, Y)
    assert out.keys() == whole.keys()
    assert all(torch.allclose(out[k], whole[k]) for k in whole)
    pair = in_batches(lambda a: (a, 2 * a), X, batch_size=batch_size)
    assert isinstance(pair, tuple) and torch.equal(pair[1], 2 * X)
    # sin of a short tail may take the scalar path instead of the vector kernel: dtype tolerance
    torch.testing.assert_close(in_batches(torch.sin, X, batch_size=batch_size), torch.sin(X),
                               **tolerance(X.dtype))


def test_no_grad_and_devices():
    w = torch.ones(4, requires_grad=True)
    out = in_batches(lambda a: a * w, X, batch_size=4, device="cpu", out_device="cpu")
    assert not out.requires_grad and out.device.type == "cpu"


def test_graph_vae_encode_and_decode_match_one_pass():
    torch.manual_seed(0)
    vae = GraphVAE(hidden=8, depth=1, decoder_depth=1).eval()
    n = 10
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (n, 9), generator=g), 4).float()
    adj = torch.zeros(n, 9, 9, 3)
    mask = torch.ones(n, 9, dtype=torch.bool)
    z = torch.randn(n, 9, 1, generator=g)  # distinct codes: no ties for the greedy decoder
    with torch.no_grad():
        mu, logvar = vae.encode(x, adj, mask)
        logits = vae.decode(z)
    mu_b, logvar_b = in_batches(vae.encode, x, adj, mask, batch_size=3)
    logits_b = in_batches(vae.decode, z, batch_size=4)
    assert torch.allclose(mu_b, mu, atol=1e-6) and torch.allclose(logvar_b, logvar, atol=1e-6)
    assert all(torch.allclose(logits_b[k], logits[k], atol=1e-5) for k in logits)


def test_bad_input():
    with pytest.raises(TypeError):
        in_batches("not callable", X)
    with pytest.raises(TypeError):
        in_batches(torch.sin)
    with pytest.raises(TypeError):
        in_batches(torch.sin, X.tolist())
    with pytest.raises(ValueError, match="first dimension"):
        in_batches(torch.add, X, Y[:5])
    with pytest.raises(TypeError):
        in_batches(torch.sin, X, batch_size=2.0)
    with pytest.raises(ValueError):
        in_batches(torch.sin, X, batch_size=0)
    with pytest.raises(ValueError, match="one row per input row"):
        in_batches(lambda a: a.sum(), X, batch_size=5)


def test_progress_bar_and_empty_input():
    torch.testing.assert_close(in_batches(torch.sin, X, batch_size=5, desc="sin"), torch.sin(X),
                               **tolerance(X.dtype))
    assert in_batches(torch.sin, X[:0]).shape == (0, 4)
