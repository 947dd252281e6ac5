r"""What each chapter costs at the ``gpu`` profile on a Colab T4 runtime: estimates, not runs.

No GPU has run the book's ``gpu`` profile. These numbers are computed from the sizes the
chapters set (their ``by_profile(..., gpu=...)`` values, read from their source by
:func:`invlatent.profiles.profile_values`), times unit costs: bytes and seconds per molecule,
image, training step or fit, measured on the book's 2-core CPU machine (Colab gives 2 vCPUs
too), and, for work on the GPU, the T4's specifications with the assumptions below. Only the
dominant terms of each chapter are counted; read the time as an order of magnitude (the
scikit-learn fits on the host are the least certain term) and the memory as the size of what
the chapter holds at once.

A Colab T4 runtime has about 12.7 GB of host memory and a 15 GB GPU; the budget the book
keeps to is :data:`BUDGET`.

Example
-------
>>> steps = [Step("train", gpu_s=60.0, device_bytes=2e9), Step("fit", host_s=30.0, host_bytes=1e9)]
>>> est = estimate(steps)
>>> round(est["minutes"], 1), round(est["device_gb"], 1), round(est["host_gb"], 1)
(1.5, 2.6, 3.5)
"""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..utils import in_batches

__all__ = ["BUDGET", "COLAB", "T4", "Step", "estimate", "chapter_steps", "t4_estimates"]

#: A Colab GPU runtime (free tier): its host memory and CPU cores.
COLAB = {"host_gb": 12.7, "vcpus": 2}

#: The memory the ``gpu`` profile must fit in, per chapter: below :data:`COLAB`'s host memory
#: and the T4's 15 GB, of which CUDA reserves some.
BUDGET = {"host_gb": 12.0, "device_gb": 14.0}

#: The T4's specifications (NVIDIA's data sheet) and this module's assumptions about them.
T4 = {
    "fp32_tflops_peak": 8.1,
    "memory_gb": 15.0,
    "sustained_flops": 4.0e12,   # assumed: half the fp32 peak for the book's small convolutions
    "seconds_per_op": 10e-6,     # assumed: kernel launch + eager dispatch per aten op (small models)
    "context_bytes": 0.6e9,      # assumed: CUDA context, cuBLAS/cuDNN workspaces
    "fp64_sustained_flops": 0.125e12,  # assumed: half the fp64 peak (Turing: 1/32 of fp32)
}

#: Host memory of the runtime before the chapter holds any data: Colab's own processes plus a
#: Python with CUDA torch and the book's libraries (assumed; 0.37 GB measured here, CPU torch).
HOST_BASE_BYTES = 2.5e9

