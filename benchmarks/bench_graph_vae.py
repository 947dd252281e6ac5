"""Graph VAE training throughput: molecules per second for one optimizer step.

    python benchmarks/bench_graph_vae.py [--threads 1 2] [--batch 256 1024] [--seconds 5] [--compile]

For each decoder, batch size and thread count, times full training steps (encode, sample,
decode, ELBO, backward, Adam) on real QM9 graphs, after two warm-up steps, and reports the
median over repeats of molecules per second. The reference in the same process is the
``maron`` decoder at the same batch and threads (``ratio`` = this decoder's throughput over
the reference's). With ``--compile`` each decoder is also timed with its loss compiled by
``torch.compile`` (``ratio_compiled`` = compiled over eager throughput, same process). Results go
to ``benchmarks/results/training/graph_vae_<device>.json``.

A **FLOP ceiling** puts the numbers in scale: ``FlopCounterMode`` counts the matmul FLOPs of one
step (forward and backward) per molecule, and a large square float32 matmul measured in the same
process, at the same thread count, gives the machine's best rate. Their quotient,
``ceiling_molecules_per_s``, is the throughput the step could not exceed even if every operation
ran at that rate and the elementwise work were free; ``fraction_of_ceiling`` is the measured
throughput over it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from invlatent.data.qm9 import load_qm9
from invlatent.models.graph_vae import GraphVAE

DECODERS = {"maron": dict(decoder_depth=2), "sort-transformer": dict(decoder_depth=3),
            "sort-mlp": dict(decoder_depth=3), "sort-autoregressive": dict(decoder_depth=3)}


def throughput(decoder: str, batch: int, seconds: float, device: torch.device, repeats: int = 3,
               compile: bool = False) -> float:
    data = load_qm9(limit=batch).dense()
    x, adj, mask = (data[k].to(device) for k in ("x", "adj", "mask"))
    torch.manual_seed(0)
    model = GraphVAE(hidden=64, depth=2, decoder=decoder, **DECODERS[decoder]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss(x, adj, mask):
        return model.loss(x, adj, mask, beta=0.02)["loss"]

    # one compiled graph per batch size (dynamic shapes trip over the sampling noise)
    loss = torch.compile(loss, dynamic=False) if compile else loss

    def step():
        out = {"loss": loss(x, adj, mask)}
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()

    for _ in range(3 if compile else 2):  # the first compiled call compiles
        step()
    rates = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, k = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds / repeats:
            step()
            k += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(k * batch / (time.perf_counter() - t0))
    return statistics.median(rates)


def flops_per_molecule(decoder: str, batch: int = 256) -> float:
    """Matmul FLOPs of one training step (forward + backward), per molecule."""
    data = load_qm9(limit=batch).dense()
    model = GraphVAE(hidden=64, depth=2, decoder=decoder, **DECODERS[decoder])
    counter = FlopCounterMode(display=False)
    with counter:
        model.loss(data["x"], data["adj"], data["mask"], beta=0.02)["loss"].backward()
    return counter.get_total_flops() / batch


def matmul_rate(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 FLOP/s of a ``size`` x ``size`` matmul at the current thread count."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compile", action="store_true", help="also time the compiled loss")
    args = p.parse_args()
    device = torch.device(args.device)
    rows = []
    flops = {decoder: flops_per_molecule(decoder) for decoder in DECODERS}
    for threads in args.threads if device.type == "cpu" else [torch.get_num_threads()]:
        torch.set_num_threads(threads)
        peak = matmul_rate() if device.type == "cpu" else None
        for batch in args.batch:
            ref = None
            for decoder in DECODERS:
                rate = throughput(decoder, batch, args.seconds, device)
                ref = rate if decoder == "maron" else ref
                rows.append({"decoder": decoder, "batch": batch, "threads": threads,
                             "molecules_per_s": round(rate, 1), "ratio_vs_maron": round(rate / ref, 3),
                             "mflop_per_molecule": round(flops[decoder] / 1e6, 2)})
                if peak is not None:
                    ceiling = peak / flops[decoder]
                    rows[-1].update(matmul_gflop_per_s=round(peak / 1e9, 1),
                                    ceiling_molecules_per_s=round(ceiling, 1),
                                    fraction_of_ceiling=round(rate / ceiling, 3))
                if args.compile:
                    fast = throughput(decoder, batch, args.seconds, device, compile=True)
                    rows[-1].update(compiled_molecules_per_s=round(fast, 1),
                                    ratio_compiled=round(fast / rate, 3))
                print(json.dumps(rows[-1]), flush=True)
    name = "cpu" if device.type == "cpu" else "cuda"
    out = Path(__file__).resolve().parent / "results" / "training" / f"graph_vae_{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "cpu_count": os.cpu_count(),
                               "machine": platform.processor() or platform.machine(),
                               "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                               "torch": torch.__version__, "rows": rows}, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
