"""Tables, figures and numbers of the book's Performance appendix, read from benchmarks/results.

The appendix (``book/appendix/benchmarks.md``) re-runs none of the long benchmarks: it reads what
``benchmarks/run.py`` recorded (``results/<cpu|cuda>.json``) and what
``benchmarks/bench_graph_vae.py`` recorded (``results/training/graph_vae_<device>.json``)
through the functions below. Each one takes parsed JSON and returns a pandas DataFrame, a dict of
numbers for the text, or a matplotlib Figure. The ``*_FORMAT`` dicts are the column formats the
chapter passes to ``DataFrame.style.format``. ``tests/test_benchmark_report.py`` runs every
function on the recorded files.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

# ---------------------------------------------------------------------------------------------
# the recorded runs


def styled(table: pd.DataFrame, formats: dict | str | None = None, index: bool | None = None):
    """``table`` as the book shows it: a pandas Styler with ``formats`` applied (a format
    string, or one per column), missing values as "–", and the index hidden when ``index`` is
    False (by default: when it only numbers the rows). Long text is never cut short.
    """
    if index is None:
        index = not isinstance(table.index, pd.RangeIndex)
    style = table.style.format(formats, na_rep="–")
    return style if index else style.hide(axis="index")


def load_runs(results_dir: str | Path) -> dict[str, dict]:
    """The suite runs recorded in ``results_dir``, keyed by device kind (``"cpu"``, ``"cuda"``).

    Returns one parsed JSON per ``*.json`` file that holds a ``"results"`` entry; the suite's
    self-test files (``*-quick.json``) are not runs and are left out.
    """
    runs = {
        path.stem: json.loads(path.read_text())
        for path in sorted(Path(results_dir).glob("*.json"))
        if not path.stem.endswith("-quick")
    }
    return {kind: run for kind, run in runs.items() if "results" in run}


def device_name(run: dict) -> str:
    """The GPU's name where the run recorded one, else the CPU's processor string."""
    machine = run["machine"]
    return machine.get("gpu", machine["processor"])


def machines(runs: dict[str, dict]) -> pd.DataFrame:
    """Where each run was recorded: one column per run, one row per property.

    Rows: date, device, CPUs, torch threads, the assignment solver the run adopted, the
    versions of torch, numpy, scipy, e3nn and invlatent, and the git commit.
    """
    columns = {}
    for kind, run in runs.items():
        m = run["machine"]
        solvers_ = run["results"].get("assignment_solvers", {})
        columns[kind] = {
            "date": m["date"],
            "device": device_name(run),
            "CPUs": m["cpu_count"],
            "torch threads": m["torch_threads"],
            "assignment solver": solvers_.get("adopted", "scipy loop"),
            **{name: m[name] for name in ("torch", "numpy", "scipy", "e3nn", "invlatent")},
            "commit": m.get("commit"),
        }
    return pd.DataFrame(columns)


def references(runs: dict[str, dict]) -> pd.DataFrame:
    """What each fast path was timed against: one row per benchmark, one column per run."""
    return pd.DataFrame(
        {
            kind: {
                name: bench["reference"]
                for name, bench in run["results"].items()
                if isinstance(bench, dict) and "reference" in bench
            }
            for kind, run in runs.items()
        }
    )


# ---------------------------------------------------------------------------------------------
# exactness

EXACTNESS_FORMAT = {
    "sort": "{:.1e}",
    "assignment": "{:.1e}",
    "max filters": "{:.1e}",
    "irrep norms": "{:.1e}",
    "k-NN: max |distance difference|": "{:.1e}",
}


def exactness(runs: dict[str, dict]) -> pd.DataFrame:
    """Each run's own check of its fast paths: one row per run.

    Columns: the max |difference| to the reference of the sort, the assignment, the max
    filters and the irrep norms; for the exact quotient 10-NN graph, the number of latents
    checked, whether the neighbour lists equal brute force's, and the max |distance
    difference| (missing where a run has no k-NN benchmark).
    """
    rows = {}
    for kind, run in runs.items():
        r = run["results"]
        row = {
            "sort": r["sort"]["max_abs_error"],
            "assignment": r["assignment"]["max_abs_error"],
            "max filters": r["max_filter"]["max_abs_error"],
            "irrep norms": r["irreps"]["norms_max_abs_error"],
        }
        if "knn" in r:
            row["k-NN: latents checked"] = r["knn"]["check_size"]
            row["k-NN: identical lists"] = r["knn"]["identical_neighbours"]
            row["k-NN: max |distance difference|"] = r["knn"]["max_abs_distance_error"]
        rows[kind] = row
    return pd.DataFrame.from_dict(rows, orient="index")


# ---------------------------------------------------------------------------------------------
# throughput and ratios


def _plot_pair(ax, sizes, ours, ref, per, label_ref, title):
    """Items per second of invlatent and of its reference against size, on log-log axes."""
    sizes = np.asarray(sizes, dtype=float)
    ax.loglog(sizes, sizes / np.asarray(ours), "o-", label="invlatent")
    ax.loglog(sizes, sizes / np.asarray(ref), "s--", label=label_ref)
    ax.set_xlabel(f"number of {per}")
    ax.set_ylabel(f"{per} per second")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")


def plot_throughput(run: dict, kind: str) -> plt.Figure:
    """Four panels of throughput against size: sort, assignment, max filters, irreps.

    Returns the Figure; the max-filter panel also shows a dense matmul of the direct path's
    shape, the ceiling of any method that performs its multiply-adds.
    """
    r = run["results"]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    s, a, mf, ir = r["sort"], r["assignment"], r["max_filter"], r["irreps"]
    _plot_pair(axes[0], s["sizes"], s["invlatent_s"], s["reference_s"], "latents",
               "numpy.sort", "sort projection, (B, 9, 1)")
    _plot_pair(axes[1], a["pairs"], a["invlatent_s"], a["reference_s"], "pairs",
               "scipy assignment loop", "exact $S_9$ distance, c = 4")
    _plot_pair(axes[2], mf["sizes"], mf["invlatent_s"], mf["reference_s"], "latents",
               "numpy loop over g", "max filters, $C_{16}$, 256 templates")
    sizes = np.asarray(mf["sizes"], dtype=float)
    axes[2].loglog(sizes, sizes / np.asarray(mf["matmul_s"]), "^:",
                   label="dense matmul (ceiling)")
    axes[2].legend(fontsize=8)
    _plot_pair(axes[3], ir["sizes"], ir["complete_s"], ir["tensor_square_s"], "latents",
               "e3nn TensorSquare", "complete invariants, " + ir["irreps"])
    fig.suptitle(f"{kind}: {device_name(run)}", fontsize=11)
    fig.tight_layout()
    return fig


TARGETS_FORMAT = {"measured": "{:.2f}"}


def targets(runs: dict[str, dict]) -> pd.DataFrame:
    """Every target of every run: one row per (run, operation).

    Columns: run, operation, metric (speedup, slowdown, ratio, fraction, seconds), the
    measured value (missing where the run could not measure it), the target, and whether it
    was met ("yes", "NO", or "n/a" where nothing was measured).
    """
    rows = []
    for kind, run in runs.items():
        for key, row in run["targets"].items():
            met = {True: "yes", False: "NO", None: "n/a"}[row["met"]]
            value = np.nan if row["value"] is None else row["value"]
            rows.append({"run": kind, "operation": key, "metric": row["metric"],
                         "measured": value, "target": row["target"], "met": met})
    return pd.DataFrame(rows)


def speedups(cpu: dict) -> pd.Series:
    """Speed-up over the reference at the largest size measured, one entry per operation.

    ``cpu`` is a run's ``"results"``; above 1 the fast path is faster.
    """
    return pd.Series(
        {
            "sort vs numpy": cpu["sort"]["speedup"][-1],
            "assignment vs scipy": cpu["assignment"]["speedup"][-1],
            "10-NN graph vs all pairs": cpu["knn"]["speedup"][-1],
            "max filters vs loop": cpu["max_filter"]["speedup"][-1],
            "irrep norms vs o3.Norm": cpu["irreps"]["speedup_norms"][-1],
            "complete vs TensorSquare": cpu["irreps"]["speedup_complete"][-1],
        },
        name="speed-up",
    )


def plot_speedups(cpu: dict) -> plt.Figure:
    """Bar chart of :func:`speedups` on a log axis, slower-than-reference bars in red."""
    sp = speedups(cpu)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.barh(sp.index, sp.values, color=["C0" if v >= 1 else "C3" for v in sp.values])
    ax.axvline(1, color="k", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel(
        "speed-up over the reference at the largest size (log scale; > 1 is faster)"
    )
    fig.tight_layout()
    return fig


SLOWDOWN_FORMAT = {"slowdown": "{:.2f}x"}


def slowdowns(cpu: dict) -> pd.DataFrame:
    """Layers against the plain convolution they generalise: column "slowdown" (times).

    Rows: the Maron 2->2 layer, the naive 2->2 layer (15 full tensors), the worst C_N group
    convolution against a plain one with c*N channels, and the compiled 2->2 layer where the
    run recorded it.
    """
    slow = {
        "Maron 2→2 layer / 1×1 conv": cpu["maron"]["slowdown"],
        "naive 2→2 (15 full tensors) / 1×1 conv": cpu["maron"]["naive_slowdown"],
        "worst C_N group conv / plain conv (c·N channels)": cpu["gconv"]["slowdown"],
    }
    if cpu["maron"].get("compiled_slowdown") is not None:
        key = "Maron 2→2, torch.compile (fused epilogue) / 1×1 conv"
        slow[key] = cpu["maron"]["compiled_slowdown"]
    return pd.DataFrame({"slowdown": slow})


# ---------------------------------------------------------------------------------------------
# the three algorithms: k-NN, assignment solvers, DFT max filters

KNN_FORMAT = {
    "N": "{:,}",
    "quotient_knn (s)": "{:,.1f}",
    "all pairs, scipy loop (s, extrapolated)": "{:,.1f}",
    "speed-up": "{:.1f}x",
    "assignments solved": "{:,}",
    "ordered pairs": "{:,}",
    "share solved": "{:.2%}",
}


def knn_speedups(runs: dict[str, dict]) -> pd.DataFrame:
    """The exact 10-NN graph against all pairs with a scipy loop: one row per (run, N).

    Columns: run, N, seconds of ``quotient_knn``, seconds of the all-pairs reference
    (extrapolated from its per-pair rate), speed-up, assignments solved, ordered pairs
    N(N-1), and the share of them that reached the assignment solver.
    """
    rows = []
    for kind, run in runs.items():
        kn = run["results"].get("knn")
        if kn is None:
            continue
        for N, t, t_ref, sp, ex in zip(kn["sizes"], kn["invlatent_s"], kn["reference_s"],
                                       kn["speedup"], kn["exact_pairs"]):
            rows.append({"run": kind, "N": N, "quotient_knn (s)": t,
                         "all pairs, scipy loop (s, extrapolated)": t_ref,
                         "speed-up": sp, "assignments solved": ex,
                         "ordered pairs": N * (N - 1), "share solved": ex / (N * (N - 1))})
    return pd.DataFrame(rows)


SOLVERS_FORMAT = {"pairs per second": "{:,.0f}", "batch": "{:,}"}


def solvers(runs: dict[str, dict]) -> pd.DataFrame:
    """Exact 9x9 assignments per second of each solver: one row per (run, solver).

    Columns: run, solver, pairs per second, the batch size timed, and whether the run
    adopted this solver for the CPU path ("yes"/"no").
    """
    rows = []
    for kind, run in runs.items():
        sol = run["results"].get("assignment_solvers")
        if sol is None:
            continue
        for name, rate in sol["pairs_per_s"].items():
            rows.append({"run": kind, "solver": name, "pairs per second": rate,
                         "batch": sol["B"], "adopted": "yes" if name == sol["adopted"] else "no"})
    return pd.DataFrame(rows)


MAX_FILTER_FORMAT = {"latents": "{:,}", "speed-up over the loop": "{:.2f}x",
                     "matmul time / invlatent time": "{:.2f}"}


def max_filter_speedups(runs: dict[str, dict]) -> pd.DataFrame:
    """C_16 max filters with 256 templates: one row per (run, number of latents).

    Columns: run, latents, speed-up over the numpy loop over group elements, and a dense
    matmul of the direct path's shape timed against invlatent ("matmul time / invlatent
    time": above 1, invlatent is faster than that matmul).
    """
    rows = []
    for kind, run in runs.items():
        mf = run["results"]["max_filter"]
        for b, sp, frac in zip(mf["sizes"], mf["speedup"], mf["fraction_of_matmul"]):
            rows.append({"run": kind, "latents": b, "speed-up over the loop": sp,
                         "matmul time / invlatent time": frac})
    return pd.DataFrame(rows)


def max_filter_madds(cpu: dict) -> dict[str, float]:
    """Multiply-adds per (latent, template) pair of the max-filter benchmark's two paths.

    Keys (the text glues each as ``mf_<key>``): ``N`` (group order), ``c`` (channels),
    ``madds_direct`` (orbit matmul), ``madds_dft`` (real DFT) and ``madds_ratio`` (direct over
    DFT).
    """
    mf = cpu["max_filter"]
    madds = mf["madds_per_pair"]
    return {"N": mf["shape"]["N"], "c": mf["shape"]["c"], "madds_direct": madds["direct"],
            "madds_dft": madds["dft"], "madds_ratio": madds["direct"] / madds["dft"]}


# ---------------------------------------------------------------------------------------------
# cost against size

SCALING_FORMAT = {"smallest": "{:,}", "largest": "{:,}", "time exponent": "{:.2f}",
                  "algorithm's exponent": "{:.1f}", "memory exponent": "{:.2f}"}


def scaling(runs: dict[str, dict]) -> pd.DataFrame:
    """Fitted growth of time and memory with size: one row per (run, operation).

    Columns: run, operation, smallest and largest size, the fitted time exponent (upper half
    of the sizes), the algorithm's exponent, the criterion ("at most" it for the k-NN graph,
    "within 0.15" of it otherwise), whether the fit meets it, and the fitted memory exponent
    (missing where none was fitted).
    """
    rows = []
    for kind, run in runs.items():
        for op, row in run["results"].get("scaling", {}).items():
            mem = row["memory_exponent"]
            rows.append({
                "run": kind, "operation": op,
                "smallest": int(row["sizes"][0]), "largest": int(row["sizes"][-1]),
                "time exponent": row["time_exponent"],
                "algorithm's exponent": row["expected_exponent"],
                "criterion": "at most" if op == "knn" else "within 0.15",
                "met": row["exponent_ok"],
                "memory exponent": np.nan if mem is None else mem,
            })
    return pd.DataFrame(rows)


def plot_scaling(run: dict, kind: str) -> plt.Figure:
    """Time (left) and peak extra memory (right) of each operation against size, log-log.

    The legend gives each fitted slope; memory points that are not positive are left out.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for op, row in run["results"]["scaling"].items():
        sizes = np.asarray(row["sizes"], float)
        axes[0].loglog(sizes, row["seconds"], "o-",
                       label=f"{op} (slope {row['time_exponent']:.2f})")
        mem = np.asarray(row["peak_extra_MB"], float)
        ok = np.isfinite(mem) & (mem > 0)
        slope = row["memory_exponent"]
        label = op if slope is None else f"{op} (slope {slope:.2f})"
        axes[1].loglog(sizes[ok], mem[ok], "o-", label=label)
    axes[0].set(xlabel="size (latents, pairs, or N for the k-NN graph)", ylabel="seconds",
                title=f"{kind}: time")
    axes[1].set(xlabel="size", ylabel="peak extra MB", title=f"{kind}: peak memory")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# what limits the missed targets


