"""Colab notebooks install what their chapter imports, and leave the profile to the runtime."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import chapters  # noqa: E402

BOOK = ROOT / "book"


@pytest.mark.parametrize("page, extras, packages", [
    ("foundations/01_ambiguity.md", "", ()),
    ("molecules/03_qm9_graph_vae.md", "molecules", ()),
    ("images/04_rotated_mnist.md", "images", ()),
    ("beyond/06_e3nn_latents.md", "molecules", ()),
    ("beyond/07_own_model.md", "molecules,models", ("umap-learn>=0.5",)),
    ("beyond/07b_other_libraries.md", "molecules,images,models,so3lr,e2cnn", ()),
])
def test_each_chapter_gets_what_it_imports(page, extras, packages):
    assert chapters.colab_requirements(BOOK / page) == (extras, packages)


def test_install_cell_installs_them_and_keeps_the_profile():
    for ch in chapters.lesson_chapters():
        extras, packages = chapters.colab_requirements(ch)
        nb = chapters.colab_notebook(ch)
        src = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
        assert f'extras = "{f"[{extras}]" if extras else ""}"' in src
        assert f"packages = {list(packages)!r}" in src and "requirement, *packages]" in src
        # the profile is the package's choice (gpu when CUDA is available), never set here
        assert 'os.environ["INVLATENT_PROFILE"] =' not in src and "setdefault" not in src


def test_an_import_nothing_provides_is_an_error(tmp_path):
    page = tmp_path / "ch.md"
    page.write_text("# X\n```{code-cell} ipython3\nimport surely_not_a_module_anywhere\n```\n")
    with pytest.raises(ValueError, match="surely_not_a_module_anywhere"):
        chapters.colab_requirements(page)


def test_extras_declared_by_package_functions(tmp_path):
    """A chapter that imports no extra's module itself still gets the extra its functions need."""
    page = tmp_path / "ch.md"
    page.write_text("# X\n```{code-cell} ipython3\nfrom invlatent.data.qm9 import load_qm9\n"
                    "from invlatent.data.mnist import load_mnist\n```\n")
    assert chapters.colab_requirements(page) == ("molecules,images", ())
    page.write_text("# X\n```{code-cell} ipython3\nimport invlatent\nq = invlatent.load_qm9\n```\n")
    assert chapters.colab_requirements(page) == ("molecules", ())
