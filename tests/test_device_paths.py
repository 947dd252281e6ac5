"""Every package path a GPU user hits, run on a CUDA device and compared with the CPU.

The device is the ``cuda_device`` fixture (tests/conftest.py): the real GPU when there is one,
else :func:`invlatent.testing.simulated_cuda`, which keeps the data on the CPU but raises CUDA's
errors when code mixes devices. Each path is checked to (a) run, (b) return its tensors on the
device (or on the CPU where the function says it returns CPU tensors or NumPy arrays), and (c)
give the CPU's numbers, within :func:`invlatent.testing.tolerance` of the dtype (the simulated
device runs the CPU's kernels, a real GPU its own: never bit equality for floats). Integer
results (graphs, indices) are compared exactly: they come from argmax / sorting of values that
agree, and the small random inputs here have no ties.

Random draws inside the package follow the generator's device; where a path draws its noise
from the global RNG on the device (training), only (a) and (b) are checked.
"""

import copy

import numpy as np
import pytest
import torch

from invlatent import Cyclic, O3, SO3, Permutation
from invlatent.testing import is_simulated_cuda, tolerance


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: the inputs are tiny, and more threads only contend on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- helpers -----------------------------------------------------------------------------------
def to(obj, device):
    """``obj`` with every tensor moved to ``device`` (modules deep-copied first, so the CPU one stays)."""
    if isinstance(obj, torch.nn.Module):
        return copy.deepcopy(obj).to(device)
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to(v, device) for v in obj)
    return obj


def assert_on(obj, kind: str):
    """Every tensor in ``obj`` lives on a device of type ``kind`` ("cuda" or "cpu")."""
    if isinstance(obj, torch.Tensor):
        assert obj.device.type == kind, (obj.device, kind)
    elif isinstance(obj, dict):
        for v in obj.values():
            assert_on(v, kind)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            assert_on(v, kind)


def assert_same(got, want, scale: float = 1.0):
    """``got`` (any device) equals ``want`` (CPU): floats within the dtype's tolerance, the rest exactly."""
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.dtype == want.dtype, (type(got), getattr(got, "dtype", None))
        got = got.detach().cpu()
        if want.is_floating_point() or want.is_complex():
            torch.testing.assert_close(got, want.detach(), **tolerance(want.dtype, scale=scale))
        else:
            assert torch.equal(got, want)
    elif isinstance(want, dict):
        assert set(got) == set(want)
        for k in want:
            assert_same(got[k], want[k], scale)
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert_same(a, b, scale)
    elif isinstance(want, np.ndarray):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9, equal_nan=True)
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-9)
    else:
        assert got == want


def on_both(fn, *args, device, out: str = "cuda", scale: float = 1.0):
    """Run ``fn(*args)`` on the CPU and on ``device``; check where the result lives and that it agrees."""
    dev_args = to(args, device)  # first: fn may change a module in place (an optimiser step)
    want = fn(*args)
    got = fn(*dev_args)
    assert_on(got, out)
    assert_same(got, want, scale)
    return got, want