def missed_targets(cpu: dict) -> pd.DataFrame:
    """The quantities the explanations of missed targets rest on, from a run's results.

    Returns a DataFrame indexed by short keys, with columns "quantity" (what it is) and
    "value": microseconds per 9x9 assignment of the scipy loop, of invlatent, and what a 20x
    speed-up would need; the best fraction of a dense matmul's rate reached by the max
    filters and by the numpy loop; the smallest and largest sort speed-up over sizes; the
    Maron 2->2 slowdowns (measured, naive, compiled), its multiply-adds over the 1x1
    convolution's, its matmuls' slowdown alone, the bound, and measured over bound.
    """
    a, mf, srt, mar = cpu["assignment"], cpu["max_filter"], cpu["sort"], cpu["maron"]
    ref_us = a["reference_s"][-1] / a["pairs"][-1] * 1e6
    loop_frac = max(m / r for m, r in zip(mf["matmul_s"], mf["reference_s"]))
    compiled = mar.get("compiled_slowdown")
    rows = {
        "scipy_us": ("assignment: scipy loop, µs per pair", ref_us),
        "ours_us": ("assignment: invlatent, µs per pair",
                    a["invlatent_s"][-1] / a["pairs"][-1] * 1e6),
        "needed_us": ("assignment: µs per problem a 20x speed-up needs", ref_us / 20),
        "mf_fraction": ("max filters: invlatent's rate / dense matmul's (best)",
                        max(mf["fraction_of_matmul"])),
        "loop_fraction": ("max filters: numpy loop's rate / dense matmul's (best)",
                          loop_frac),
        "sort_min": ("sort: speed-up over numpy, smallest over sizes", min(srt["speedup"])),
        "sort_max": ("sort: speed-up over numpy, largest over sizes", max(srt["speedup"])),
        "maron": ("Maron 2→2 / 1x1 conv, measured", mar["slowdown"]),
        "maron_naive": ("naive 2→2 / 1x1 conv", mar["naive_slowdown"]),
        "maron_flops": ("Maron 2→2 multiply-adds / 1x1 conv's", mar["flop_ratio"]),
        "maron_matmuls": ("Maron 2→2 matmuls alone / 1x1 conv's", mar["matmul_slowdown"]),
        "maron_bound": ("bound: conv + the layer's extra matmul time", mar["bound_slowdown"]),
        "maron_over_bound": ("Maron 2→2 measured / bound", mar["slowdown_over_bound"]),
        "maron_compiled": ("Maron 2→2 under torch.compile / 1x1 conv",
                           np.nan if compiled is None else compiled),
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["quantity", "value"])


