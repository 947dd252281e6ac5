"""Benchmark: C_N group convolution vs a plain convolution of the same width.

A :class:`invlatent.models.gcnn.GroupConv` with ``c`` channels per rotation runs one
``conv2d`` with ``c*N`` input and output channels plus the construction of its rotated,
rolled filter bank. The reference is ``torch.nn.Conv2d(c*N, c*N, 3, padding=1)`` measured in
the same process on the same input; the target is a ratio <= 2 (forward + backward).

Run: ``python benchmarks/bench_gconv.py`` (``--threads`` to pin torch threads; sizes scale
with ``INVLATENT_PROFILE``). Timings depend on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import time

import torch

from invlatent.models.gcnn import GroupConv, LiftingConv
from invlatent.profiles import by_profile, get_profile


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def bench(c: int, N: int, size: int, batch: int, repeats: int, device: torch.device) -> dict[str, float]:
    torch.manual_seed(0)
    gconv = GroupConv(c, c, N, 3).to(device)
    plain = torch.nn.Conv2d(c * N, c * N, 3, padding=1).to(device)
    f = torch.randn(batch, c, N, size, size, device=device, requires_grad=True)
    x = f.detach().reshape(batch, c * N, size, size).requires_grad_(True)

    def run_group():
        gconv(f).square().mean().backward()

    def run_plain():
        plain(x).square().mean().backward()

    tg, tp = _time(run_group, repeats), _time(run_plain, repeats)
    return {"group_ms": 1e3 * tg, "plain_ms": 1e3 * tp, "ratio": tg / tp}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch = by_profile(smoke=16, cpu=64, gpu=256)
    repeats = by_profile(smoke=3, cpu=5, gpu=20)
    print(f"profile: {get_profile()}  device: {device}  threads: {torch.get_num_threads()}  batch: {batch}")
    print(f"{'N':>3} {'c':>4} {'size':>5} {'group ms':>9} {'plain ms':>9} {'ratio':>6}")
    ratios = []
    for N, c, size in [(4, 8, 28), (4, 16, 14), (8, 8, 14), (16, 4, 14)]:
        r = bench(c, N, size, batch, repeats, device)
        ratios.append(r["ratio"])
        print(f"{N:>3} {c:>4} {size:>5} {r['group_ms']:9.2f} {r['plain_ms']:9.2f} {r['ratio']:6.2f}")
    lift = LiftingConv(1, 8, 4, 5).to(device)
    print(f"worst ratio group/plain: {max(ratios):.2f} (target <= 2); lifting conv params: "
          f"{sum(p.numel() for p in lift.parameters())}")


if __name__ == "__main__":
    main()
