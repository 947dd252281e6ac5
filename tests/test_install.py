"""The wheel, installed like a user and like Colab does, from outside the repository.

Marked ``install`` (``make install-check``; ``-m "not install"`` deselects it). One fresh venv
per session (``python -m venv``), holding what Colab has before the notebook's first cell runs:
pip, torch, ipykernel and the usual scientific stack (numpy, scipy, pandas, matplotlib,
scikit-learn, tqdm, safetensors), with their dependencies. Like Colab's system site-packages they
sit outside the venv, on a path entry: a folder of links to this environment's installed copies
(reinstalling torch would cost minutes and test nothing of ours). invlatent's own stack (e3nn,
torch-geometric, rdkit, qm9pack, mlxtend, ...) is *not* there. Then:

* the wheel is built from this checkout (``pip wheel --no-deps``);
* a stand-in ``google/colab/__init__.py`` is put on the venv's path, so the notebooks' install
  cell believes it runs in Colab; ``INVLATENT_PIP_SOURCE`` points it at the built wheel and the cell
  itself installs invlatent and its missing dependencies into the venv (from the package index);
* ``notebooks/01_ambiguity.ipynb`` and ``notebooks/04_rotated_mnist.ipynb`` (which loads shipped
  weights) run with nbclient at the smoke profile, in a temporary folder, with no ``PYTHONPATH``;
* a plain ``python -c "import invlatent; ..."`` checks version, weights and that import uses no network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
TIMINGS: dict[str, float] = {}


def _run(cmd, **kw):
    t0 = time.perf_counter()
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if out.returncode:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out, time.perf_counter() - t0


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "JUPYTER_PATH")}
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONNOUSERSITE="1")
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _, TIMINGS["build wheel"] = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, ROOT],
                                     env=_clean_env())
    (whl,) = out.glob("invlatent-*.whl")
    assert whl.name.startswith(f"invlatent-{VERSION}-")
    assert whl.stat().st_size <= 25 * 2**20, f"wheel is {whl.stat().st_size} bytes, over 25 MB"
    return whl


#: What a Colab runtime has before the notebook's first cell (its system site-packages hold these
#: and much more): taken from this environment, with everything they depend on.
COLAB_PREINSTALLED = ("pip", "torch", "numpy", "scipy", "pandas", "matplotlib", "scikit-learn", "tqdm",
                      "safetensors", "ipykernel")


def _closure(names) -> list:
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    seen, todo, dists = set(), list(names), []
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        dists.append(dist)
        for req in dist.requires or []:
            r = Requirement(req)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r.name)
    return dists


@pytest.fixture(scope="session")
def colab_venv(tmp_path_factory):
    """A fresh venv as Colab has it before the first cell: torch (this very build), pip, ipykernel
    and the usual scientific stack, visible through a path entry (like Colab's system
    site-packages) that links to this environment's copies; nothing of invlatent's own stack."""
    import sysconfig

    import torch

    base = tmp_path_factory.mktemp("colab")
    venv, preinstalled = base / "venv", base / "preinstalled"
    py = venv / "bin" / "python"
    env = _clean_env()
    _, TIMINGS["venv"] = _run([sys.executable, "-m", "venv", "--without-pip", venv], env=env)
    here = {Path(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}
    preinstalled.mkdir()
    t0 = time.perf_counter()
    for dist in _closure(COLAB_PREINSTALLED):
        assert dist.metadata["Name"].lower() not in ("invlatent", "e3nn", "torch-geometric", "rdkit")
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            for folder in here:
                if (folder / top).exists() and not (preinstalled / top).exists():
                    (preinstalled / top).symlink_to(folder / top)
    TIMINGS["link preinstalled"] = time.perf_counter() - t0
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env=env)[0].stdout.strip())
    stub = base / "colab-stub"
    (stub / "google" / "colab").mkdir(parents=True)
    (stub / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab\'s google.colab (tests only)."""\n')
    (site / "colab_runtime.pth").write_text(f"{preinstalled}\n{stub}\n")
    probe = subprocess.run([py, "-c", "import invlatent"], capture_output=True, text=True, env=env, cwd=base)
    assert probe.returncode != 0, "invlatent is importable in the fresh venv before any install"
    _run([py, "-m", "ipykernel", "install", "--prefix", venv, "--name", "colab-like"], env=env)
    return {"python": py, "site": site.resolve(), "torch": torch.__version__,
            "jupyter_path": venv / "share" / "jupyter", "base": base}