# Unit costs measured on the book's machine (2 CPU cores, torch 2.13 CPU build, float32).
# Memory: growth of the peak RSS between two batch sizes; FLOPs and aten ops: FlopCounterMode
# and a counting TorchDispatchMode around one step (forward, backward, Adam).
VAE_ENCODE_BYTES = 82e3      # GraphVAE.encode (hidden 64) activations, per molecule
VAE_DECODE_BYTES = 50e3      # autoregressive GraphVAE.decode, per code
DENSE_GRAPH_BYTES = 4.3e3    # QM9Graphs.dense() peak, per molecule
QM9_BYTES = 0.14e9           # load_qm9(): all 130,831 molecules
QM9_BUILD_S = 15.0           # load_qm9() in a fresh runtime: RDKit builds the cache (DESIGN.md)
CNN_ENCODE_BYTES = 108e3     # CNN(12, 24; 48).encode, per image (chapter 5)
GCNN_ENCODE_BYTES = 383e3    # GCNN(C4; 16, 32; 32).encode, per image (chapter 4)
E3NN_FORWARD_BYTES = 86e3    # E3NNPropertyModel forward, per molecule (on the host, chapter 6)
IMAGE_BYTES = 28 * 28 * 4    # one float32 MNIST digit
TRAIN_STEP = {               # (FLOPs, aten ops) of one training step
    "gcnn4_b32": (4.33e9, 370),    # chapter 4's GCNN at gpu, batch 32
    "cnn5_b64": (1.23e9, 335),     # chapter 5's CNN, batch 64
    "gcnn5_b64": (2.24e9, 370),    # chapter 5's GCNN, batch 64
    "e3nn_b128": (0.185e9, 2200),  # chapter 6's e3nn model, batch 128
    "e2cnn_b64": (16.2e9, 474),    # chapter 7b's e2cnn C_8 network, batch 64, 29 x 29 digits
}
E3NN_BATCH_S = 5.7e-3        # building one batch of 128 molecules on the host
SMILES_S = 216e-6            # graphs_to_smiles, per decoded graph
CANONICAL_S = 74e-6          # canonical_smiles, per SMILES
LR_S = 5e-9                  # logistic regression (lbfgs, one thread), per sample x feature x iteration
LR_ITERATIONS = 200          # assumed (random-feature MNIST probes here converge in about 50)
KNN_S = 1.2e-10              # k-NN classifier scoring, per train x test x feature
TSNE_S = 1.4e-3              # t-SNE (Barnes-Hut), per n log n (n = 2,000)
GMM16_S = 4.6e-4             # GaussianMixture(16, full), per row, to convergence
HGBR_S = 6.5e-7              # HistGradientBoostingRegressor, per row x iteration (one thread)
PAIR_S = 8e-7                # pairwise quotient distance (C8) or retention, per pair
ROTATION_SEARCH_S = 26e-6    # approx_quotient_distance, per pair x optimiser step
#: Chapter 7 (SevenNet-0 on QM9 with hydrogens). Measured on the book's machine, torch and
#: BLAS on one thread, CPU time (time.process_time), the machine at load 6-7 on 2 cores.
QM9_MOLECULES = 130_831          # molecules in QM9 (DESIGN.md): len(load_qm9_3d())
QM9_3D_BYTES = 0.11e9            # load_qm9_3d(): tensors 101 MB + SMILES 10 MB (nbytes, getsizeof)
QM9_3D_BUILD_S = 10.0            # load_qm9_3d() in a fresh runtime: parses 230 MB of CSV (docstring)
SEVENN_BATCH = 256               # molecules per forward pass of chapter 7's stream (its batch_size)
SEVENN_FORWARD = (2.0e8, 2005)   # sevenn_batch + capture_latents(stop=True) to block 3, dense
#                                  features: (fp32 FLOPs per molecule, aten ops per batch);
#                                  FlopCounterMode and a counting TorchDispatchMode around one
#                                  batch of 256 random QM9 molecules (5.12e10 FLOPs; 1.23e10 for
#                                  64, same 2005 ops); the radius graph is built on the device
SEVENN_VIEWS = (5.7e6, 1382)     # chapter 7's four invariance errors per batch (float64, each
#                                  view of z and of (sigma, R) z): (fp64 FLOPs per molecule,
#                                  aten ops per batch), measured as above (1.46e9 FLOPs for 256)
SEVENN_STREAM_BYTES = 8.9e6      # forward + views per molecule of a batch: growth of the peak
#                                  RSS from 64 to 256 molecules (766 -> 2478 MB)
STREAM_ROW_BYTES = 600           # counted: per molecule, atomic numbers and the drawn atom order
#                                  (29 int64 each), rotation (9 float64), mask, 4 float64 errors
OWN_KEPT_BYTES = 0.98e6          # chapter 7 after the stream, per kept molecule: the float32
#                                  features, their float64 copy, the random-pose copy and the
#                                  probes' posed copy of one seed with its views (the last
#                                  seed's are freed first); growth of the peak RSS of that code
#                                  from 500 to 1,500 molecules (549 -> 1530 MB; one float32 copy
#                                  is 55.7 kB)
OWN_VIEW_DIMS = {"raw": 29 * 480, "pooled 0e": 128, "pooled norms": 224,  # measured: output
                 "pooled complete inv.": 10_864, "cross-atom Gram": 261}   # widths of the views