def maron_passes(cpu: dict) -> pd.DataFrame:
    """Passes over the (B, n, n, C) tensor and full C x C matmuls of the Maron 2->2 layer and
    of the 1x1 convolution, forward and backward: one row per (side, step).

    Columns: side, step, passes, full matmuls, detail (what each pass reads R and writes W).
    """
    rows = []
    for side, steps in cpu["maron"]["passes"].items():
        for step, q in steps.items():
            rows.append({"side": side, "step": step, "passes": q["passes"],
                         "full matmuls": q["full_matmuls"], "detail": q["detail"]})
    return pd.DataFrame(rows)


def maron_numbers(cpu: dict) -> dict[str, float]:
    """Numbers of the Maron 2->2 layer that the text quotes (glued as ``maron_<key>``).

    Keys: ``n`` (nodes), ``slowdown``, ``flop_ratio``, ``matmul_slowdown``, ``bound``,
    ``over_bound``, and ``<side>_<step>_passes`` / ``<side>_<step>_matmuls`` for side
    ``layer`` or ``conv`` and step ``forward`` or ``backward``.
    """
    mar = cpu["maron"]
    out = {"n": mar["shape"][1], "slowdown": mar["slowdown"],
           "flop_ratio": mar["flop_ratio"], "matmul_slowdown": mar["matmul_slowdown"],
           "bound": mar["bound_slowdown"], "over_bound": mar["slowdown_over_bound"]}
    for side, key in (("layer", "layer"), ("1x1 conv", "conv")):
        for step in ("forward", "backward"):
            out[f"{key}_{step}_passes"] = mar["passes"][side][step]["passes"]
            out[f"{key}_{step}_matmuls"] = mar["passes"][side][step]["full_matmuls"]
    return out


