"""invlatent.testing.simulated_cuda: the CPU's stand-in for a CUDA device.

Two halves, as the harness must earn its keep both ways:

* planted bugs, one per pattern that review found in this package and its chapters (a CPU
  ``arange`` fed to ``repeat_interleave`` with device counts, ``torch.equal`` across devices, a
  CPU-sampled index gathered with device tensors, a CPU model fed device inputs, a CPU ``eye``
  concatenated with device candidates, an optimizer leaf made on the CPU, ``.numpy()`` of a device
  tensor, a generator on the other device, CPU tensors indexed by device indices) must each raise
  what CUDA raises;
* device-consistent code (projections, quotient distances, a training step with Adam) must run
  without a false alarm and give the CPU's numbers (the same CPU kernels run, but the comparison
  still uses dtype tolerances, never bit equality of floats).
"""

import copy
import io
import threading

import numpy as np
import pytest
import torch

import invlatent
from invlatent import Cyclic, Permutation
from invlatent._threads import map_blocks
from invlatent.testing import is_simulated_cuda, simulated_cuda, tolerance

MIXED = "Expected all tensors to be on the same device"


@pytest.fixture
def dev():
    with simulated_cuda() as d:
        yield d


# --- the device itself ----------------------------------------------------------------------
def test_inside_cuda_is_available_and_everything_is_restored_after():
    before = (torch.cuda.is_available(), torch.Generator, invlatent.default_device())
    with simulated_cuda() as d:
        assert d == torch.device("cuda", 0)
        assert torch.cuda.is_available() and torch.cuda.device_count() == 1
        assert invlatent.default_device().type == "cuda"
        with simulated_cuda():                      # nests
            assert torch.cuda.is_available()
        assert torch.cuda.is_available()
        torch.cuda.synchronize()
        assert torch.cuda.max_memory_allocated() == 0  # memory is not simulated (documented)
    assert (torch.cuda.is_available(), torch.Generator, invlatent.default_device()) == before


def test_enter_alone_stays_open_until_exit():
    import gc

    ctx = simulated_cuda()
    ctx.__enter__()
    try:
        gc.collect()
        assert torch.zeros(2, device="cuda").device.type == "cuda"
    finally:
        ctx.__exit__(None, None, None)
    assert not is_simulated_cuda(torch.zeros(2))


@pytest.mark.parametrize("make", [
    lambda d: torch.zeros(3, device=d),
    lambda d: torch.arange(5, device=d),
    lambda d: torch.eye(3, device=d),
    lambda d: torch.randn(2, 2, device=d, generator=torch.Generator(device=d).manual_seed(0)),
    lambda d: torch.zeros_like(torch.zeros(3, device=d)),
    lambda d: torch.tensor([1.0, 2.0], device=d),
    lambda d: torch.as_tensor(np.ones(3), device=d),
    lambda d: torch.ones(2).to(d),
    lambda d: torch.ones(2).cuda(),
    lambda d: torch.ones(2).type_as(torch.ones(1, device=d)),
    lambda d: torch.zeros(3, device=d).new_zeros(4),
    lambda d: torch.ones(2, device=d)[torch.tensor([1, 0])],     # CPU indices on a CUDA tensor: allowed
    lambda d: torch.ones(2, 3, device=d) * torch.tensor(2.0),      # a CPU 0-dim scalar: allowed
    lambda d: torch.ones(2, 3, device=d).sum(0),
    lambda d: torch.linalg.svd(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)).to(d))[0],
], ids=["zeros", "arange", "eye", "randn-gen", "zeros_like", "tensor", "as_tensor", "to", "cuda",
        "type_as", "new_zeros", "cpu-index", "cpu-scalar", "reduction", "tuple-output"])
def test_factories_and_ops_land_on_the_device(dev, make):
    t = make(dev)
    assert t.device == dev and t.is_cuda and not t.is_cpu and t.get_device() == 0


def test_transfers_copy_like_cuda(dev):
    a = torch.ones(3)
    b = a.to(dev)
    assert b is not a and a.device.type == "cpu" and b.device == dev
    b.add_(1)                                   # a real transfer never aliases
    assert a.tolist() == [1.0, 1.0, 1.0]
    assert b.to(dev) is b and b.cuda() is b     # already there: the same tensor, as in CUDA
    c = b.cpu()
    assert c.device.type == "cpu" and not is_simulated_cuda(c) and c.tolist() == [2.0, 2.0, 2.0]
    assert torch.as_tensor(a, device=dev) is not a and not is_simulated_cuda(a)
    assert b.to(torch.float64).device == dev and b.double().dtype == torch.float64
    assert torch.tensor(2.0, device=dev).item() == 2.0 and b.tolist() == [2.0, 2.0, 2.0]
    assert "device='cuda:0'" in repr(b) and f"{b.sum():.1f}" == "6.0"
    assert [t.device for t in torch.zeros(2, 3, device=dev)] == [dev, dev]   # iteration