def random_graphs(B=5, n=9, seed=0, dtype=torch.float64):
    """Dense molecule-like graphs (one-hot atoms, symmetric one-hot bonds, mask), at least 3 nodes."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(3, n + 1, (B,), generator=g)
    mask = torch.arange(n)[None] < sizes[:, None]
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (B, n), generator=g), 4).to(dtype) * mask[..., None]
    b = torch.randint(0, 4, (B, n, n), generator=g).triu(1)
    b = (b + b.transpose(1, 2)) * (mask[:, :, None] & mask[:, None, :])
    adj = torch.nn.functional.one_hot(b, 4)[..., 1:].to(dtype)
    return x, adj, mask


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


DECODERS = ["maron", "sort-mlp", "sort-transformer", "sort-autoregressive"]


def small_vae(decoder, dtype=torch.float64, c=1):
    from invlatent.models.graph_vae import GraphVAE

    torch.manual_seed(0)
    return GraphVAE(latent_channels=c, hidden=8, depth=1, decoder=decoder, decoder_width=16).to(dtype)


# --- the graph VAE -----------------------------------------------------------------------------
@pytest.mark.parametrize("decoder", DECODERS)
def test_graph_vae_forward_loss_backward_and_adam_step(cuda_device, decoder):
    vae = small_vae(decoder)
    data = random_graphs()

    def run(model, x, adj, mask):
        enc = model.encode(x, adj, mask)
        logits = model.decode(enc[0])
        fwd = model(x, adj, mask, sample=False)
        terms = model.loss(x, adj, mask, beta=0.5, sample=False)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        opt.zero_grad()
        terms["loss"].backward()
        grads = [p.grad.clone() for p in model.parameters()]
        opt.step()
        return enc, logits, fwd, terms, grads, [p.detach().clone() for p in model.parameters()]

    on_both(run, vae, *data, device=cuda_device)


@pytest.mark.parametrize("decoder", ["maron", "sort-autoregressive"])
def test_graph_vae_sampled_paths_reconstruct_and_prior_samples(cuda_device, decoder):
    vae = small_vae(decoder).eval()
    dev_vae = to(vae, cuda_device)
    x, adj, mask = to(random_graphs(), cuda_device)
    # posterior noise from a generator on the device; mmd draws prior samples from it too
    terms = dev_vae.loss(x, adj, mask, generator=torch.Generator(cuda_device).manual_seed(0), mmd=0.5)
    assert_on(terms, "cuda")
    assert all(bool(torch.isfinite(v)) for v in terms.values())
    assert_same(dev_vae.reconstruct(x, adj, mask), vae.reconstruct(*random_graphs()))
    assert_same(dev_vae.reconstruct(x, adj, mask, connected=True),
                vae.reconstruct(*random_graphs(), connected=True))
    # prior samples: a CPU generator gives the CPU's molecules on any device
    got = dev_vae.sample(6, generator=torch.Generator().manual_seed(1), connected=True)
    assert_on(got, "cuda")
    assert_same(got, vae.sample(6, generator=torch.Generator().manual_seed(1), connected=True))
    # ... and a generator on the device is accepted too
    assert_on(dev_vae.sample(3, generator=torch.Generator(cuda_device).manual_seed(1)), "cuda")


def test_decode_graphs_valence_decode_and_smiles(cuda_device):
    from invlatent.models.graph_vae import decode_graphs
    from invlatent.molecules import graphs_to_smiles, valence_decode

    vae = small_vae("sort-transformer").eval()
    z = randn(6, 9, 1, seed=3)
    with torch.no_grad():
        logits = vae.decode(z)
    for connected in (False, True):
        on_both(lambda lg: decode_graphs(lg, connected=connected), logits, device=cuda_device)
    for connect in (False, True):
        # valence_decode returns its graphs on the device of the logits, like decode_graphs
        got, want = on_both(lambda lg: valence_decode(lg, connect=connect), logits, device=cuda_device)
        assert graphs_to_smiles(*got) == graphs_to_smiles(*want)
    # the two decodings can be compared on the device (issue 37, item 2): same nodes and atoms
    dev_logits = to(logits, cuda_device)
    (v_atom, _, v_mask), (a_atom, _, a_mask) = valence_decode(dev_logits), decode_graphs(dev_logits)
    some = a_mask.any(1)                                 # (a graph with no node keeps its likeliest)
    assert bool(some.any())
    assert torch.equal(v_mask[some], a_mask[some]) and torch.equal(v_atom[some], a_atom[some])


def test_permute_graphs_with_permutations_from_either_device(cuda_device):
    from invlatent.models.graph_vae import permute_graphs

    data = random_graphs()
    perm = Permutation(9).sample(5, generator=torch.Generator().manual_seed(2))
    on_both(permute_graphs, perm, *data, device=cuda_device)
    # a permutation drawn with a generator on the device lands there
    g = Permutation(9).sample(5, generator=torch.Generator(cuda_device).manual_seed(2))
    assert g.device.type == "cuda"
    assert_on(permute_graphs(g, *to(data, cuda_device)), "cuda")


@pytest.mark.parametrize("data_on", ["cpu", "cuda"])
def test_train_graph_vae_on_the_device(cuda_device, data_on):
    from invlatent.models.graph_vae import train_graph_vae
    from invlatent.train import graph_vae_scores

    x, adj, mask = random_graphs(B=12, dtype=torch.float32)
    data = {"x": x, "adj": adj, "mask": mask}
    if data_on == "cuda":
        data = to(data, cuda_device)
    vae = small_vae("sort-mlp", dtype=torch.float32)
    meta = train_graph_vae(vae, data, epochs=2, batch_size=8, seed=0, device=cuda_device, mmd=0.1,
                           eval_fn=lambda m: graph_vae_scores(m, data, n_prior=4), eval_every=1)
    assert meta["epochs"] == 2 and all(np.isfinite(float(v)) for v in meta["history"].split(","))
    assert all(p.device.type == "cuda" for p in vae.parameters())


def test_shipped_and_book_weights_load_onto_the_device(cuda_device, monkeypatch, tmp_path):
    from invlatent.book import load_book_vae
    from invlatent.book import load_shipped_graph_vae

    x, adj, mask = random_graphs(B=4, dtype=torch.float32)
    cpu, _ = load_shipped_graph_vae(1)
    dev, meta = load_shipped_graph_vae(1, device=cuda_device)
    assert all(p.device.type == "cuda" for p in dev.parameters())
    with torch.no_grad():
        on_both(lambda m, *g: m.encode(*g), cpu, x, adj, mask, device=cuda_device)
        assert_same(dev.reconstruct(*to((x, adj, mask), cuda_device)), cpu.reconstruct(x, adj, mask))
    monkeypatch.setenv("INVLATENT_PROFILE", "cpu")  # the book's shipped weights (no training)
    monkeypatch.setenv("INVLATENT_CACHE", str(tmp_path))
    book, meta = load_book_vae(1, {"x": x, "adj": adj, "mask": mask}, device=cuda_device)
    assert meta["source"] == "shipped" and all(p.device.type == "cuda" for p in book.parameters())
    with torch.no_grad():
        assert book.encode(*to((x, adj, mask), cuda_device))[0].device.type == "cuda"


def test_book_vae_trained_live_on_the_device(cuda_device, monkeypatch, tmp_path):
    from invlatent.book import load_book_vae

    monkeypatch.setenv("INVLATENT_PROFILE", "smoke")
    monkeypatch.setenv("INVLATENT_CACHE", str(tmp_path))
    x, adj, mask = random_graphs(B=8, dtype=torch.float32)
    model, meta = load_book_vae(1, {"x": x, "adj": adj, "mask": mask}, device=cuda_device, epochs=1)
    assert meta["source"] == "trained" and all(p.device.type == "cuda" for p in model.parameters())


# --- interpolation paths -------------------------------------------------------------------------
def test_equal_step_paths_three_lines_and_decode_lines(cuda_device):
    from invlatent.book import decode_lines, equal_step_paths, three_lines

    za, zb = randn(4, 9, 1, seed=0), randn(4, 9, 1, seed=1)
    on_both(lambda a, b: equal_step_paths(a, b, step=0.7), za, zb, device=cuda_device)
    codes = randn(6, 9, 1, seed=2, dtype=torch.float32)
    args = (codes, codes.flip(1), torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]))
    got, want = on_both(lambda *a: three_lines(*a)[:3], *args, device=cuda_device)
    step = three_lines(*args)[3]
    assert three_lines(*to(args, cuda_device))[3] == pytest.approx(step, rel=1e-6)
    vae = small_vae("sort-transformer", dtype=torch.float32).eval()
    ends = (["C"] * 3, ["CC"] * 3)
    res_cpu, dec_cpu = decode_lines(vae, want[0], want[1], step, ends)
    res_dev, dec_dev = decode_lines(to(vae, cuda_device), got[0], got[1], step, ends)
    assert_same(res_dev, res_cpu)
    for name in dec_cpu:
        assert dec_dev[name][0] == dec_cpu[name][0]                    # the decoded SMILES
        assert_on(dec_dev[name][1:], "cpu")                            # pair, t: beside the SMILES
        assert_same(dec_dev[name][1:], dec_cpu[name][1:])


# --- quotient distances, alignment, neighbours ------------------------------------------------------
@pytest.mark.parametrize("group,shape", [(Permutation(), (5, 1)), (Permutation(), (6, 3)), (Cyclic(8), (2, 8))],
                         ids=["perm-c1", "perm-c3", "cyclic"])
def test_finite_group_quotient_paths(cuda_device, group, shape):
    from invlatent import align, aligned_interpolation, pairwise_quotient_distance, quotient_distance, quotient_knn

    z1, z2 = randn(7, *shape, seed=0), randn(7, *shape, seed=1)
    on_both(lambda a, b: quotient_distance(a, b, group), z1, z2, device=cuda_device)
    on_both(lambda a, b: pairwise_quotient_distance(a, b, group, chunk_size=3), z1, z2, device=cuda_device)
    on_both(lambda a: pairwise_quotient_distance(a, None, group), z1, device=cuda_device)
    on_both(lambda a, b: align(a, b, group, return_element=True), z1, z2, device=cuda_device)
    t = torch.linspace(0, 1, 3, dtype=torch.float64)
    on_both(lambda a, b, s: aligned_interpolation(a, b, group, s), z1, z2, t, device=cuda_device)
    on_both(lambda a: quotient_knn(a, 2, group), z1, device=cuda_device)
    if isinstance(group, Permutation):
        mask = torch.arange(shape[0])[None] < torch.tensor([[shape[0]], [2], [3], [shape[0]], [1], [4], [2]])
        on_both(lambda a, m: quotient_knn(a, 3, group, mask=m), z1, mask, device=cuda_device)


def test_sliced_and_index_knn_on_the_device(cuda_device):
    """The exact sliced search and the FAISS index run on the CPU by design; given device tensors
    (latents, mask, exclude) they return their lists on the device, equal to the CPU run. The
    latents hold node-order copies, so the index's classes are exercised too."""
    from invlatent import quotient_knn

    z = randn(12, 5, 3, seed=4)
    z = torch.cat([z, z[:4].flip(1)])  # 4 copies in another node order: one point of the quotient each
    mask = torch.ones(16, 5, dtype=torch.bool)
    mask[5, 3:] = False
    on_both(lambda a, m: quotient_knn(a, 4, Permutation(), mask=m, method="sliced"), z, mask,
            device=cuda_device)
    pytest.importorskip("faiss")
    from invlatent.quotient import QuotientIndex

    on_both(lambda a, m: quotient_knn(a, 4, Permutation(), mask=m, method="faiss"), z, mask,
            device=cuda_device)

    def index_search(a, m, ex):
        ix = QuotientIndex("flat")
        ix.add(a, mask=m)
        return ix.search(a, 4, mask=m, exclude=ex)

    on_both(index_search, z, mask, torch.arange(16), device=cuda_device)