# ---------------------------------------------------------------------------------------------
# training the graph VAE


def load_training(results_dir: str | Path) -> dict[str, dict]:
    """The recorded graph-VAE training benchmarks, ``training/graph_vae_*.json``, by file stem."""
    return {
        path.stem: json.loads(path.read_text())
        for path in sorted((Path(results_dir) / "training").glob("graph_vae_*.json"))
    }


TRAINING_FORMAT = {"mol/s": "{:,.0f}", "compiled mol/s": "{:,.0f}",
                   "MFLOP/mol": "{:.1f}", "ceiling mol/s": "{:,.0f}",
                   "fraction of ceiling": "{:.2f}", "compiled / eager": "{:.2f}"}


def training_table(train_runs: dict[str, dict]) -> pd.DataFrame:
    """Training steps of the graph VAE: one row per (run, decoder, batch, threads).

    Columns: run, decoder, batch, threads, molecules per second eager and compiled, matmul
    MFLOP per molecule, the FLOP ceiling in molecules per second, the eager fraction of it,
    and compiled over eager (missing where a run did not compile).
    """
    rows = []
    for kind, run in train_runs.items():
        for r in run["rows"]:
            rows.append({
                "run": kind, "decoder": r["decoder"], "batch": r["batch"],
                "threads": r["threads"], "mol/s": r["molecules_per_s"],
                "compiled mol/s": r.get("compiled_molecules_per_s", np.nan),
                "MFLOP/mol": r["mflop_per_molecule"],
                "ceiling mol/s": r.get("ceiling_molecules_per_s", np.nan),
                "fraction of ceiling": r.get("fraction_of_ceiling", np.nan),
                "compiled / eager": r.get("ratio_compiled", np.nan),
            })
    return pd.DataFrame(rows)


