"""benchmarks/report.py on the recorded runs in benchmarks/results: what the Performance appendix
shows is complete (every column present, nothing missing where the JSON records a value)."""

import importlib.util
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _load_report():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _load_report()


@pytest.fixture(scope="module")
def runs():
    return report.load_runs(RESULTS)


@pytest.fixture(scope="module")
def cpu(runs):
    return runs["cpu"]["results"]


def _complete(table: pd.DataFrame, columns: list[str]) -> None:
    """``table`` has exactly ``columns``, at least one row, and no missing value."""
    assert list(table.columns) == columns
    assert len(table) > 0
    assert not table.isna().any().any(), table[table.isna().any(axis=1)]


def test_load_runs_reads_suite_runs_only(runs, tmp_path):
    assert "cpu" in runs and not any(run["quick"] for run in runs.values())
    # self-test files and JSON that is not a suite run are left out
    (tmp_path / "cpu.json").write_text((RESULTS / "cpu.json").read_text())
    (tmp_path / "cpu-quick.json").write_text((RESULTS / "cpu.json").read_text())
    (tmp_path / "other.json").write_text('{"rows": []}')
    assert list(report.load_runs(tmp_path)) == ["cpu"]


def test_machines_and_references(runs):
    machines = report.machines(runs)
    assert list(machines.columns) == list(runs)
    assert {"date", "device", "CPUs", "assignment solver", "torch", "commit"} <= set(machines.index)
    assert machines.loc["CPUs", "cpu"] == runs["cpu"]["machine"]["cpu_count"]
    refs = report.references(runs)
    assert set(refs.index) == {"sort", "assignment", "max_filter", "irreps", "knn"}
    assert not refs["cpu"].isna().any()


def test_exactness_matches_the_record(runs, cpu):
    table = report.exactness(runs)
    _complete(table, ["sort", "assignment", "max filters", "irrep norms",
                      "k-NN: latents checked", "k-NN: identical lists",
                      "k-NN: max |distance difference|"])
    assert table.loc["cpu", "assignment"] == cpu["assignment"]["max_abs_error"]
    assert bool(table.loc["cpu", "k-NN: identical lists"]) is True


def test_targets_table(runs):
    table = report.targets(runs)
    assert list(table.columns) == ["run", "operation", "metric", "measured", "target", "met"]
    assert len(table) == sum(len(run["targets"]) for run in runs.values())
    recorded = [row["value"] is not None for run in runs.values()
                for row in run["targets"].values()]
    assert not table["measured"][recorded].isna().any()
    assert set(table["met"]) <= {"yes", "NO", "n/a"}


def test_ratio_tables(runs, cpu):
    sp = report.speedups(cpu)
    assert len(sp) == 6 and not sp.isna().any() and (sp > 0).all()
    slow = report.slowdowns(cpu)
    assert list(slow.columns) == ["slowdown"] and not slow.isna().any().any()
    assert len(slow) == 3 + (cpu["maron"].get("compiled_slowdown") is not None)
    knn = report.knn_speedups(runs)
    _complete(knn, ["run", "N", "quotient_knn (s)", "all pairs, scipy loop (s, extrapolated)",
                    "speed-up", "assignments solved", "ordered pairs", "share solved"])
    assert ((knn["share solved"] > 0) & (knn["share solved"] <= 1)).all()
    solvers = report.solvers(runs)
    _complete(solvers, ["run", "solver", "pairs per second", "batch", "adopted"])
    assert (solvers["adopted"] == "yes").sum() == len(runs)
    mf = report.max_filter_speedups(runs)
    _complete(mf, ["run", "latents", "speed-up over the loop", "matmul time / invlatent time"])
    madds = report.max_filter_madds(cpu)
    assert set(madds) == {"N", "c", "madds_direct", "madds_dft", "madds_ratio"}
    assert math.isclose(madds["madds_ratio"], madds["madds_direct"] / madds["madds_dft"])


def test_scaling_and_memory(runs):
    table = report.scaling(runs)
    _complete(table, ["run", "operation", "smallest", "largest", "time exponent",
                      "algorithm's exponent", "criterion", "met", "memory exponent"])
    assert set(table["operation"]) == set(runs["cpu"]["results"]["scaling"])
    mem = report.memory(runs)
    _complete(mem, ["run", "operation", "size", "input MB", "peak extra MB"])
    assert len(mem) == sum(len(run["memory"]) for run in runs.values())


