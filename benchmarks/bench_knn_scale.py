#!/usr/bin/env python
"""Quotient 10-NN at scale: exact streaming search vs FAISS with exact re-ranking.

Each run is one command, records one entry of ``benchmarks/results/knn/knn_scale.json`` (time, peak
resident memory of this process, the search's stats, the load average before and after, CPU
time over wall time) and keeps its neighbour lists under ``--cache`` for the recall of later runs:

* ``exact N`` -- :func:`invlatent.quotient_knn` on ``N`` QM9-shaped latents (``(N, 9, 4)``,
  this book's clustered model of encoder codes, :func:`run.clustered_latents`: centres with the
  node masks of random QM9 molecules, members = centre + noise, random node orders);
* ``random N`` -- the same on structureless latents (standard normal, real masks): the worst
  case, where no bound prunes and the search is all pairs by bounds;
* ``approx N --index hnsw`` -- :class:`invlatent.quotient.QuotientIndex`, build + search; recall@10
  against the exact lists of the same ``N`` when cached, else against the exact flat index on
  ``--queries`` sampled queries;
* ``sliced --set S`` -- exact 10-NN of a real set by ``quotient_knn(method="sliced")``, checked
  against the independent brute force on sampled queries;
* ``codes C`` -- the shipped graph VAE with ``C`` channels encodes the whole QM9 (posterior means,
  batched); exact search and the FAISS flat index (``C = 1``: identical lists by isometry)
  and HNSW on the codes.

Run: ``OMP_NUM_THREADS=2 python benchmarks/bench_knn_scale.py exact 100000``. The 10^6 runs take
about 3-5 minutes each on 2 cores (``--workers``: threads of the search); run them alone and read
the load they record.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import invlatent  # noqa: E402
from invlatent import Permutation, quotient_knn  # noqa: E402

RESULTS = HERE / "results" / "knn" / "knn_scale.json"  # a folder of its own: results/*.json are suite runs
K = 10


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def latents(kind: str, N: int):
    from run import _qm9_masks, clustered_latents

    if kind == "clustered":
        return clustered_latents(N)
    Z = torch.randn(N, 9, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    return Z, _qm9_masks(N)


def qm9_codes(c: int, batch: int = 2048):
    """Posterior means ``(M, 9, c)`` of the shipped VAE for every QM9 molecule, and the masks."""
    from invlatent.book import load_shipped_graph_vae
    from invlatent.utils import in_batches

    vae, _ = load_shipped_graph_vae(c)
    data = invlatent.load_qm9().dense()
    mu = in_batches(vae.encode, data["x"], data["adj"], data["mask"], batch_size=batch)[0]
    return mu.double(), data["mask"]


def recall(a: np.ndarray, b: np.ndarray) -> float:
    """Mean fraction of each row of ``a`` found in the same row of ``b``."""
    hits = sum(len(set(x) & set(y)) for x, y in zip(a.tolist(), b.tolist()))
    return hits / a.size


def measure(fn):
    """``(result, record)``: wall and CPU seconds, peak and starting resident memory, load average."""
    load0, before, c0 = os.getloadavg(), rss_mb(), cpu_s()
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    rec = {"seconds": wall, "cpu_over_wall": (cpu_s() - c0) / wall, "rss_before_MB": before,
           "peak_rss_MB": peak_mb(), "loadavg_before": list(load0), "loadavg_after": list(os.getloadavg())}
    return out, rec


def machine() -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE.parent).stdout.strip()
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "commit": commit,
            "lapx": invlatent.quotient._batched_assignment.have_lapx(), "workers": WORKERS}


TAG = ""  # --tag: suffix of the record's name (e.g. a thread count)


def save(name: str, rec: dict) -> None:
    name += TAG
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    allrec = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": {}}
    rec["machine"] = machine()
    allrec["runs"][name] = rec
    RESULTS.write_text(json.dumps(allrec, indent=1) + "\n")
    print(name, json.dumps({k: v for k, v in rec.items() if k != "machine"}), flush=True)


WORKERS = None  # --workers: threads of the search (default: torch's thread count)


def run_exact(kind: str, N: int, cache: Path, budget: int) -> None:
    Z, mask = latents(kind, N)
    st = {}
    (d, i), rec = measure(lambda: quotient_knn(Z, K, Permutation(), mask=mask, stats=st, memory_budget=budget,
                                               workers=WORKERS))
    np.savez(cache / f"exact_{kind}_{N}.npz", d=d.numpy(), i=i.numpy())
    rec.update(kind=kind, N=N, k=K, input_MB=Z.numel() * 8 / 2**20, stats=st)
    save(f"exact_{kind}_{N}", rec)


def run_approx(N: int, cache: Path, index: str, k_factor: int, queries: int, opts: dict) -> None:
    from invlatent.quotient import QuotientIndex

    Z, mask = latents("clustered", N)
    st = {}

    def go():
        ix = QuotientIndex(index, k_factor=k_factor, **opts)
        t0 = time.perf_counter()
        ix.add(Z, mask=mask)
        build = time.perf_counter() - t0
        return ix, build, ix.search(Z, K, mask=mask, exclude=torch.arange(N), stats=st, workers=WORKERS)

    (ix, build, (d, i)), rec = measure(go)
    rec.update(kind="clustered", N=N, k=K, index=index, k_factor=k_factor, options=ix.options, build_s=build,
               stats=st)
    np.savez(cache / f"approx_{index}_{N}.npz", d=d.numpy(), i=i.numpy())
    ref = cache / f"exact_clustered_{N}.npz"
    if ref.exists():
        rec["recall_at_10"] = recall(np.load(ref)["i"], i.numpy())
        rec["recall_reference"] = "quotient_knn (exact) on all N"
    else:  # sampled queries, exact by the certified flat index
        q = torch.randperm(N, generator=torch.Generator().manual_seed(1))[:queries]
        flat = QuotientIndex("flat")
        flat.add(Z, mask=mask)
        t0 = time.perf_counter()
        _, ri = flat.search(Z[q], K, mask=mask[q], exclude=q, workers=WORKERS)
        rec["reference_s"] = time.perf_counter() - t0
        rec["recall_at_10"] = recall(ri.numpy(), i[q].numpy())
        rec["recall_reference"] = f"certified flat index (exact) on {queries} sampled queries"
    save(f"approx_{index}_{N}", rec)


def run_recall(N: int, cache: Path, index: str) -> None:
    """Recall@10 of a cached approximate run against the exact lists cached later (same N)."""
    allrec = json.loads(RESULTS.read_text())
    name = f"approx_{index}_{N}{TAG}"
    rec = allrec["runs"][name]
    got = recall(np.load(cache / f"exact_clustered_{N}.npz")["i"], np.load(cache / f"approx_{index}_{N}.npz")["i"])
    rec["sampled_recall_at_10"], rec["sampled_recall_reference"] = rec["recall_at_10"], rec["recall_reference"]
    rec["recall_at_10"], rec["recall_reference"] = got, "quotient_knn (exact) on all N"
    RESULTS.write_text(json.dumps(allrec, indent=1) + "\n")
    print(name, "recall@10", got)


def run_codes(c: int, cache: Path, N: int | None) -> None:
    (Z, mask), enc = measure(lambda: qm9_codes(c))
    if N:
        Z, mask = Z[:N], mask[:N]
    N = len(Z)
    st = {}
    (d0, i0), rec = measure(lambda: quotient_knn(Z, K, Permutation(), mask=mask, stats=st, workers=WORKERS))
    out = {"N": N, "c": c, "encode_s": enc["seconds"], "exact": dict(rec, stats=st)}
    for index in ("flat", "hnsw"):
        s2 = {}
        (d1, i1), r = measure(lambda: quotient_knn(Z, K, Permutation(), mask=mask, method="faiss",
                                                   index_options={"index": index}, stats=s2, workers=WORKERS))
        out[index] = dict(r, stats=s2, recall_at_10=recall(i0.numpy(), i1.numpy()),
                          identical_lists=bool(torch.equal(i0, i1)),
                          max_abs_distance_difference=float((d0 - d1).abs().max()))
    save(f"codes_c{c}_{N}", out)


REAL_SETS = ("qm9_c1", "qm9_c2", "qm9_c4", "million")


def real_set(name: str):
    """``(Z, mask, data)`` of a real set (``data``: the million set's arrays, else ``None``)."""
    import knn_real

    if name == "million":
        data = knn_real.million()
        return torch.from_numpy(data["Z"]), torch.from_numpy(data["mask"]), data
    Z, mask = knn_real.qm9_codes(int(name[-1]))
    return torch.from_numpy(Z), torch.from_numpy(mask), None


def real_truth(name: str, Z: torch.Tensor, data, queries: np.ndarray) -> np.ndarray:
    """True squared 10-th distances of the sampled queries, by the independent brute force."""
    import knn_real

    if name == "million":
        return knn_real.million_truth(data, queries, K)
    return knn_real.reference(name, Z.numpy(), queries, K)["d"][:, -1]  # Z: the latents searched


def run_real(name: str, index: str, queries: int, opts: dict, first: int | None = None) -> None:
    """Approximate (or flat) 10-NN of every latent of a real set with :class:`QuotientIndex` (build +
    search of all N), its recall estimate, and the recall measured on ``queries`` sampled queries
    against the independent brute force of ``benchmarks/knn_real.py``."""
    import knn_real
    from invlatent.quotient import QuotientIndex

    Z, mask, data = real_set(name)
    if first:  # the first latents only (their own brute-force reference)
        if data is not None:
            raise ValueError("--n is for the QM9 sets")
        Z, mask, name = Z[:first], mask[:first], f"{name}_first{first}"
    N = len(Z)
    st = {}

    def go():
        ix = QuotientIndex(index, **opts)
        t0 = time.perf_counter()
        ix.add(Z, mask=mask)
        build = time.perf_counter() - t0
        return ix, build, ix.search(Z, K, mask=mask, exclude=torch.arange(N), stats=st, workers=WORKERS)

    (ix, build, (d, i)), rec = measure(go)
    q = knn_real.sample_queries(N, queries)
    t0 = time.perf_counter()
    edge = real_truth(name, Z, data, q)
    per = knn_real.recall_at_k(Z.numpy(), q, i[q].numpy(), np.repeat(edge[:, None], K, 1))
    rec.update(set=name, N=N, k=K, index=index, options=ix.options, build_s=build, stats=st,
               recall_at_10=float(per.mean()), recall_queries=len(q), recall_check_s=time.perf_counter() - t0,
               recall_estimate=st.get("recall_estimate"),
               recall_reference="independent brute force (knn_real.brute_knn) on sampled queries")
    if data is not None:  # orbit-mates first, at distance 0
        mates = data["molecule"][i[:, :7].numpy()] == data["molecule"][:, None]
        rec["orbit_mates_first_share"] = float(mates.all(1).mean())
        rec["orbit_mates_max_distance"] = float(d[:, :7][torch.from_numpy(mates)].max())
    save(f"real_{name}_{index}", rec)


def run_sliced(name: str, queries: int, first: int | None = None) -> None:
    """Exact 10-NN of every latent of a real set by ``quotient_knn(method="sliced")`` (sliced sort
    bounds in matrix products, exact assignment for the pairs kept), checked against the
    independent brute force of ``benchmarks/knn_real.py`` on ``queries`` sampled queries: recall
    by distance, the share of identical index lists, the largest distance difference; for the
    million set, whether every latent's 7 orbit-mates come first and their largest distance."""
    import knn_real

    Z, mask, data = real_set(name)
    if first:
        if data is not None:
            raise ValueError("--n is for the QM9 sets")
        Z, mask, name = Z[:first], mask[:first], f"{name}_first{first}"
    N = len(Z)
    st = {}
    (d, i), rec = measure(lambda: quotient_knn(Z, K, Permutation(), mask=mask, method="sliced", stats=st,
                                               workers=WORKERS))
    q = knn_real.sample_queries(N, queries)
    t0 = time.perf_counter()
    if data is None:
        ref = knn_real.reference(name, Z.numpy(), q, K)
        edge = ref["d"][:, -1]
        rec["identical_lists_share"] = float((i[q].numpy() == ref["i"]).all(1).mean())
        rec["max_abs_sq_distance_difference"] = float(np.abs(d[q].numpy() ** 2 - ref["d"]).max())
    else:
        edge = knn_real.million_truth(data, q, K)
    per = knn_real.recall_at_k(Z.numpy(), q, i[q].numpy(), np.repeat(edge[:, None], K, 1))
    rec.update(set=name, N=N, k=K, method="sliced", stats=st, recall_at_10=float(per.mean()),
               recall_queries=len(q), recall_check_s=time.perf_counter() - t0,
               recall_reference="independent brute force (knn_real.brute_knn) on sampled queries")
    if data is not None:  # orbit-mates first, at distance 0
        mates = data["molecule"][i[:, :7].numpy()] == data["molecule"][:, None]
        rec["orbit_mates_first_share"] = float(mates.all(1).mean())
        rec["orbit_mates_max_distance"] = float(d[:, :7][torch.from_numpy(mates)].max())
        # molecules whose codes are one point of the quotient (equal multisets of rows): their
        # 16 latents tie at distance 0, so the first 7 may be another such molecule's, by index
        from invlatent.quotient._kernels import quotient_classes

        codes = torch.from_numpy(knn_real.qm9_codes(4)[0][data["codes"]])
        _, label = quotient_classes(codes)
        point = label.numpy()[data["member"]]  # each latent's point of the quotient
        same = point[i[:, :7].numpy()] == point[:, None]
        rec["duplicate_codes"] = int(len(codes) - (label.max() + 1))
        rec["first7_same_point_share"] = float(same.all(1).mean())
        rec["first7_max_distance"] = float(d[:, :7].max())
        rec["next_min_distance"] = float(d[:, 7:].min())
        rec["failures_all_duplicates"] = bool(np.isin(np.nonzero(~mates.all(1))[0],
                                                      np.nonzero(np.bincount(point)[point] > 8)[0]).all())
    np.savez(Path(os.environ.get("INVLATENT_KNN_CACHE", "/tmp/invlatent-knn-bench")) / f"sliced_{name}.npz",
             d=d.numpy(), i=i.numpy())
    save(f"sliced_{name}", rec)


def run_embeddings(name: str, queries: int) -> None:
    """How well each embedding orders the true neighbours: for ``queries`` sampled queries of a
    real set, the share of the exact 10 nearest (independent brute force) among the ``k'`` nearest
    by the embedding's own Euclidean distance (exact, all N), for the per-channel sort and the
    sliced sort embedding with 8, 16, 32 and 64 directions."""
    from invlatent.quotient._index import _directions, _embed64

    import knn_real

    Z, _, _ = real_set(name)
    N, n, c = Z.shape
    q = knn_real.sample_queries(N, 1000)[:queries]
    truth = knn_real.reference(name, Z.numpy(), knn_real.sample_queries(N, 1000))["i"][:queries]
    out = {}
    for m in (c, 8, 16, 32, 64):
        if m < c:
            continue
        t0 = time.perf_counter()
        W = torch.eye(c, dtype=torch.float64) if m == c else _directions(c, m, 0)  # m = c: the axes
        E = torch.cat([_embed64(Z[s:s + 65536], W) for s in range(0, N, 65536)]).float()
        D = torch.cdist(E[torch.from_numpy(q)], E).square_()
        D[torch.arange(len(q)), torch.from_numpy(q)] = float("inf")
        row = {}
        for kp in (10, 20, 40, 80, 160):
            top = torch.topk(D, kp, dim=1, largest=False).indices.numpy()
            row[str(kp)] = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(truth, top)]))
        out["sort (axes)" if m == c else f"sliced, {m} directions"] = {
            "directions": m, "dims": n * m, "share_of_true_10_in_top": row, "seconds": time.perf_counter() - t0}
    save(f"embeddings_{name}", {"set": name, "N": N, "queries": len(q), "loadavg_before": list(os.getloadavg()),
                                "embeddings": out})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["exact", "random", "approx", "recall", "codes", "real", "embeddings",
                                        "sliced"])
    ap.add_argument("--set", default="qm9_c4", choices=REAL_SETS, help="real: which set")
    ap.add_argument("--target-recall", type=float, default=None, help="real: QuotientIndex(target_recall=)")
    ap.add_argument("size", type=int, nargs="?", default=0, help="N (exact, random, approx) or channels c (codes)")
    ap.add_argument("--n", type=int, default=None, help="codes: first N molecules only")
    ap.add_argument("--index", default="hnsw", choices=["flat", "ivf", "hnsw"])
    ap.add_argument("--k-factor", type=int, default=4)
    ap.add_argument("--queries", type=int, default=None, help="sampled queries (approx: 2000, real: 1000)")
    ap.add_argument("--efSearch", type=int, default=128)
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--memory-budget", type=int, default=1 << 30)
    ap.add_argument("--cache", default=os.environ.get("INVLATENT_KNN_CACHE", "/tmp/invlatent-knn-bench"))
    ap.add_argument("--tag", default="", help="suffix of the record's name, e.g. _t1")
    ap.add_argument("--workers", type=int, default=None, help="threads of the search (default: torch's)")
    ap.add_argument("--M", type=int, default=32, help="HNSW neighbours per node")
    ap.add_argument("--efConstruction", type=int, default=64)
    args = ap.parse_args(argv)
    global TAG, WORKERS
    TAG, WORKERS = args.tag, args.workers
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if args.what in ("exact", "random"):
        run_exact("clustered" if args.what == "exact" else "random", args.size, cache, args.memory_budget)
    elif args.what == "approx":
        opts = ({"efSearch": args.efSearch, "M": args.M, "efConstruction": args.efConstruction} if args.index == "hnsw"
                else ({"nprobe": args.nprobe} if args.index == "ivf" else {}))
        run_approx(args.size, cache, args.index, args.k_factor, args.queries or 2000, opts)
    elif args.what == "real":
        opts = {} if args.target_recall is None else {"target_recall": args.target_recall}
        for key in ("efSearch", "M", "efConstruction", "nprobe"):
            if getattr(args, key) != ap.get_default(key):
                opts[key] = getattr(args, key)
        if args.k_factor != ap.get_default("k_factor"):
            opts["k_factor"] = args.k_factor
        run_real(args.set, args.index, args.queries or 1000, opts, args.n)
    elif args.what == "sliced":
        run_sliced(args.set, args.queries or 1000, args.n)
    elif args.what == "embeddings":
        run_embeddings(args.set, args.queries or 300)
    elif args.what == "recall":
        run_recall(args.size, cache, args.index)
    else:
        run_codes(args.size, cache, args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