def test_batched_assignment_on_the_device(cuda_device):
    from invlatent.quotient import assignment_value, batched_assignment

    cost = torch.rand(16, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    on_both(lambda c: batched_assignment(c, method="dp"), cost, device=cuda_device)
    on_both(lambda c: batched_assignment(c), cost, device=cuda_device)
    on_both(assignment_value, cost, device=cuda_device)


@pytest.mark.parametrize("Group", [SO3, O3])
def test_rotation_quotient_paths_with_high_l(cuda_device, Group):
    from invlatent import align, pairwise_quotient_distance, quotient_distance
    from invlatent.projections import approx_quotient_distance

    G = Group("1x0e + 2x1o + 1x2e")                      # l = 2: the rotation search
    z1, z2 = randn(3, G.irreps.dim, seed=0), randn(3, G.irreps.dim, seed=1)
    on_both(lambda a, b: quotient_distance(a, b, G), z1, z2, device=cuda_device)
    on_both(lambda a, b: approx_quotient_distance(a, b, G, steps=5), z1, z2, device=cuda_device)
    on_both(lambda a, b: pairwise_quotient_distance(a, b, G), z1[:2], z2[:2], device=cuda_device)
    with torch.no_grad():
        on_both(lambda a, b: G.quotient_distance(a, b, steps=5), z1.float(), z2.float(), device=cuda_device)
    G3 = Group("1x0e + 2x1o + 1x3o")                     # l = 3: e3nn's Wigner matrices
    w1, w2 = randn(2, G3.irreps.dim, seed=4), randn(2, G3.irreps.dim, seed=5)
    on_both(lambda a, b: G3.quotient_distance(a, b, steps=5), w1, w2, device=cuda_device)
    H = Group("1x0e + 3x1o + 1x1e")                      # l <= 1: Kabsch
    w1, w2 = randn(4, H.irreps.dim, seed=2), randn(4, H.irreps.dim, seed=3)
    on_both(lambda a, b: align(a, b, H, return_element=True), w1, w2, device=cuda_device)
    on_both(lambda a, b: quotient_distance(a, b, H), w1, w2, device=cuda_device)
    # group elements drawn on the device act on device latents
    g = H.sample(4, generator=torch.Generator(cuda_device).manual_seed(0))
    assert H.act(g, w1.to(cuda_device)).device.type == "cuda"


@pytest.mark.parametrize("Group", [SO3, O3])
def test_set_quotient_bounds(cuda_device, Group):
    from invlatent.quotient import pairwise_set_quotient_bounds, set_quotient_bounds

    irreps = "2x0e + 2x1o + 1x2e"
    z1, z2 = randn(2, 3, 13, seed=0), randn(2, 3, 13, seed=1)
    mask = torch.tensor([[True] * 3, [True, False, True]])
    G = Group(irreps)
    # starts=4: the three deterministic starts and one random rotation (drawn with the seed)
    on_both(lambda a, b, m: set_quotient_bounds(a, b, G, m, m, starts=4, generator=3), z1, z2, mask,
            device=cuda_device)
    on_both(lambda a, m: pairwise_set_quotient_bounds(a, G, m, starts=2, chunk_size=2, show_progress=False),
            torch.cat([z1, z2[:1]]), torch.cat([mask, mask[:1]]), device=cuda_device)


# --- projections ----------------------------------------------------------------------------------
def projection_cases():
    """(name, module, inputs) for every projection module, with the inputs of their own tests."""
    from invlatent.projections import (AlignToTemplate, Bispectrum, Chunked, CompleteInvariants, FrameAveraging,
                                       GramInvariants, GramMDSProjection, IrrepNorms, LatentFrameCanonicalization,
                                       LexSortProjection, MaxFilter, PCACanonicalization, PooledCompleteInvariants,
                                       PooledIrrepNorms, PooledScalars, PowerSpectrum, RelativeProjection,
                                       ReynoldsProjection, SortProjection)

    P, C = Permutation(), Cyclic(8)
    irreps = "2x0e + 4x1o + 1x2e"
    set_irreps = "3x0e + 2x1o + 1x1e + 2x2e"
    z62, mask = randn(5, 6, 2, seed=0), torch.rand(5, 6, generator=torch.Generator().manual_seed(1)) > 0.3
    zc, zi = randn(4, 3, 8, seed=2), randn(4, 19, seed=3)
    pts, zs = randn(4, 6, 3, seed=4), randn(4, 5, 22, seed=5)
    smask = torch.tensor([[True] * 5, [True] * 4 + [False], [True] * 2 + [False] * 3, [True] * 5])
    return [
        ("sort", SortProjection(), (z62, mask)),
        ("lexsort", LexSortProjection(), (z62, mask)),
        ("align-perm", AlignToTemplate(P, (5, 2), seed=1), (randn(6, 5, 2, seed=6),)),
        ("align-cyclic", AlignToTemplate(C, (3, 8), seed=1), (randn(6, 3, 8, seed=7),)),
        ("maxfilter-perm-c1", MaxFilter(P, (7, 1), 16, seed=0), (randn(6, 7, 1, seed=8),)),
        ("maxfilter-perm", MaxFilter(P, (6, 2), 16, seed=0), (z62,)),
        ("maxfilter-cyclic", MaxFilter(C, (3, 8), 16, seed=0), (zc,)),
        ("reynolds-perm", ReynoldsProjection(P, (6, 2), 4), (z62,)),
        ("reynolds-cyclic", ReynoldsProjection(C, (3, 8), 4), (zc,)),
        ("power", PowerSpectrum(), (zc,)),
        ("bispectrum", Bispectrum(), (zc,)),
        ("bispectrum-full", Bispectrum(full=True), (zc,)),
        ("irrep-norms", IrrepNorms(irreps, dtype=torch.float64), (zi,)),
        ("complete-so3", CompleteInvariants(SO3(irreps), degree=2, dtype=torch.float64), (zi,)),
        ("complete-o3-deg3", CompleteInvariants(O3("3x1o"), degree=3, dtype=torch.float64), (randn(4, 9, seed=9),)),
        ("relative", RelativeProjection(randn(3, 7, seed=10)), (randn(4, 7, seed=11),)),
        ("gram-mds", GramMDSProjection(irreps), (zi,)),
        ("pca", PCACanonicalization(irreps), (zi, pts)),
        ("frame-average", FrameAveraging(irreps, proper=False), (zi, pts)),
        ("latent-frame", LatentFrameCanonicalization(irreps), (zi,)),
        ("chunked", Chunked(SortProjection(), chunk_size=2), (z62,)),
        ("pooled-scalars", PooledScalars(set_irreps, pool="sort"), (zs, smask)),
        ("pooled-norms", PooledIrrepNorms(set_irreps, pool="mean"), (zs, smask)),
        ("pooled-complete", PooledCompleteInvariants(SO3(set_irreps), pool="sum"), (zs, smask)),
        ("gram-invariants", GramInvariants(set_irreps), (zs, smask)),
    ]


CASES = projection_cases()
IRREPS = "2x0e + 3x1o + 2x2e + 1x1e"
SET_IRREPS = "3x0e + 2x1o + 1x1e + 2x2e"


def e3nn_encoder(**kw):
    from invlatent.models.e3nn_encoder import E3NNEncoder

    torch.manual_seed(0)
    return E3NNEncoder(**{"latent_irreps": "4x0e + 2x1o + 2x2e", "hidden_irreps": "8x0e + 4x1o + 2x2e",
                          "num_layers": 2, "channels": 4, **kw})


@pytest.mark.parametrize("name,module,inputs", CASES, ids=[c[0] for c in CASES])
def test_projection_modules(cuda_device, name, module, inputs):
    # float64 inputs: the module in float64 too (the irreps modules are built in float64)
    on_both(lambda m, *a: m(*a), copy.deepcopy(module).to(inputs[0].dtype), *inputs, device=cuda_device)


def test_projection_functions(cuda_device):
    from invlatent import (align_to_template, bispectrum, lexsort_projection, max_filter, power_spectrum,
                           reynolds_projection, sort_projection)
    from invlatent.projections import (canonicalize, frame_average, frame_set, gram_invariants, latent_frame,
                                       pca_frame, pooled_complete_invariants, pooled_irrep_norms, pooled_scalars)

    C = Cyclic(4)
    z, w, W = randn(3, 2, 4, seed=0), randn(5, 2, 4, seed=1), randn(6, 8, seed=2)
    on_both(lambda a, b: max_filter(a, C, b), z, w, device=cuda_device)
    on_both(lambda a, b: align_to_template(a, C, b), z, w[0], device=cuda_device)
    on_both(lambda a, b: reynolds_projection(a, C, b), z, W, device=cuda_device)
    on_both(sort_projection, randn(4, 5, 2, seed=3), device=cuda_device)
    on_both(lexsort_projection, randn(4, 5, 2, seed=3), device=cuda_device)
    on_both(power_spectrum, z, device=cuda_device)
    on_both(bispectrum, z, device=cuda_device)
    irreps = IRREPS
    zi, pts = randn(5, 24, seed=4), randn(5, 7, 3, seed=5)
    on_both(pca_frame, pts, device=cuda_device)
    on_both(lambda p: frame_set(p, proper=False), pts, device=cuda_device)
    on_both(lambda a: latent_frame(a, irreps), zi, device=cuda_device)
    on_both(lambda a, p: canonicalize(a, irreps, pca_frame(p)), zi, pts, device=cuda_device)
    on_both(lambda a, p: frame_average(a, irreps, frame_set(p, proper=False)), zi, pts, device=cuda_device)
    set_irreps = SET_IRREPS
    zs, m = randn(3, 4, 22, seed=6), torch.tensor([[True] * 4, [True] * 2 + [False] * 2, [True, False, True, True]])
    on_both(lambda a, k: pooled_scalars(a, set_irreps, k, "sort"), zs, m, device=cuda_device)
    on_both(lambda a, k: pooled_irrep_norms(a, set_irreps, k, "sum"), zs, m, device=cuda_device)
    on_both(lambda a, k: pooled_complete_invariants(a, SO3(set_irreps), k, "sum"), zs, m, device=cuda_device)
    on_both(lambda a, k: gram_invariants(a, set_irreps, k), zs, m, device=cuda_device)


def test_irreps_functions(cuda_device):
    """irrep_norms / complete_invariants move their cached e3nn module with ``.to(device=z.device)``
    (the keyword form of ``Module.to``)."""
    from invlatent import complete_invariants, irrep_norms
    from invlatent.projections import pooled_complete_invariants

    zi, zs = randn(5, 24, seed=4), randn(3, 4, 22, seed=6)
    on_both(lambda a: irrep_norms(a, IRREPS), zi, device=cuda_device)
    on_both(lambda a: complete_invariants(a, O3(IRREPS), degree=3), zi, device=cuda_device)
    on_both(lambda a: pooled_complete_invariants(a, SO3(SET_IRREPS), None, "sort", degree=3), zs,
            device=cuda_device)


def test_project_in_chunks_streams_through_the_device(cuda_device):
    from invlatent import MaxFilter
    from invlatent.projections import project_in_chunks

    z = randn(50, 6, 2, seed=0, dtype=torch.float32)
    mf = MaxFilter(Permutation(), (6, 2), n_out=8, seed=0)
    want = mf(z)
    # CPU latents streamed through the device, gathered on the CPU (the default: z's device)
    got = project_in_chunks(to(mf, cuda_device), z, chunk_size=16, device=cuda_device)
    assert got.device.type == "cpu"
    assert_same(got, want)
    # ... or gathered on the device
    got = project_in_chunks(to(mf, cuda_device), z, chunk_size=16, device=cuda_device, out_device=cuda_device)
    assert got.device.type == "cuda"
    assert_same(got, want)


def test_invariant_projector_takes_device_tensors(cuda_device):
    from invlatent import InvariantProjector

    z = randn(12, 5, 2, seed=0)
    for method in ("max_filter", "sort", "align"):
        proj = InvariantProjector(Permutation(), (5, 2), method=method, n_out=8, seed=3)
        want = proj.fit_transform(z.flatten(1).numpy())
        got = InvariantProjector(Permutation(), (5, 2), method=method, n_out=8, seed=3).fit_transform(
            z.to(cuda_device))
        assert isinstance(got, np.ndarray)                   # NumPy out, as for NumPy in
        np.testing.assert_allclose(got, want, **tolerance(torch.float64))
        np.testing.assert_allclose(proj.transform(z.to(cuda_device)), want, **tolerance(torch.float64))


# --- groups ---------------------------------------------------------------------------------------
def test_groups_sample_with_a_generator_on_the_device_and_act_there(cuda_device):
    from invlatent import ImageRotation
    from invlatent.groups import Product

    z = randn(3, 4, 9, seed=0)
    cases = [(Permutation(), randn(3, 4, 2)), (Permutation(4), randn(3, 4, 2)), (Cyclic(5), randn(3, 2, 5)),
             (SO3("1x0e + 1x1o + 1x2e"), randn(3, 9)), (O3("1x0e + 1x1o + 1x2e"), randn(3, 9)),
             (Product(Permutation(), SO3("1x0e + 1x1o + 1x2e")), z), (ImageRotation(4), randn(3, 1, 8, 8))]
    for group, x in cases:
        # a CPU generator: the same elements whatever the device they are asked on
        want = group.act(group.sample(3, generator=torch.Generator().manual_seed(1)), x)
        got = group.act(group.sample(3, generator=torch.Generator().manual_seed(1), device=cuda_device),
                        x.to(cuda_device))
        assert_on(got, "cuda")
        assert_same(got, want)
        # a generator on the device: the elements are drawn there
        g = group.sample(3, generator=torch.Generator(cuda_device).manual_seed(1))
        assert_on(group.act(g, x.to(cuda_device)), "cuda")


# --- diagnostics -----------------------------------------------------------------------------------
def test_invariance_and_equivariance_errors(cuda_device):
    from invlatent import ambiguity_index, equivariance_error, invariance_error, retention
    from invlatent.projections import SortProjection
    from invlatent.testing import assert_equivariant

    P = Permutation()
    z = randn(6, 5, 3, seed=0)
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2).double()                  # node-wise: permutation equivariant
    cpu = (invariance_error(SortProjection(), z, P), equivariance_error(lin, z, P, P),
           assert_equivariant(lin, z, P, P), invariance_error(lambda t: t.sum(1), z, P, relative=True))
    zd, lind = z.to(cuda_device), to(lin, cuda_device)
    dev = (invariance_error(SortProjection(), zd, P), equivariance_error(lind, zd, P, P),
           assert_equivariant(lind, zd, P, P), invariance_error(lambda t: t.sum(1), zd, P, relative=True))
    for a, b in zip(dev, cpu):
        assert isinstance(a, float) and a == pytest.approx(b, abs=1e-12)
    assert_equivariant(lind, zd, P, P, float64=False)
    amb = ambiguity_index(z, P), ambiguity_index(zd, P)
    assert amb[1] == pytest.approx(amb[0], rel=1e-9)
    proj, ref = randn(20, 4, seed=1), randn(20, 5, 2, seed=2)
    want = retention(proj, ref, P, k=3)
    got = retention(proj.to(cuda_device), ref.to(cuda_device), P, k=3)
    assert_same({k: float(v) for k, v in got.items()}, {k: float(v) for k, v in want.items()})