def test_missed_targets_and_maron(cpu):
    missed = report.missed_targets(cpu)
    assert list(missed.columns) == ["quantity", "value"]
    values = missed["value"].drop("maron_compiled")
    assert not values.isna().any() and (values > 0).all()
    # a 20x speed-up of the scipy loop needs a twentieth of its time per pair
    assert math.isclose(missed.loc["needed_us", "value"], missed.loc["scipy_us", "value"] / 20)
    passes = report.maron_passes(cpu)
    _complete(passes, ["side", "step", "passes", "full matmuls", "detail"])
    assert len(passes) == 4
    numbers = report.maron_numbers(cpu)
    assert {"n", "slowdown", "bound", "over_bound", "layer_forward_passes",
            "conv_backward_matmuls"} <= set(numbers)
    assert numbers["layer_forward_passes"] == cpu["maron"]["passes"]["layer"]["forward"]["passes"]


def test_training_report():
    train_runs = report.load_training(RESULTS)
    assert "graph_vae_cpu" in train_runs
    table = report.training_table(train_runs)
    _complete(table, ["run", "decoder", "batch", "threads", "mol/s", "compiled mol/s",
                      "MFLOP/mol", "ceiling mol/s", "fraction of ceiling", "compiled / eager"])
    ratios = report.compile_ratios(table)
    assert not ratios.isna().any().any() and len(ratios) == table["decoder"].nunique()
    rows = train_runs["graph_vae_cpu"]["rows"]
    decoder = rows[0]["decoder"]
    vae = report.training_numbers(rows, decoder, target_rate=5000)
    best = max(max(r["molecules_per_s"], r.get("compiled_molecules_per_s", 0.0))
               for r in rows if r["decoder"] == decoder)
    assert vae["rate"] == best and vae["decoder"] == decoder and vae["target"] == 5000
    assert vae["compiled_lo"] <= vae["compiled_hi"]
    assert not any(isinstance(v, float) and math.isnan(v) for v in vae.values())


def test_figures_and_styles(runs, cpu):
    for kind, run in runs.items():
        assert len(report.plot_throughput(run, kind).axes) == 4
        assert len(report.plot_scaling(run, kind).axes) == 2
    assert len(report.plot_speedups(cpu).axes) == 1
    plt.close("all")
    html = report.styled(report.memory(runs), report.MEMORY_FORMAT).to_html()
    assert "peak extra MB" in html and "row_heading" not in html  # row numbers hidden


def test_knn_scale_tables_and_fits():
    knn = report.load_knn(RESULTS)
    table = report.knn_scale(knn)
    assert list(table.columns) == ["run", "method", "N", "workers", "seconds", "CPU / wall", "peak GB",
                                   "exact / query", "solver / query", "share of pairs", "recall@10", "load"]
    assert len(table) >= 6
    assert not table[["N", "seconds", "peak GB", "exact / query", "solver / query", "share of pairs"]].isna().any().any()
    # recall is recorded for every HNSW run, and for no exact run
    hnsw = table[table["method"] == "HNSW + exact re-ranking"]
    assert hnsw["recall@10"].notna().all() and table[table["method"] == "exact"]["recall@10"].isna().all()
    # the table's numbers are the JSON's
    r = knn["exact_clustered_100000"]
    row = table.set_index("run").loc["exact_clustered_100000"]
    assert row["seconds"] == r["seconds"] and row["exact / query"] == r["stats"]["exact_pairs"] / r["N"]
    fits = report.knn_fits(table)
    assert set(fits) == {"exact", "approx"} and all(1 <= a <= 2 for a, _ in fits.values())
    fig = report.plot_knn_scale(table)
    assert len(fig.axes) == 2
    plt.close(fig)


def test_knn_codes_table():
    codes = report.knn_codes(report.load_knn(RESULTS))
    assert 1 in set(codes["c"]) and set(codes["method"]) == {"exact search", "flat index", "HNSW"}
    assert not codes.isna().any().any()