def compile_ratios(training: pd.DataFrame) -> pd.DataFrame:
    """Compiled over eager throughput of :func:`training_table`'s rows: decoders by
    (threads, batch)."""
    return training.pivot_table(index="decoder", columns=["threads", "batch"],
                                values="compiled / eager")


def training_numbers(rows: list[dict], decoder: str, target_rate: float) -> dict:
    """The best training setting of ``decoder`` among a run's ``rows``, against a target.

    The best row is the one with the highest rate, eager or compiled. Keys (glued as
    ``vae_<key>``): ``decoder``; ``rate`` (molecules per second), ``rate_threads`` and
    ``rate_batch`` of the best row; its ``ceiling`` (molecules per second), ``mflop`` (per
    molecule), ``matmul_gflops`` (the machine's best matmul rate), ``fraction`` (rate over
    ceiling), ``need`` (target over ceiling), ``target``; and ``compiled_lo`` /
    ``compiled_hi``, the range of compiled over eager over all rows of every decoder.
    """
    def rate(r):
        return max(r["molecules_per_s"], r.get("compiled_molecules_per_s", 0.0))

    best = max((r for r in rows if r["decoder"] == decoder), key=rate)
    compiled = [r["ratio_compiled"] for r in rows if "ratio_compiled" in r]
    return {
        "decoder": decoder, "rate": rate(best), "rate_threads": best["threads"],
        "rate_batch": best["batch"], "ceiling": best["ceiling_molecules_per_s"],
        "mflop": best["mflop_per_molecule"], "matmul_gflops": best["matmul_gflop_per_s"],
        "fraction": rate(best) / best["ceiling_molecules_per_s"],
        "need": target_rate / best["ceiling_molecules_per_s"], "target": target_rate,
        "compiled_lo": min(compiled), "compiled_hi": max(compiled),
    }