def test_equivariance_audit(cuda_device):
    from invlatent.audit import equivariance_audit

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))  # node-wise
    x = randn(5, 6, 3, dtype=torch.float32)
    P = Permutation()
    want = equivariance_audit(mlp, x, ["0", "2"], P, P)
    got = equivariance_audit(to(mlp, cuda_device), x.to(cuda_device), ["0", "2"], P, P)
    assert got["equivariant"].all() and list(got["layer"]) == list(want["layer"])
    np.testing.assert_allclose(got["rel_error_max"], want["rel_error_max"], atol=1e-12)


# --- models ------------------------------------------------------------------------------------------
def test_maron_layers(cuda_device):
    from invlatent.models.maron import EdgeToEdge, EdgeToNode, MaskedInstanceNorm, NodeToEdge, NodeToNode

    torch.manual_seed(0)
    x, a = randn(3, 7, 5, seed=0), randn(3, 7, 7, 5, seed=1)
    mask = torch.rand(3, 7, generator=torch.Generator().manual_seed(2)) < 0.7
    for layer, inp in [(NodeToNode(5, 4), x), (NodeToEdge(5, 4), x), (EdgeToEdge(5, 4), a), (EdgeToNode(5, 4), a),
                       (MaskedInstanceNorm(5), x), (MaskedInstanceNorm(5, edges=True), a)]:
        layer = layer.double()

        def run(m, t, k):
            out = m(t, k)
            out.square().sum().backward()
            return out, [p.grad for p in m.parameters()]

        on_both(run, layer, inp, mask, device=cuda_device)
        on_both(lambda m, t: m(t, None), layer, inp, device=cuda_device)


