"""invlatent.budget: the gpu profile's estimated T4 cost, from the chapters' own sizes."""

import sys
from pathlib import Path

import pytest

from invlatent import budget
from invlatent.profiles import profile_values

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import chapters as toc  # noqa: E402

#: Chapters whose estimate is over BUDGET (none: chapter 7 fits since it keeps 6,000 molecules'
#: raw features at gpu and frees one seed's probe features before the next). A chapter listed
#: here must fail to fit (strict xfail below), so the set cannot go stale.
OVER_BUDGET: set[str] = set()


def _estimates() -> dict:
    return {p.stem: budget.estimate(budget.chapter_steps(p), uses_gpu=budget.MODELS[p.stem][1])
            for p in toc.chapters() if p.stem in budget.MODELS}


def _fits(est: dict) -> bool:
    return est["device_gb"] <= budget.BUDGET["device_gb"] and est["host_gb"] <= budget.BUDGET["host_gb"]


def test_every_scaled_chapter_has_a_cost_model():
    scaled = {p.stem for p in toc.chapters() if profile_values(p, "gpu")}
    assert scaled <= set(budget.MODELS), scaled - set(budget.MODELS)


def test_every_chapter_fits_a_colab_t4():
    t4 = budget.t4_estimates(toc.chapters())
    assert len(t4) == len(budget.MODELS)
    assert (t4["minutes"] > 0).all() and (t4["on the GPU"] <= t4["minutes"]).all()
    over = {stem for stem, est in _estimates().items() if not _fits(est)}
    assert over <= OVER_BUDGET, over - OVER_BUDGET


@pytest.mark.parametrize("stem", sorted(OVER_BUDGET))
@pytest.mark.xfail(strict=True, reason="estimated over the Colab T4 budget (see OVER_BUDGET)")
def test_over_budget_chapter_fits_a_colab_t4(stem):
    assert _fits(_estimates()[stem]), _estimates()[stem]


def test_own_model_sizes_are_read():
    """Chapter 7's sizes: all of QM9 (len(ds) needs the stand-in), a sample of it kept."""
    sizes = profile_values(ROOT / "book" / "beyond" / "07_own_model.md", "gpu",
                           {"ds": range(budget.QM9_MOLECULES)})
    assert sizes["n_mol"] == budget.QM9_MOLECULES and 0 < sizes["n_keep"] < sizes["n_mol"]
    steps = {s.what: s for s in budget.chapter_steps(ROOT / "book" / "beyond" / "07_own_model.md")}
    assert steps["stream SevenNet-0 over every molecule"].gpu_s > 0


def test_sizes_come_from_the_chapter(tmp_path):
    """Twice the training digits of chapter 5: more time and more host memory."""
    src = ROOT / "book" / "images" / "05_augmentation.md"
    text = src.read_text()
    assert "gpu=60_000 if full" in text
    big = tmp_path / src.name
    big.write_text(text.replace("gpu=60_000 if full", "gpu=120_000 if full"))
    est, est_big = (budget.estimate(budget.chapter_steps(p)) for p in (src, big))
    assert est_big["minutes"] > 1.5 * est["minutes"]
    assert est_big["host_gb"] > est["host_gb"]


def test_unknown_chapter_and_empty_estimate(tmp_path):
    page = tmp_path / "99_other.md"
    page.write_text("# 99. Other\n")
    assert budget.chapter_steps(page) is None
    with pytest.raises(ValueError):
        budget.estimate([])