def _execute(notebook: Path, colab_venv, wheel, probe: str, tmp_path, cache: Path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    work = tmp_path / "work"
    work.mkdir()
    assert ROOT not in work.resolve().parents
    env = _clean_env(INVLATENT_PROFILE="smoke", INVLATENT_PIP_SOURCE=str(wheel), INVLATENT_CACHE=str(cache),
                     JUPYTER_PATH=str(colab_venv["jupyter_path"]))
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)       # the kernel inherits this environment
    try:
        client = NotebookClient(nb, timeout=600, kernel_name="colab-like",
                                resources={"metadata": {"path": str(work)}})
        t0 = time.perf_counter()
        client.execute(cwd=str(work))
        TIMINGS[notebook.name] = time.perf_counter() - t0
        TIMINGS[f"{notebook.name}: install cell"] = _cell_seconds(next(c for c in nb.cells if c.cell_type == "code"))
        print(f"\ninstall timings so far (s): {json.dumps({k: round(v, 1) for k, v in TIMINGS.items()})}")
    finally:
        os.environ.clear()
        os.environ.update(old)
    outputs = ["".join(o.get("text", "") for o in c.get("outputs", []) if o.get("output_type") == "stream")
               for c in nb.cells if c.cell_type == "code"]
    return outputs


def _cell_seconds(cell) -> float:
    from datetime import datetime

    ex = cell.metadata.get("execution", {})
    t = [datetime.fromisoformat(ex[k].rstrip("Z")) for k in ("iopub.execute_input", "shell.execute_reply")]
    return (t[1] - t[0]).total_seconds()


PROBE = """\
import json, sys, torch, invlatent
print("PROBE" + json.dumps({"file": invlatent.__file__, "version": invlatent.__version__,
                            "torch": torch.__version__, "colab": "google.colab" in sys.modules,
                            "path": sys.path, "extra": EXTRA}))
"""


def _probe(outputs) -> dict:
    line = next(l for l in outputs[-1].splitlines() if l.startswith("PROBE"))
    return json.loads(line[len("PROBE"):])


def _check_installed_not_repo(info, colab_venv):
    f = Path(info["file"]).resolve()
    assert colab_venv["site"] in f.parents, f"invlatent imported from {f}, not from the venv's site-packages"
    assert ROOT.resolve() not in f.parents
    assert str(ROOT) not in info["path"] and str(ROOT.resolve()) not in info["path"]
    assert info["version"] == VERSION
    assert info["torch"] == colab_venv["torch"], "the install replaced torch"
    assert info["colab"] is True


def test_colab_notebook_installs_the_wheel_and_runs(colab_venv, wheel, tmp_path):
    outputs = _execute(ROOT / "notebooks" / "01_ambiguity.ipynb", colab_venv, wheel,
                       PROBE.replace("EXTRA", "None"), tmp_path, tmp_path / "cache")
    install = outputs[0]
    assert f"installed invlatent {VERSION} from {wheel}" in install, install
    assert "Colab's own, unchanged" in install, install
    assert "profile: smoke" in "".join(outputs)
    _check_installed_not_repo(_probe(outputs), colab_venv)


def test_colab_notebook_loads_shipped_weights(colab_venv, wheel, tmp_path):
    extra = '{"source": meta["source"], "profile": __import__("invlatent.book").book.get_profile()}'
    outputs = _execute(ROOT / "notebooks" / "04_rotated_mnist.ipynb", colab_venv, wheel,
                       PROBE.replace("EXTRA", extra), tmp_path, tmp_path / "cache")
    info = _probe(outputs)
    _check_installed_not_repo(info, colab_venv)
    assert info["extra"] == {"source": "shipped", "profile": "smoke"}, "weights were retrained, not loaded"
    assert not any((tmp_path / "cache").rglob("*.safetensors")), "a training run wrote weights to the cache"


def test_wheel_imports_offline_and_verifies_its_weights(colab_venv, wheel, tmp_path):
    py = colab_venv["python"]
    env = _clean_env()
    _run([py, "-m", "pip", "install", "-q", wheel], env=env, cwd=tmp_path)   # no-op if a notebook installed it
    code = (
        "import socket\n"
        "def deny(*a, **k):\n    raise RuntimeError('network used at import')\n"
        "socket.socket.connect = deny\nsocket.create_connection = deny\n"
        "import importlib, pkgutil, invlatent, invlatent.io as io\n"
        "from safetensors.torch import load_file\n"
        "for m in pkgutil.walk_packages(invlatent.__path__, 'invlatent.'):\n"
        "    importlib.import_module(m.name)\n"
        "sums = io.verify_shipped_weights()\n"
        "for name in sums:\n"
        "    assert load_file(str(io.WEIGHTS_DIR / name))\n"
        "print(invlatent.__version__, invlatent.__file__, io.WEIGHTS_DIR, sorted(sums))\n"
    )
    out, _ = _run([py, "-c", code], env=env, cwd=tmp_path)
    version, file, weights, *names = out.stdout.split(maxsplit=3)
    assert version == VERSION
    assert colab_venv["site"] in Path(file).resolve().parents
    assert colab_venv["site"] in Path(weights).resolve().parents
    shipped = sorted(p.name for p in (ROOT / "invlatent" / "weights").glob("*.safetensors"))
    assert all(n in names[0] for n in shipped), (names, shipped)