def test_gcnn_layers_network_training_and_encode(cuda_device):
    from invlatent.models.gcnn import (GCNN, GroupConv, GroupMaxPool2d, GroupPool, LiftingConv, encode_images,
                                       layer_equivariance_errors, rotate_group_features, train_gcnn)

    torch.manual_seed(0)
    x = randn(2, 1, 12, 12, seed=0)
    lift, conv = LiftingConv(1, 3, 8, 5).double(), GroupConv(3, 2, 8, 3).double()
    on_both(lambda m, t: m(t), lift, x, device=cuda_device)
    f = lift(x)
    on_both(lambda m, t: m(t), conv, f, device=cuda_device)
    on_both(lambda t: GroupMaxPool2d()(t), f, device=cuda_device)
    on_both(lambda t: rotate_group_features(t, 1), f, device=cuda_device)
    on_both(lambda t: GroupPool("mean")(t), randn(4, 3, 8, seed=1), device=cuda_device)
    torch.manual_seed(0)
    net = GCNN(4, channels=(2,), latent_channels=3, n_classes=2).double().eval()
    img = randn(3, 1, 28, 28, seed=2)
    on_both(lambda m, t: (m.encode(t), m(t)), net, img, device=cuda_device)
    want = layer_equivariance_errors(net, img, 1)
    got = layer_equivariance_errors(to(net, cuda_device), img.to(cuda_device), 1)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-12)
    # encode_images: CPU images in, through the model's device
    on_both(lambda m: encode_images(m, img, batch_size=2), net, device=cuda_device)
    y = torch.tensor([0, 1, 1])
    dev_net = to(net, cuda_device).float().train()
    meta = train_gcnn(dev_net, img.float(), y, epochs=1, batch_size=2, device=cuda_device)
    assert np.isfinite(meta["final_loss"]) and all(p.device.type == "cuda" for p in dev_net.parameters())


