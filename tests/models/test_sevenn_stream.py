"""Streamed capture of SevenNet node features (``stream_node_features``): the same features as
``node_features``, and host memory that does not grow with the number of molecules.

Skipped when the optional ``sevenn`` is absent. The memory test runs the real adapter path
(``sevenn_batch`` -> ``capture_latents`` -> ``project_stream``) in child processes and reads each
child's peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: tracemalloc does not
see torch's allocations).
"""

import json
import os
import subprocess
import sys

import pytest
import torch

sevenn = pytest.importorskip("sevenn")
resource = pytest.importorskip("resource")  # POSIX only

from invlatent.models.sevenn import (load_sevenn, node_features,  # noqa: E402
                                     stream_node_features)
from invlatent.projections import pooled_scalars  # noqa: E402

LAYER = "3_equivariant_gate"
IRREPS = "128x0e+64x1e+32x2e"
SLOTS, DIM = 29, 480  # QM9's padded size and the block's feature dimension


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return load_sevenn("7net-0")


def _waters(B, slots=SLOTS, seed=0):
    """``B`` water molecules in random orientations, padded to ``slots`` atoms (Å)."""
    from invlatent import SO3

    base = torch.tensor([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    R = SO3("1x1o").sample(B, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    pos = torch.zeros(B, slots, 3)
    pos[:, :3] = base @ R.transpose(1, 2)
    numbers = torch.zeros(B, slots, dtype=torch.long)
    numbers[:, :3] = torch.tensor([8, 1, 1])
    return pos, numbers, numbers > 0


def _molecules():
    from ase.build import molecule

    names = ["H2O", "CH3OH", "NH3", "HCN", "CH3CH2OH"]
    pos = torch.zeros(len(names), 9, 3)
    num = torch.zeros(len(names), 9, dtype=torch.long)
    for b, name in enumerate(names):
        a = molecule(name)
        pos[b, :len(a)] = torch.tensor(a.get_positions(), dtype=torch.float32)
        num[b, :len(a)] = torch.tensor(a.get_atomic_numbers())
    return pos, num, num > 0


def test_stream_matches_node_features(model):
    pos, num, mask = _molecules()
    views = {"0e": lambda z, m, rows: pooled_scalars(z, IRREPS, m),
             "rows": lambda z, m, rows: torch.arange(rows.start, rows.stop, device=z.device)}
    out = stream_node_features(model, pos, num, mask, layer=LAYER, keep=3, batch_size=2, views=views,
                               dtype=torch.float64)
    ref = node_features(model, pos, num, mask, layers=LAYER).z[LAYER]
    assert out.z.dtype == torch.float32 and out.z.shape == (3, 9, DIM)
    torch.testing.assert_close(out.z, ref[:3])
    assert out.views["0e"].dtype == torch.float64
    torch.testing.assert_close(out.views["0e"], pooled_scalars(ref.double(), IRREPS, mask))
    assert out.views["rows"].tolist() == list(range(5))  # each batch sees its own rows
    assert torch.equal(out.mask, mask) and str(out.irreps) == IRREPS


def test_stream_bad_input(model):
    pos, num, mask = _molecules()
    cases = [
        (dict(layer="block3"), ValueError, "layer must be one name"),
        (dict(layer=LAYER, keep=6), ValueError, "keep must be"),
        (dict(layer=LAYER, keep=1.5), ValueError, "keep must be"),
        (dict(layer=LAYER, views={"a": 3}), TypeError, r"views\['a'\] must be callable"),
        (dict(layer=LAYER, views=[len]), TypeError, "views must be a mapping"),
        (dict(layer=LAYER, views={"a": lambda z, m, r: z.sum()}), ValueError, r"views\['a'\] must map"),
        (dict(layer=LAYER, batch_size=0), ValueError, "batch_size"),
        (dict(layer=LAYER, dtype=torch.long), TypeError, "dtype must be"),
    ]
    for kwargs, exc, match in cases:
        with pytest.raises(exc, match=match):
            stream_node_features(model, pos, num, mask, **kwargs)
    with pytest.raises(TypeError, match="numbers must be a LongTensor"):
        stream_node_features(model, pos, num.float(), mask, layer=LAYER)


def test_stream_on_simulated_cuda(model):
    """Model (loaded onto the device) and views on the (simulated) device, results on the CPU."""
    from invlatent.testing import simulated_cuda

    pos, num, mask = _molecules()
    ref = stream_node_features(model, pos, num, mask, layer=LAYER, keep=2, batch_size=2,
                               views={"0e": lambda z, m, rows: pooled_scalars(z, IRREPS, m)})
    with simulated_cuda() as dev:
        gpu_model = load_sevenn("7net-0", device=dev)
        seen = []

        def view(z, m, rows):
            seen.append(z.device.type)
            return pooled_scalars(z, IRREPS, m)

        out = stream_node_features(gpu_model, pos, num, mask, layer=LAYER, keep=2, batch_size=2,
                                   views={"0e": view})
        assert set(seen) == {"cuda"} and out.z.device.type == "cpu" and out.views["0e"].device.type == "cpu"
    torch.testing.assert_close(out.views["0e"], ref.views["0e"])
    torch.testing.assert_close(out.z, ref.z)


# --- peak host memory, independent of the number of molecules ------------------------------------
CHILD = r"""
import json, resource, sys
import torch
torch.set_num_threads(1)
from invlatent import SO3, Permutation, Product
from invlatent.models.sevenn import load_sevenn, node_features, stream_node_features
from invlatent.projections import pooled_irrep_norms, pooled_scalars
sys.path.insert(0, {tests!r})
from test_sevenn_stream import IRREPS, LAYER, _waters

B, keep, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
model = load_sevenn("7net-0")
pos, numbers, mask = _waters(B)
G = Product(Permutation(), SO3(IRREPS))
sigma, R = G.sample(B, generator=torch.Generator().manual_seed(1))
sigma = sigma.materialize(pos.shape[1])
VIEWS = {{"0e": lambda z, m: pooled_scalars(z, IRREPS, m),
          "norms": lambda z, m: pooled_irrep_norms(z, IRREPS, m)}}

def invariance_error(view):  # chapter 7's streamed views: one number per molecule
    def error(z, m, rows):
        a = view(z, m)
        b = view(G.act((sigma[rows].to(z.device), R[rows].to(z.device)), z, m), m)
        return (a - b).norm(dim=1) / a.norm(dim=1)
    return error

if mode == "stream":
    out = stream_node_features(model, pos, numbers, mask, layer=LAYER, keep=keep, batch_size=64,
                               views={{k: invariance_error(v) for k, v in VIEWS.items()}},
                               dtype=torch.float64)
    assert out.z.shape[0] == keep and all(v.shape == (B,) for v in out.views.values())
else:  # what chapter 7 did before: hold every molecule's features, then a float64 copy
    z = node_features(model, pos, numbers, mask, layers=LAYER, batch_size=64).z[LAYER].double()
print(json.dumps({{"peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def _child(B, keep, mode="stream"):
    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, OMP_NUM_THREADS="1", INVLATENT_PROGRESS="line")
    return subprocess.Popen([sys.executable, "-c", CHILD.format(tests=tests), str(B), str(keep), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _peak_mib(child):
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])["peak_kb"] / 1024  # Linux: KiB


def test_stream_peak_memory_does_not_grow_with_molecules():
    """Chapter 7's capture at N and 4N molecules: the peak grows by far less than the features.

    Padded waters stand in for QM9: the dense features kept or dropped are ``(B, 29, 480)``
    float32 whatever the atom count, and a 3-atom forward pass is fast. The views are chapter
    7's streamed invariance checks (cheap pooled views here: their per-batch cost does not
    depend on N). Between N = 2000 and 4N the raw features grow by ``3N * 29 * 480 * 4``
    bytes, 319 MiB; holding them, as ``node_features`` plus the chapter's float64 copy did,
    grew the peak by about 3.5 times that (measured at N = 1000: +563 MiB for 3000 more
    molecules). What the stream holds per molecule is its input (about 1 kB: positions,
    atomic numbers, mask, a random pose) and two float64 numbers, under 2% of its features.
    The tolerance, 10% of the raw growth (32 MiB), leaves room for that (6 MiB) and for the
    allocator: the peak is the largest per-batch transient, and repeated runs of one size
    spread over about 10 MiB (measured growths from -3 to +16 MiB on a busy 2-core machine).

    Extrapolated with the measured slope to all 130,831 QM9 molecules, plus the 10,000
    molecules whose raw features chapter 7 keeps at the gpu profile, the peak stays below the
    issue's 4 GB (host memory of a CUDA context is not part of this CPU measurement). The two
    sizes run at once, one thread each, in two processes.
    """
    N, keep = 2000, 100
    small, large = _child(N, keep), _child(4 * N, keep)
    small, large = _peak_mib(small), _peak_mib(large)
    raw_growth = 3 * N * SLOTS * DIM * 4 / 2**20
    growth = large - small
    print(f"peak host memory: {small:.0f} MiB at {N} molecules, {large:.0f} MiB at {4 * N}; "
          f"growth {growth:.1f} MiB against {raw_growth:.0f} MiB of raw features")
    assert growth < 0.1 * raw_growth
    slope = max(growth, 0.0) / (3 * N)  # MiB per molecule
    gpu = large + slope * (130_831 - 4 * N) + (10_000 - keep) * SLOTS * DIM * 4 / 2**20
    assert gpu < 4 * 1024, f"extrapolated gpu-profile peak {gpu:.0f} MiB"