AMBIGUITY_S = 2.1e-3             # ambiguity_index(Z, Product(Permutation(), SO3)), per molecule
#                                  (1,000 molecules, float64, 4 group elements)
PCA_S = 7.9e-8                   # PCA(50), per row x feature (2,000 x 13,920 float64)
UMAP_S = 2.3e-3                  # UMAP (n_jobs=1) on 50 PCs, per point (2,000 points: 4.6 s)
UMAP_JIT_S = 10.0                # numba compiling UMAP on its first call (11.1 s for 500 points)
SET_BOUNDS_S = 8.7e-3            # pairwise_set_quotient_bounds, per pair (1,128 pairs of real
#                                  SevenNet-0 block-3 features, float64, 8 starts)
SET_BOUNDS_BYTES = 0.66e6        # per pair of a chunk: growth of the peak RSS from 66 to 1,128
#                                  pairs (68 -> 768 MB); chunks hold at most 2,048 pairs
# The three regressors of chapter 7 (RidgeCV, 10-NN, RBF kernel ridge, fit and predict on as
# many test rows as training rows, standardised) on n training rows of d features:
# a n^2 d + b n d + c n^3. Fitted to 4.58 s (n = 1,000) and 14.24 s (n = 2,000) for
# d = 13,920, with c from numpy.linalg.eigh (1.48 s for n = 2,000; RidgeCV eigendecomposes
# the Gram matrix when d > n); it predicts 11.4 s for d = 10,864 at n = 2,000 (measured 11.5 s).
PROBE_N2D_S = 1.42e-10
PROBE_ND_S = 1.74e-7
PROBE_N3_S = 1.85e-10
#: Chapter 7b (SO3LR and SevenNet-0 on the same molecules, an e2cnn C_8 network). Measured
#: on the book's machine: FlopCounterMode and a counting TorchDispatchMode around one pass of
#: 64 random QM9 molecules (one thread); the bounds' times at load 5 on 2 cores.
SO3LR_FORWARD = (8.5e7, 847)      # node_features to the last layer: (fp32 FLOPs per molecule,
#                                   aten ops per batch)
SO3LR_BOUNDS_S = 2.1              # pairwise_set_quotient_bounds, per pair of different
#                                   molecules, SO3LR's latent (128x0e+1x1o+1x2e+1x3o+1x4e, SO(3),
#                                   8 starts, float64): 120 pairs in 247 s in a script at load 5;
#                                   the chapter at cpu measured far less (2 x 45 pairs, both
#                                   models, in 3.5 s), so this is the conservative bound
SEVENN_BOUNDS_S = 0.18            # the same for SevenNet-0's block 3 (120 pairs in 22 s)
MOVED_COPY_S = 11.4               # the bounds table, per molecule: against its moved copy (the
#                                   search converges to the exact alignment) and against the
#                                   next molecule; 4 molecules in 45.5 s at cpu (8 starts)
OTHER_VIEW_DIMS = {"SevenNet-0": (128, 224, 10_864), "SO3LR": (128, 132, 8_260)}  # the
#                                   widths of the three pooled views of each latent
OTHER_KEPT_BYTES = 29 * (480 + 152) * (4 + 8 + 8)  # per molecule: float32 features, the float64
#                                   latents and their random-pose copies, both models
#: rows per batch of the chapters' encodes and decodes (in_batches' default)
BATCH = inspect.signature(in_batches).parameters["batch_size"].default
PATH_POINTS = 65             # decoded points per pair over the three lines of chapter 3b (measured)


@dataclass
class Step:
    """One piece of a chapter's work: seconds on the T4 and on the host, and the memory
    (bytes) held on each while it runs, the chapter's data at that point included."""

    what: str
    gpu_s: float = 0.0
    host_s: float = 0.0
    device_bytes: float = 0.0
    host_bytes: float = 0.0


def estimate(steps: list[Step], *, uses_gpu: bool = True) -> dict:
    """Time (sum of the steps) and peak memory (largest step, plus the CUDA context and the
    runtime's base host memory) of a chapter. ``uses_gpu=False``: a chapter that never
    touches the GPU (no CUDA context). Returns ``minutes``, ``gpu_minutes`` (the part on the
    T4), ``device_gb``, ``host_gb``, ``largest`` (the step that takes the most time)."""
    context = T4["context_bytes"] if uses_gpu else 0.0
    seconds = sum(s.gpu_s + s.host_s for s in steps)
    largest = max(steps, key=lambda s: s.gpu_s + s.host_s)
    return {"minutes": seconds / 60, "gpu_minutes": sum(s.gpu_s for s in steps) / 60,
            "device_gb": (context + max(s.device_bytes for s in steps)) / 1e9,
            "host_gb": (HOST_BASE_BYTES + max(s.host_bytes for s in steps)) / 1e9,
            "largest": largest.what}


def _train(steps: float, key: str, host_s: float = 0.0) -> float:
    flops, ops = TRAIN_STEP[key]
    return steps * (flops / T4["sustained_flops"] + ops * T4["seconds_per_op"] + host_s)