# ---------------------------------------------------------------------------------------------
# memory

MEMORY_FORMAT = {"size": "{:,}", "input MB": "{:,.1f}", "peak extra MB": "{:,.1f}"}


def memory(runs: dict[str, dict]) -> pd.DataFrame:
    """Peak extra memory of each operation at its largest size: one row per (run, operation).

    Columns: run, operation, size, input MB, peak extra MB (measured in a fresh process).
    """
    return pd.DataFrame([
        {"run": kind, "operation": row["op"], "size": row["size"],
         "input MB": row["input_MB"], "peak extra MB": row["peak_extra_MB"]}
        for kind, run in runs.items()
        for row in run["memory"]
    ])


# ---------------------------------------------------------------------------------------------
# quotient neighbours at scale (benchmarks/bench_knn_scale.py)

KNN_FORMAT = {"N": "{:,}", "workers": "{:.0f}", "seconds": "{:,.1f}", "CPU / wall": "{:.2f}",
              "peak GB": "{:.2f}", "exact / query": "{:.1f}", "solver / query": "{:.2f}",
              "share of pairs": "{:.1e}", "recall@10": "{:.4f}", "load": "{:.1f}"}


def load_knn(results_dir: str | Path) -> dict[str, dict]:
    """The runs of ``knn/knn_scale.json``, by name (``exact_clustered_<N>``,
    ``exact_random_<N>``, ``approx_hnsw_<N>``, ``codes_c<c>_<N>``)."""
    return json.loads((Path(results_dir) / "knn" / "knn_scale.json").read_text())["runs"]


def _knn_row(name: str, method: str, r: dict) -> dict:
    st = r.get("stats", {})
    N = r["N"]
    workers = r.get("machine", {}).get("workers") or st.get("workers") or np.nan
    return {"run": name, "method": method, "N": N, "workers": workers, "seconds": r["seconds"],
            "CPU / wall": r["cpu_over_wall"], "peak GB": r["peak_rss_MB"] / 1024,
            "exact / query": st.get("exact_pairs", np.nan) / N,
            "solver / query": st.get("solver_pairs", np.nan) / N,
            "share of pairs": st["exact_pairs"] / (N * (N - 1)) if "exact_pairs" in st else np.nan,
            "recall@10": r.get("recall_at_10", np.nan), "load": r["loadavg_before"][0]}


