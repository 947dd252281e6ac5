"""invlatent.budget: the gpu profile's estimated T4 cost, from the chapters' own sizes."""

import sys
from pathlib import Path

import pytest

from invlatent import budget
from invlatent.profiles import profile_values

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import chapters as toc  # noqa: E402

PENDING = {"07_own_model"}  # its streaming capture is being rebuilt (issue 37); no cost model yet


def test_every_scaled_chapter_has_a_cost_model():
    scaled = {p.stem for p in toc.chapters() if profile_values(p, "gpu")}
    assert scaled - PENDING <= set(budget.MODELS), scaled - PENDING - set(budget.MODELS)


def test_every_chapter_fits_a_colab_t4():
    t4 = budget.t4_estimates(toc.chapters())
    assert len(t4) == len(budget.MODELS)
    assert (t4["GPU GB"] <= budget.BUDGET["device_gb"]).all(), t4["GPU GB"]
    assert (t4["host GB"] <= budget.BUDGET["host_gb"]).all(), t4["host GB"]
    assert (t4["minutes"] > 0).all() and (t4["on the GPU"] <= t4["minutes"]).all()


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