def _probe(n_train: int, n_test: int, d: int) -> float:
    """probe_accuracy: logistic regression and 5-NN on d features."""
    return n_train * d * (LR_ITERATIONS * LR_S + n_test * KNN_S)


def _tsne(n: int) -> float:
    return TSNE_S * n * math.log(n)


def _qm9_split() -> dict:
    from ..data.qm9 import qm9_split

    return qm9_split(QM9_MOLECULES, seed=0)


def _ambiguity(v: dict) -> list[Step]:
    return [Step("two t-SNE maps", host_s=2 * _tsne(v["n_tsne"]))]


def _projections(v: dict) -> list[Step]:
    n2 = v["n_obj"] ** 2
    retentions = 6 + len(v["Ts"]) * v["seeds"]  # the candidates, then the template sweep
    return [Step("quotient distances", host_s=n2 * PAIR_S),
            Step("retention of every candidate and sweep", host_s=retentions * n2 * PAIR_S)]


def _molecule_data(v: dict) -> float:
    return QM9_BYTES + v["n_train"] * DENSE_GRAPH_BYTES


def _graph_vae(v: dict) -> list[Step]:
    n_eval, batch = len(_qm9_split()["test"]), BATCH
    smiles = 3 * n_eval + 4 * v["n_samples"]   # reconstructions, valence view, prior draws
    return [Step("load QM9", host_s=QM9_BUILD_S, host_bytes=_molecule_data(v)),
            Step("encode and decode in batches", device_bytes=batch * VAE_ENCODE_BYTES,
                 host_bytes=_molecule_data(v)),
            Step("SMILES of decodes and data", host_bytes=_molecule_data(v),
                 host_s=smiles * SMILES_S + (v["n_train"] + 2 * n_eval) * CANONICAL_S)]


def _molecule_latent(v: dict) -> list[Step]:
    fits = 3 * 3 * 4  # seeds x feature sets x properties
    n_fit = int(0.7 * v["n_test"])
    return [Step("load QM9", host_s=QM9_BUILD_S, host_bytes=_molecule_data(v)),
            Step("encode in batches", device_bytes=BATCH * VAE_ENCODE_BYTES, host_bytes=_molecule_data(v)),
            Step("PCA and t-SNE maps", host_s=3 * _tsne(v["n_map"]), host_bytes=_molecule_data(v)),
            Step("property regressions", host_s=fits * n_fit * v["gbr_iter"] * HGBR_S),
            Step("decode four models' paths", host_s=4 * v["n_pairs"] * PATH_POINTS * 2 * SMILES_S,
                 device_bytes=BATCH * VAE_DECODE_BYTES)]


def _rotated_mnist(v: dict) -> list[Step]:
    (_, c), N = v["channels, latent_channels"], 4
    steps = v["n_train"] / 32 * v["epochs"]
    images = 2 * v["n_train"] * IMAGE_BYTES + 2 * v["n_test"] * IMAGE_BYTES
    fits = 2 * 8 + 2 * len(v["Ts"])  # 8 projections and the template sweep, two protocols
    return [Step("train the GCNN", gpu_s=_train(steps, "gcnn4_b32"), host_bytes=images),
            Step("encode in batches of 500", device_bytes=500 * GCNN_ENCODE_BYTES, host_bytes=images),
            Step("probes on every projection", host_s=fits * _probe(v["n_train"], v["n_test"], c * N),
                 host_bytes=images + 2 * 8 * v["n_train"] * 2 * c * N)]


def _augmentation(v: dict) -> list[Step]:
    n, G = v["n_train"], v["G"]
    steps = n / 64 * v["epochs"]
    train = 2 * _train(steps, "cnn5_b64") + _train(steps, "gcnn5_b64")
    on_device = (n + 3 * v["n_test"]) * IMAGE_BYTES + 3 * n * IMAGE_BYTES  # data; a rotated copy
    orbits = (n + v["n_test"]) * 48 * G * 4 + n * v["n_templates"] * 4
    probes = 3 * _probe(n, v["n_test"], 48) + _probe(n, v["n_test"], v["n_templates"])
    return [Step("train three networks", gpu_s=train, device_bytes=on_device),
            Step("orbits of every digit, max filters", device_bytes=on_device + orbits
                 + BATCH * CNN_ENCODE_BYTES + v["n_test"] ** 2 * 4),
            Step("probes", host_s=2 * probes, host_bytes=4 * n * v["n_templates"] * 8),
            Step("t-SNE maps", host_s=2 * _tsne(v["n_fig"]))]


