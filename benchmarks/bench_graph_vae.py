"""Graph VAE training throughput: molecules per second for one optimizer step.

    python benchmarks/bench_graph_vae.py [--threads 1 2] [--batch 256 1024] [--seconds 5]

For each decoder, batch size and thread count, times full training steps (encode, sample,
decode, ELBO, backward, Adam) on real QM9 graphs, after two warm-up steps, and reports the
median over repeats of molecules per second. The reference in the same process is the
``maron`` decoder at the same batch and threads (``ratio`` = this decoder's throughput over
the reference's). Results go to ``benchmarks/results/graph_vae_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from invlatent.data.qm9 import load_qm9
from invlatent.models.graph_vae import GraphVAE

DECODERS = {"maron": dict(decoder_depth=2), "sort-transformer": dict(decoder_depth=3),
            "sort-mlp": dict(decoder_depth=3)}


def throughput(decoder: str, batch: int, seconds: float, device: torch.device, repeats: int = 3) -> float:
    data = load_qm9(limit=batch).dense()
    x, adj, mask = (data[k].to(device) for k in ("x", "adj", "mask"))
    torch.manual_seed(0)
    model = GraphVAE(hidden=64, depth=2, decoder=decoder, **DECODERS[decoder]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        out = model.loss(x, adj, mask, beta=0.02)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()

    for _ in range(2):
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    rows = []
    for threads in args.threads if device.type == "cpu" else [torch.get_num_threads()]:
        torch.set_num_threads(threads)
        for batch in args.batch:
            ref = None
            for decoder in DECODERS:
                rate = throughput(decoder, batch, args.seconds, device)
                ref = rate if decoder == "maron" else ref
                rows.append({"decoder": decoder, "batch": batch, "threads": threads,
                             "molecules_per_s": round(rate, 1), "ratio_vs_maron": round(rate / ref, 3)})
                print(json.dumps(rows[-1]), flush=True)
    name = "cpu" if device.type == "cpu" else "cuda"
    out = Path(__file__).resolve().parent / "results" / f"graph_vae_{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                               "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                               "torch": torch.__version__, "rows": rows}, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