def test_modules_move_both_ways_and_keep_state(dev):
    lin = torch.nn.Linear(3, 2)
    ref = lin.weight.detach().clone()
    lin.to(dev)
    assert all(p.device == dev for p in lin.parameters())
    assert isinstance(lin.weight, torch.nn.Parameter)
    sd = lin.state_dict()
    assert all(v.device == dev for v in sd.values())
    twin = copy.deepcopy(lin)
    assert twin.weight.device == dev
    buf = io.BytesIO()
    torch.save(lin.state_dict(), buf)              # saved as CPU tensors (documented)
    buf.seek(0)
    loaded = torch.load(buf)
    lin2 = torch.nn.Linear(3, 2).to(dev)
    lin2.load_state_dict(loaded)                  # copy_ across devices is allowed
    assert lin2.weight.device == dev
    torch.testing.assert_close(lin2.weight.cpu(), ref)
    lin.cpu()
    assert lin.weight.device.type == "cpu" and not is_simulated_cuda(lin.weight)
    assert torch.nn.Linear(3, 2).to(device=dev).weight.device == dev     # keyword form
    assert torch.ones(2).to(device=dev).device == dev


def test_worker_threads_see_device_tensors(dev):
    x = torch.arange(8.0, device=dev).view(4, 2)
    out = map_blocks(lambda i: (x[i] * 2).sum(), list(range(4)), workers=2)
    assert all(o.device == dev for o in out)
    seen = []
    t = threading.Thread(target=lambda: seen.append((x + 1).device))
    t.start()
    t.join()
    assert seen == [dev]


# --- planted bugs: each raises what CUDA raises ------------------------------------------------
def _bug_arange_on_cpu(d):                       # equal_step_paths before the fix
    K = torch.tensor([2, 3], device=d)
    return torch.repeat_interleave(torch.arange(len(K)), K)


def _bug_equal_across_devices(d):                # the valence check of chapter 3
    return torch.equal(torch.ones(3, dtype=torch.bool), torch.ones(3, dtype=torch.bool, device=d))


def _bug_cpu_index_gathered(d):                  # permute_graphs with g sampled on the CPU
    x = torch.randn(4, 5, device=d)
    g = torch.randperm(5).expand(4, 5)
    return x.gather(1, g)


def _bug_cpu_model_device_input(d):              # load_book_vae without device=
    return torch.nn.Linear(3, 2)(torch.randn(4, 3, device=d))


def _bug_eye_concatenated(d):                    # the rotation search's identity start
    return torch.cat([torch.eye(3)[None], torch.randn(5, 3, 3, device=d)])


def _bug_optimizer_leaf_on_cpu(d):               # the rotation search's Adam leaf
    w0 = torch.zeros(3, requires_grad=True)
    target = torch.randn(3, device=d)
    return ((w0 - target) ** 2).sum()


def _bug_numpy_of_device_tensor(d):
    return torch.ones(3, device=d).numpy()


def _bug_np_asarray(d):
    return np.asarray(torch.ones(3, device=d))


def _bug_generator_cpu_for_device(d):
    return torch.randn(3, device=d, generator=torch.Generator().manual_seed(0))


def _bug_generator_device_for_cpu(d):
    return torch.randperm(4, generator=torch.Generator(device=d).manual_seed(0))


def _bug_device_index_of_cpu_tensor(d):
    return torch.ones(5)[torch.tensor([0, 2], device=d)]


def _bug_grad_on_other_device(d):
    p = torch.nn.Parameter(torch.ones(2, device=d))
    p.grad = torch.ones(2)