def knn_scale(knn: dict[str, dict]) -> pd.DataFrame:
    """One row per timed run of QM9-shaped latents, ``(N, 9, 4)``: exact search on clustered and
    on structureless latents, HNSW with exact re-ranking; sorted by method and N.

    Columns: run, method, N, workers, seconds (wall, including clustering or the index build),
    CPU / wall, peak GB (resident, the whole process), exact / query (exact distances evaluated
    per query), solver / query (of those, the ones that needed the assignment solver), share of
    pairs (exact over all N (N - 1)), recall@10 (against the exact lists), load (the 1-minute
    load average when the run began).
    """
    method = {"exact_clustered": "exact", "exact_random": "exact, structureless",
              "approx_hnsw": "HNSW + exact re-ranking"}
    rows = [_knn_row(name, method[name.rsplit("_", 1)[0]], r) for name, r in knn.items()
            if name.rsplit("_", 1)[0] in method]
    return pd.DataFrame(rows).sort_values(["method", "N"]).reset_index(drop=True)


def knn_codes(knn: dict[str, dict]) -> pd.DataFrame:
    """The shipped graph VAE's codes of all QM9 molecules: one row per (channels c, method).

    Columns: c, N, method (exact search, FAISS flat, FAISS HNSW), seconds, peak GB, recall@10
    and identical lists (against the exact search), and the largest distance difference.
    """
    rows = []
    for name, r in knn.items():
        if not name.startswith("codes_c"):
            continue
        for method, label in (("exact", "exact search"), ("flat", "flat index"), ("hnsw", "HNSW")):
            m = r[method]
            rows.append({"c": r["c"], "N": r["N"], "method": label, "seconds": m["seconds"],
                         "peak GB": m["peak_rss_MB"] / 1024,
                         "recall@10": m.get("recall_at_10", 1.0),
                         "identical lists": m.get("identical_lists", True),
                         "max |distance difference|": m.get("max_abs_distance_difference", 0.0)})
    return pd.DataFrame(rows)