def test_e3nn_encoder(cuda_device):
    from invlatent.models.e3nn_encoder import equivariant_property_loss

    pos = randn(9, 3, seed=0) * 1.2
    atom_type = torch.randint(0, 5, (9,), generator=torch.Generator().manual_seed(1))
    batch = torch.tensor([0] * 5 + [1] * 4)

    def run(m, p, a, b):
        z = m(p, a, b, 2)
        z.square().sum().backward()
        return z, [q.grad for q in m.parameters()]

    on_both(run, e3nn_encoder().double(), pos, atom_type, batch, device=cuda_device)
    s = randn(2, 2, seed=2)
    t1, t2 = randn(2, 5, seed=3), randn(2, 5, seed=4)
    on_both(equivariant_property_loss, s, s + 1, t1, t2, device=cuda_device)


def test_e3nn_training_and_encode_molecules(cuda_device, tmp_path):
    from invlatent.data.qm9_3d import load_qm9_3d
    from invlatent.models.e3nn_encoder import E3NNPropertyModel, encode_molecules, train_property_model

    ds = load_qm9_3d(limit=8, root=tmp_path)
    enc = e3nn_encoder(hidden_irreps="8x0e + 2x1o + 1x2e", num_layers=1)
    idx = torch.arange(8)
    # documented: latents gathered on the CPU; float32 sums over neighbours
    on_both(lambda m: encode_molecules(m, ds, idx, batch_size=3), enc, device=cuda_device, out="cpu", scale=10)
    torch.manual_seed(0)
    model = E3NNPropertyModel(enc, num_scalars=2).to(cuda_device)
    meta = train_property_model(model, ds, idx, ("gap", "alpha"), epochs=1, batch_size=4, device=cuda_device)
    assert np.isfinite(meta["loss"]) and all(p.device.type == "cuda" for p in model.parameters())


def test_simulated_device_is_in_use_without_a_gpu(cuda_device):
    """Guard: without a GPU these tests really run on the simulated device (not on the CPU)."""
    z = torch.zeros(2, device=cuda_device)
    assert z.device.type == "cuda"
    if not torch.backends.cuda.is_built():
        assert is_simulated_cuda(z)