PLANTED = [
    (_bug_arange_on_cpu, RuntimeError, MIXED),
    (_bug_equal_across_devices, RuntimeError, MIXED),
    (_bug_cpu_index_gathered, RuntimeError, MIXED),
    (_bug_cpu_model_device_input, RuntimeError, MIXED),
    (_bug_eye_concatenated, RuntimeError, MIXED),
    (_bug_optimizer_leaf_on_cpu, RuntimeError, MIXED),
    (_bug_numpy_of_device_tensor, TypeError, "can't convert cuda:0 device type tensor to numpy"),
    (_bug_np_asarray, TypeError, "can't convert cuda:0 device type tensor to numpy"),
    (_bug_generator_cpu_for_device, RuntimeError, "Expected a 'cuda' device type for generator"),
    (_bug_generator_device_for_cpu, RuntimeError, "Expected a 'cpu' device type for generator"),
    (_bug_device_index_of_cpu_tensor, RuntimeError, "indices should be either on cpu"),
    (_bug_grad_on_other_device, RuntimeError, "different device"),
]


@pytest.mark.parametrize("bug, exc, match", PLANTED, ids=[b.__name__[5:] for b, _, _ in PLANTED])
def test_planted_bug_is_caught(dev, bug, exc, match):
    with pytest.raises(exc, match=match):
        bug(dev)


@pytest.mark.parametrize("bug, exc, match", PLANTED, ids=[b.__name__[5:] for b, _, _ in PLANTED])
def test_the_same_code_runs_on_the_cpu(bug, exc, match):
    """Control: every planted bug is a device bug only (on the CPU the same lines run)."""
    bug(torch.device("cpu"))


# --- no false alarm on device-consistent code: the CPU's numbers -------------------------------
def _same(cpu, gpu, dtype=torch.float64):
    assert gpu.device.type == "cuda", gpu.device
    torch.testing.assert_close(gpu.cpu(), cpu, **tolerance(dtype))


def test_projections_and_quotient_distances_match_the_cpu(dev):
    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(6, 5, 3, generator=gen, dtype=torch.float64)
    z2 = torch.randn(6, 5, 3, generator=gen, dtype=torch.float64)
    for fn in (invlatent.sort_projection, invlatent.lexsort_projection):
        _same(fn(z1), fn(z1.to(dev)))
    S = Permutation()
    _same(S.quotient_distance(z1, z2), S.quotient_distance(z1.to(dev), z2.to(dev)))
    _same(invlatent.pairwise_quotient_distance(z1, z2, S),
          invlatent.pairwise_quotient_distance(z1.to(dev), z2.to(dev), S))
    C = Cyclic(5)
    x1, x2 = z1[..., 0], z2[..., 0]
    _same(C.quotient_distance(x1, x2), C.quotient_distance(x1.to(dev), x2.to(dev)))
    mf = invlatent.MaxFilter(C, (5,), 7, seed=0).double()
    ref = mf(x1)
    _same(ref, mf.to(dev)(x1.to(dev)))


def test_a_training_step_with_adam_matches_the_cpu(dev):
    def step(device):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        net = net.double().to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        g = torch.Generator(device=device).manual_seed(1)
        x = torch.randn(16, 4, generator=g, device=device, dtype=torch.float64)
        for _ in range(3):
            opt.zero_grad()
            loss = (net(x) - x.sum(1, keepdim=True)).pow(2).mean()
            loss.backward()
            opt.step()
        return [p.detach() for p in net.parameters()], loss.detach()

    cpu_params, cpu_loss = step(torch.device("cpu"))
    dev_params, dev_loss = step(dev)
    _same(cpu_loss, dev_loss)
    for a, b in zip(cpu_params, dev_params):
        _same(a, b)


def test_e3nn_modules_built_inside_match_the_cpu(dev):
    """e3nn generates code with torch.fx while a module is built: the fx Proxies take their own
    calls (no false alarm), and the module then runs on the device with the CPU's numbers."""
    from e3nn import o3
    from e3nn.nn import Gate

    torch.manual_seed(0)
    gate = Gate("4x0e", [torch.nn.functional.silu], "2x0e", [torch.sigmoid], "2x1e").double()
    tp = o3.FullyConnectedTensorProduct("2x0e+1x1e", "1x1e", "2x0e+1x1e").double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, gate.irreps_in.dim, generator=gen, dtype=torch.float64)
    a = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    b = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    ref_gate, ref_tp = gate(x), tp(a, b)
    _same(ref_gate, gate.to(dev)(x.to(dev)))
    _same(ref_tp, tp.to(dev)(a.to(dev), b.to(dev)))
    built_inside = Gate("4x0e", [torch.nn.functional.silu], "2x0e", [torch.sigmoid], "2x1e")
    assert built_inside.to(dev)(x.float().to(dev)).device == dev