def _e3nn(v: dict) -> list[Step]:
    split = _qm9_split()
    n_train, n_pool = len(split["train"]), len(split["test"])
    steps = math.ceil(n_train / 128) * v["epochs"]
    pairs = v["n_ret"] * (v["n_ret"] - 1) // 2
    return [Step("train the e3nn model", gpu_s=_train(steps, "e3nn_b128", E3NN_BATCH_S),
                 device_bytes=128 * 3 * E3NN_FORWARD_BYTES),
            Step("encode the held-out split on the host", host_bytes=n_pool * E3NN_FORWARD_BYTES),
            Step("rotation searches", host_s=pairs * v["steps"] * ROTATION_SEARCH_S)]


def _training(v: dict) -> list[Step]:
    lines = 12 + 27  # decoded points per pair: aligned and raw random-order lines
    smiles = 8 * v["n_samples"] + 3 * (2_000 + 2 * lines * v["n_goal, n_pairs"])
    return [Step("load QM9", host_s=QM9_BUILD_S, host_bytes=_molecule_data(v)),
            Step("encode the training split in batches", device_bytes=BATCH * VAE_ENCODE_BYTES,
                 host_bytes=_molecule_data(v)),
            Step("Gaussian mixture on the training codes", host_s=v["n_train"] * GMM16_S,
                 host_bytes=_molecule_data(v)),
            Step("SMILES of every decode", host_s=smiles * SMILES_S + v["n_train"] * CANONICAL_S)]


def _sevenn(molecules: float, flops_ops: tuple, flops: float) -> float:
    """Seconds on the T4 for ``molecules`` in batches of :data:`SEVENN_BATCH` (``flops_ops``:
    FLOPs per molecule and aten ops per batch; ``flops``: the FLOP rate)."""
    per_molecule, ops = flops_ops
    return molecules * per_molecule / flops + math.ceil(molecules / SEVENN_BATCH) * ops * T4["seconds_per_op"]


def _probe3(n: int, d: int) -> float:
    """Chapter 7's three regressors on ``n`` training rows of ``d`` features (as many test rows)."""
    return PROBE_N2D_S * n * n * d + PROBE_ND_S * n * d + PROBE_N3_S * n ** 3


