"""Crossover of the cyclic max-inner-product: direct orbit matmul vs the real-DFT path.

Prints, for N in 2..64 and c in 1..32, the median seconds of both methods on (B, c, N) latents
against T templates, one thread, in this one process (the table in ``invlatent._fft_correlation.use_fft``).

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_fft_crossover.py [--batch 4096 --templates 256]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from invlatent._fft_correlation import cyclic_max_inner, use_fft  # noqa: E402


def median_time(fn, repeats=5):
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def crossover(B=4096, T=256, Ns=(2, 4, 8, 16, 32, 64), cs=(1, 2, 8, 32), repeats=5, dtype=torch.float32):
    rows = []
    g = torch.Generator().manual_seed(0)
    for N in Ns:
        for c in cs:
            x = torch.randn(B, c, N, generator=g, dtype=dtype)
            y = torch.randn(T, c, N, generator=g, dtype=dtype)
            with torch.no_grad():
                td = median_time(lambda: cyclic_max_inner(x, y, method="direct"), repeats)
                tf = median_time(lambda: cyclic_max_inner(x, y, method="fft"), repeats)
            rows.append({"N": N, "c": c, "direct_s": td, "fft_s": tf, "rule_fft": use_fft(N, c, T)})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--templates", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for r in crossover(args.batch, args.templates):
        best = "fft" if r["fft_s"] < r["direct_s"] else "direct"
        print(f"N={r['N']:3d} c={r['c']:3d}  direct {r['direct_s']:.4f} s  fft {r['fft_s']:.4f} s  "
              f"x{r['direct_s'] / r['fft_s']:5.2f}  faster: {best:6s} rule: {'fft' if r['rule_fft'] else 'direct'}")


if __name__ == "__main__":
    main()