def test_install_cell_explains_a_failed_install(colab_venv, tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import chapters
    finally:
        sys.path.pop(0)
    cell = tmp_path / "cell.py"
    cell.write_text(chapters.COLAB_INSTALL_CELL)
    missing = tmp_path / f"invlatent-{VERSION}-py3-none-any.whl"          # does not exist
    out = subprocess.run([str(colab_venv["python"]), str(cell)], capture_output=True, text=True, cwd=tmp_path,
                         env=_clean_env(INVLATENT_PIP_SOURCE=str(missing)))
    assert out.returncode == 0 and "Traceback" not in out.stdout + out.stderr, out.stderr
    assert f"Could not install invlatent from '{missing}'" in out.stdout
    assert "INVLATENT_PIP_SOURCE" in out.stdout


#: what the core install must run, and the one-line error of a function that needs an extra
CORE_CHECK = """\
import importlib.util, json, torch, invlatent as il
missing = [m for m in ("rdkit", "qm9pack", "torch_geometric", "mlxtend", "sevenn")  # (networkx: torch needs it)
           if importlib.util.find_spec(m) is not None]
assert not missing, f"the core install pulled {missing}"
g = torch.Generator().manual_seed(0)
z = torch.randn(4, 5, 1, generator=g, dtype=torch.float64)
P = il.Permutation()
s = il.sort_projection(z)
d = il.quotient_distance(z, z.flip(1), P)
D = il.pairwise_quotient_distance(z, None, P)
m = il.max_filter(torch.randn(4, 2, 8, generator=g), il.Cyclic(8), torch.randn(3, 2, 8, generator=g))
G = il.SO3("1x0e + 2x1o + 1x2e")
zi = torch.randn(4, G.irreps.dim, generator=g, dtype=torch.float64)
ci = il.complete_invariants(zi, G)
ci_rot = il.complete_invariants(G.act(G.sample(4, generator=g), zi), G)
assert float(d.abs().max()) == 0.0 and float(D.diagonal().abs().max()) == 0.0
assert torch.allclose(ci, ci_rot, atol=1e-9) and m.shape == (4, 3) and s.shape == z.shape
try:
    il.load_qm9(limit=10)
except ImportError as err:
    message = str(err)
else:
    raise AssertionError("load_qm9 ran without the molecules extra")
print("CORE" + json.dumps({"torch": torch.__version__, "message": message}))
"""


def test_core_install_in_a_fresh_venv(wheel, tmp_path):
    """The wheel alone (no extras) in a fresh venv, torch installed first (this torch, by version):
    ``import invlatent`` and the core functions work; a molecule function fails with one line
    naming the extra; nothing of the extras came along."""
    import torch

    venv = tmp_path / "venv"
    py = venv / "bin" / "python"
    env = _clean_env()
    _, TIMINGS["core venv"] = _run([sys.executable, "-m", "venv", venv], env=env)
    want_torch = torch.__version__.split("+")[0]
    _, TIMINGS["core: torch"] = _run([py, "-m", "pip", "install", "-q", f"torch=={want_torch}"], env=env, cwd=tmp_path)
    _, TIMINGS["core: wheel"] = _run([py, "-m", "pip", "install", "-q", wheel], env=env, cwd=tmp_path)
    out, _ = _run([py, "-c", CORE_CHECK], env=env, cwd=tmp_path)
    info = json.loads(next(l for l in out.stdout.splitlines() if l.startswith("CORE"))[len("CORE"):])
    assert info["torch"].split("+")[0] == want_torch, "installing invlatent replaced torch"
    assert "\n" not in info["message"]
    assert "load_qm9 needs the 'molecules' extra: pip install 'invlatent[molecules]'" in info["message"], info
    print(f"\ncore install timings (s): {json.dumps({k: round(v, 1) for k, v in TIMINGS.items()})}")


def test_wheel_carries_license_types_and_command(wheel):
    """The wheel holds the MIT license, the py.typed marker and the invlatent console script."""
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
        license_text = zf.read(next(n for n in names if n.endswith("/licenses/LICENSE"))).decode()
    assert "invlatent/py.typed" in names
    assert license_text.startswith("MIT License")
    assert "invlatent = invlatent.cli:main" in entry