def knn_fits(table: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Power laws ``seconds = exp(b) N^a`` fitted to :func:`knn_scale`'s exact (clustered) and
    HNSW rows, as ``{"exact": (a, b), "approx": (a, b)}``."""
    out = {}
    for key, method in (("exact", "exact"), ("approx", "HNSW + exact re-ranking")):
        t = table[table["method"] == method]
        out[key] = tuple(np.polyfit(np.log(t["N"]), np.log(t["seconds"]), 1))
    return out


def plot_knn_scale(table: pd.DataFrame) -> plt.Figure:
    """Wall time (left) and exact distances per query (right) against N, log-log, per method."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    for (method, t), mark in zip(table.groupby("method"), "os^"):
        a.loglog(t["N"], t["seconds"], mark + "-", label=method)
        b.semilogx(t["N"], t["exact / query"], mark + "-", label=method)
    a.set(xlabel="latents N", ylabel="seconds (wall, 10-NN of every latent)")
    b.set(xlabel="latents N", ylabel="exact distances per query")
    for ax in (a, b):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


REAL_SETS = {"qm9_c1": "QM9 codes, c = 1", "qm9_c2": "QM9 codes, c = 2", "qm9_c4": "QM9 codes, c = 4",
             "million": "million real latents, c = 4"}
KNN_REAL_FORMAT = {"N": "{:,}", "seconds": "{:,.1f}", "CPU s": "{:,.1f}", "build s": "{:,.1f}", "peak GB": "{:.2f}",
                   "recall@10": "{:.4f}", "estimate": "{:.4f}", "|error|": "{:.4f}",
                   "candidates / query": "{:.0f}", "load": "{:.1f}"}


def knn_real(knn: dict[str, dict], tag: str = "") -> pd.DataFrame:
    """The real benchmark sets: one row per ``real_<set>_<index><tag>`` run of
    ``bench_knn_scale.py real``, in the order of :data:`REAL_SETS`.

    Columns: set, N, index, seconds (wall: build and the 10-NN of every latent, the recall
    estimate included), CPU s (CPU time of the process over the same span), build s, peak GB (resident, the whole process), recall@10 (measured on
    1,000 sampled queries against the independent brute force), estimate (the index's own,
    ``stats["recall_estimate"]``), |error| (their difference), candidates / query (FAISS's
    candidates after tuning, ``k * k_factor_used``), load (1-minute load average at the start).
    """
    rows = []
    for name, r in knn.items():
        if not name.startswith("real_") or not name.endswith(tag):
            continue
        base = name[len("real_"):len(name) - len(tag)] if tag else name[len("real_"):]
        set_name, index = base.rsplit("_", 1)
        if set_name not in REAL_SETS:
            continue
        st = r["stats"]
        est = r.get("recall_estimate", np.nan)
        rows.append({"set": REAL_SETS[set_name], "N": r["N"], "index": index, "seconds": r["seconds"],
                     "CPU s": r["seconds"] * r["cpu_over_wall"], "build s": r["build_s"], "peak GB": r["peak_rss_MB"] / 1024,
                     "recall@10": r["recall_at_10"], "estimate": est, "|error|": abs(est - r["recall_at_10"]),
                     "candidates / query": r["k"] * st.get("k_factor_used", np.nan),
                     "load": r["loadavg_before"][0], "_order": list(REAL_SETS).index(set_name)})
    if not rows:
        return pd.DataFrame(columns=["set", "N", "index", "seconds", "CPU s", "build s", "peak GB", "recall@10",
                                     "estimate", "|error|", "candidates / query", "load"])
    out = pd.DataFrame(rows).sort_values(["_order", "index"]).drop(columns="_order")
    return out.reset_index(drop=True)


def knn_embeddings(knn: dict[str, dict], name: str = "embeddings_qm9_c4") -> pd.DataFrame:
    """How well an embedding orders the true neighbours (``bench_knn_scale.py embeddings``): one row
    per embedding (per-channel sort, sliced sort with m directions), the share of the exact 10
    nearest among the k' nearest by the embedding's distance, one column per k'."""
    emb = knn[name]["embeddings"]
    rows = [{"embedding": label, "dims": e["dims"], **{f"top {kp}": v for kp, v in e["share_of_true_10_in_top"].items()}}
            for label, e in emb.items()]
    return pd.DataFrame(rows)


KNN_SLICED_FORMAT = {"N": "{:,}", "classes": "{:,}", "seconds": "{:,.1f}", "CPU s": "{:,.1f}",
                     "peak GB": "{:.2f}", "recall@10": "{:.4f}", "identical lists": "{:.4f}",
                     "kept / query": "{:,.0f}", "exact / query": "{:,.1f}", "solver / query": "{:.2f}",
                     "load": "{:.1f}"}


def knn_sliced(knn: dict[str, dict], tag: str = "") -> pd.DataFrame:
    """Exact 10-NN of the real sets by ``quotient_knn(method="sliced")``: one row per
    ``sliced_<set><tag>`` run of ``bench_knn_scale.py sliced``, in the order of :data:`REAL_SETS`.

    Columns: set, N, classes (distinct points of the quotient, searched once), seconds (wall, the
    whole search), CPU s, peak GB (resident, the whole process), recall@10 (on 1,000 sampled
    queries against the independent brute force), identical lists (share of those queries whose
    list equals the brute force's index for index; ``nan`` for the million, whose reference is
    its orbit structure), kept / query (pairs whose sliced bound did not exceed the running
    ``k``-th distance), exact / query (pairs that got the exact distance after the float32 dual
    bound), solver / query (of those, the ones that needed the assignment solver), load (1-minute
    load average at the start).
    """
    rows = []
    for name, r in knn.items():
        if not name.startswith("sliced_") or not name.endswith(tag):
            continue
        set_name = name[len("sliced_"):len(name) - len(tag)] if tag else name[len("sliced_"):]
        if set_name not in REAL_SETS:
            continue
        st, N = r["stats"], r["N"]
        rows.append({"set": REAL_SETS[set_name], "N": N, "classes": st["classes"], "seconds": r["seconds"],
                     "CPU s": r["seconds"] * r["cpu_over_wall"], "peak GB": r["peak_rss_MB"] / 1024,
                     "recall@10": r["recall_at_10"], "identical lists": r.get("identical_lists_share", np.nan),
                     "kept / query": st["kept_pairs"] / st["classes"],
                     "exact / query": st["exact_pairs"] / st["classes"],
                     "solver / query": st["solver_pairs"] / st["classes"],
                     "load": r["loadavg_before"][0], "_order": list(REAL_SETS).index(set_name)})
    if not rows:
        return pd.DataFrame(columns=["set", *KNN_SLICED_FORMAT])
    out = pd.DataFrame(rows).sort_values("_order").drop(columns="_order")
    return out.reset_index(drop=True)
