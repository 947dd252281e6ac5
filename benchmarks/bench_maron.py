"""Time of the Maron et al. 2->2 layer relative to a 1x1 convolution of the same size.

Both run in this process on the same input (B, n, n, C) -> (B, n, n, C), forward and
backward; the printed ratio is what to compare across machines (target <= 3x).
For contrast it also times a naive 2->2 layer that materialises all 15 broadcast basis
tensors before mixing them.

Run: ``python benchmarks/bench_maron.py [--batch 128 --nodes 9 --channels 64 --threads 1]``
"""

from __future__ import annotations

import argparse
import time

import torch

from invlatent.models.maron import EdgeToEdge, edge_pool


class NaiveEdgeToEdge(torch.nn.Module):
    """Reference: stack the 15 basis tensors (B, n, n, 15 C) and apply one linear map."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.lin = torch.nn.Linear(15 * c_in, c_out)

    def forward(self, a):
        B, n, _, C = a.shape
        d, r, c, t, s = edge_pool(a)
        eye = torch.eye(n, dtype=a.dtype, device=a.device)[None, :, :, None]
        full = lambda v: v[:, None, None, :].expand(B, n, n, C)  # noqa: E731
        rows = lambda v: v[:, :, None, :].expand(B, n, n, C)  # noqa: E731
        cols = lambda v: v[:, None, :, :].expand(B, n, n, C)  # noqa: E731
        basis = [a, a.transpose(1, 2), eye * rows(d), rows(d), cols(d), eye * rows(r), eye * rows(c),
                 rows(r), cols(r), rows(c), cols(c), eye * full(t), full(t), eye * full(s), full(s)]
        return self.lin(torch.cat(basis, -1))


def timeit(fn, x, repeats):
    for _ in range(3):
        fn(x).sum().backward()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(x).sum().backward()
    return (time.perf_counter() - t0) / repeats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--nodes", type=int, default=9)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, n, C = args.batch, args.nodes, args.channels
    a = torch.randn(B, n, n, C, device=args.device, requires_grad=True)
    conv = torch.nn.Linear(C, C).to(args.device)  # a 1x1 convolution over the n x n grid
    maron = EdgeToEdge(C, C).to(args.device)
    naive = NaiveEdgeToEdge(C, C).to(args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def run(m):
        def f(x):
            y = m(x)
            sync()
            return y
        return f

    res = {}
    for name, m in [("1x1 conv", conv), ("2->2 (pooled first)", maron), ("2->2 naive (15 full tensors)", naive)]:
        res[name] = min(timeit(run(m), a, args.repeats) for _ in range(3))
    base = res["1x1 conv"]
    print(f"input (B, n, n, C) = ({B}, {n}, {n}, {C}) on {args.device}, forward + backward, {args.threads} thread(s)")
    for name, t in res.items():
        print(f"{name:32s} {t * 1e3:8.3f} ms   {t / base:5.2f} x 1x1 conv")


if __name__ == "__main__":
    main()
