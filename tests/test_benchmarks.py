"""The benchmark suite runs end to end (tiny sizes) and its fast paths agree with their references.

No timing is asserted here: speed lives in ``benchmarks/run.py`` and its JSON, read by the
appendix chapter "Performance".
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_suite_writes_complete_json(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--device", "cpu",
                    "--out", str(tmp_path)], check=True, cwd=ROOT, env={**__import__("os").environ, "INVLATENT_QUIET": "1"})
    report = json.loads((tmp_path / "cpu-quick.json").read_text())
    assert report["quick"] is True
    res = report["results"]
    assert set(res) >= {"sort", "assignment", "max_filter", "irreps", "maron", "gconv", "knn", "assignment_solvers",
                        "scaling"}
    assert res["knn"]["identical_neighbours"] is True          # pruned k-NN == sorted brute-force rows
    assert res["knn"]["max_abs_distance_error"] < 1e-12
    assert all(v < 1e-9 for v in res["assignment_solvers"]["max_value_error"].values())
    assert set(res["scaling"]) == {"sort", "max_filter", "assignment", "knn"}
    # every fast path computes what its reference computes
    assert res["sort"]["max_abs_error"] == 0.0  # exact: sorting only moves values
    assert res["assignment"]["max_abs_error"] < 1e-9          # float64 subset DP vs scipy's Hungarian
    assert res["max_filter"]["max_abs_error"] < 1e-4           # float32 sums of 128 products
    assert res["irreps"]["norms_max_abs_error"] < 1e-5
    for name in ("sort", "assignment", "max_filter"):
        assert all(t > 0 for t in res[name]["invlatent_s"]) and len(res[name]["sizes"]) == len(res[name]["speedup"])
    assert {row["op"] for row in report["memory"]} == {"sort", "max_filter", "assignment", "complete_invariants"}
    assert set(report["targets"]) >= {"sort", "assignment", "knn_10", "max_filter_loop", "maron", "gconv"}
    for key in ("torch", "numpy", "scipy", "e3nn", "device", "cpu_count"):
        assert key in report["machine"]


def test_fit_exponent_recovers_known_slopes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    sizes = [10**3, 10**4, 10**5]
    assert abs(run.fit_exponent(sizes, [2e-3 * (s / 1e3) for s in sizes]) - 1.0) < 1e-9
    assert abs(run.fit_exponent(sizes, [1e-6 * s**2 for s in sizes]) - 2.0) < 1e-9
    assert abs(run.fit_exponent(sizes, [5.0, 5.0, 5.0])) < 1e-9