def _own_model(v: dict) -> list[Step]:
    n_mol = v["n_mol"]
    n_keep, n_map, n_ret = min(n_mol, v["n_keep"]), v["n_map"], v["n_ret"]
    data = 2 * QM9_3D_BYTES + n_mol * STREAM_ROW_BYTES   # the data set, its shuffled subset
    kept = n_keep * OWN_VIEW_DIMS["raw"] * (4 + 8 + 8)   # float32 kept, Z, Z_rand (float64)
    stream = (_sevenn(n_mol, SEVENN_FORWARD, T4["sustained_flops"])
              + _sevenn(n_mol, SEVENN_VIEWS, T4["fp64_sustained_flops"]))
    forwards = 2 * (1 + v["audit_kw: n_elements"]) * v["n_audit"] + 2 * v["n_par"]
    map_dims = 2 * OWN_VIEW_DIMS["raw"] + OWN_VIEW_DIMS["pooled complete inv."]
    maps = PCA_S * n_map * map_dims + 3 * (_tsne(n_map) + UMAP_S * n_map) + UMAP_JIT_S
    pairs = n_ret * (n_ret - 1) // 2
    dims = [OWN_VIEW_DIMS["raw"]] * 3 + [d for k, d in OWN_VIEW_DIMS.items() if k != "raw"]
    probes = 3 * sum(_probe3(n_keep // 2, d) for d in dims)  # 3 seeds x 7 views
    return [Step("load QM9 with hydrogens", host_s=QM9_3D_BUILD_S, host_bytes=data),
            Step("stream SevenNet-0 over every molecule", gpu_s=stream,
                 device_bytes=SEVENN_BATCH * SEVENN_STREAM_BYTES,
                 host_bytes=data + n_keep * OWN_VIEW_DIMS["raw"] * 4),
            Step("audit and parity forwards", gpu_s=_sevenn(forwards, SEVENN_FORWARD, T4["sustained_flops"]),
                 device_bytes=SEVENN_BATCH * SEVENN_STREAM_BYTES),
            Step("ambiguity index, PCA, t-SNE and UMAP maps", host_s=n_map * AMBIGUITY_S + maps,
                 host_bytes=data + kept),
            Step("pairwise set quotient bounds", host_s=pairs * SET_BOUNDS_S,
                 host_bytes=data + kept + min(pairs, 2048) * SET_BOUNDS_BYTES),
            Step("property regressions", host_s=probes, host_bytes=data + n_keep * OWN_KEPT_BYTES)]


def _other_libraries(v: dict) -> list[Step]:
    n_mol, n_ret, n_b = v["n_mol"], v["n_ret"], v["n_b"]
    data = 2 * QM9_3D_BYTES + n_mol * OTHER_KEPT_BYTES
    per_start = v["starts"] / 8
    pairs = n_ret * (n_ret - 1) // 2
    bounds = per_start * (pairs * (SO3LR_BOUNDS_S + SEVENN_BOUNDS_S) + n_b * MOVED_COPY_S)
    probes = sum(_probe3(n_mol // 2, d) for dims in OTHER_VIEW_DIMS.values() for d in dims) / 3
    views = n_mol * sum(sum(d) for d in OTHER_VIEW_DIMS.values()) * 4
    steps = v["n_train"] / 64 * v["epochs"]
    return [Step("load QM9 with hydrogens", host_s=QM9_3D_BUILD_S, host_bytes=2 * QM9_3D_BYTES),
            Step("SO3LR and SevenNet-0 on every molecule",
                 gpu_s=_sevenn(n_mol, SO3LR_FORWARD, T4["sustained_flops"])
                 + _sevenn(n_mol, SEVENN_FORWARD, T4["sustained_flops"]),
                 device_bytes=SEVENN_BATCH * SEVENN_STREAM_BYTES, host_bytes=data),
            Step("set quotient bounds (host)", host_s=bounds, host_bytes=data),
            Step("ridge probes on six views (about a third of chapter 7's three regressors)",
                 host_s=probes, host_bytes=data + views),
            Step("train the e2cnn C_8 network", gpu_s=_train(steps, "e2cnn_b64"),
                 device_bytes=64 * GCNN_ENCODE_BYTES)]


#: chapter file stem -> its cost model (from the chapter's gpu sizes), and whether it uses the GPU
MODELS: dict[str, tuple[Callable[[dict], list[Step]], bool]] = {
    "01_ambiguity": (_ambiguity, False),
    "02_invariant_projections": (_projections, False),
    "03_qm9_graph_vae": (_graph_vae, True),
    "03b_molecule_latent": (_molecule_latent, True),
    "04_rotated_mnist": (_rotated_mnist, True),
    "05_augmentation": (_augmentation, True),
    "06_e3nn_latents": (_e3nn, True),
    "training": (_training, True),
    "07_own_model": (_own_model, True),
    "07b_other_libraries": (_other_libraries, True),
}


def chapter_steps(chapter: str | os.PathLike) -> list[Step] | None:
    """The counted work of one chapter at the ``gpu`` profile, from its own sizes (``None``
    for a chapter without a cost model here). Full MNIST is assumed available (Colab)."""
    from ..profiles import profile_values

    path = Path(chapter)
    if path.stem not in MODELS:
        return None
    # stand-ins for the data the sizes read: QM9's split, QM9 with hydrogens (only its length)
    names = {"full": True, "split": _qm9_split(), "ds": range(QM9_MOLECULES)}
    sizes = profile_values(path, "gpu", names)
    return MODELS[path.stem][0](sizes)


def t4_estimates(chapters) -> "pandas.DataFrame":  # noqa: F821
    """One row per chapter with a cost model: its title, estimated minutes on a Colab T4
    runtime (and how many of them on the GPU), peak GPU and host memory (GB) at the ``gpu``
    profile, and its longest step."""
    import pandas as pd

    rows = []
    for chapter in chapters:
        steps = chapter_steps(chapter)
        if steps is None:
            continue
        text = Path(chapter).read_text()
        title = next((ln[2:].strip() for ln in text.splitlines() if ln.startswith("# ")), Path(chapter).stem)
        est = estimate(steps, uses_gpu=MODELS[Path(chapter).stem][1])
        rows.append({"chapter": title, "minutes": est["minutes"], "on the GPU": est["gpu_minutes"],
                     "GPU GB": est["device_gb"],
                     "host GB": est["host_gb"], "longest step": est["largest"]})
    return pd.DataFrame(rows).set_index("chapter")
