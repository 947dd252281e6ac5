"""tools/check_prose.py: a typed decimal in chapter prose fails it; glued, code and math pass.

The checker itself runs on the real chapters as ``make prose`` (part of ``make test``); these
tests pin down what it must catch and what it must leave alone, on synthetic chapters.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "check_prose.py"


def _load():
    spec = importlib.util.spec_from_file_location("check_prose", TOOL)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


check_prose = _load()

FRONT = """---
jupytext:
  text_representation:
    format_name: myst
    format_version: 0.13
kernelspec:
  name: python3
---
"""

CLEAN = FRONT + r"""
# 3. A clean chapter

## 3.1 Numbers from cells

```{code-cell} ipython3
from myst_nb import glue
acc = 0.8361
glue("acc", acc, display=False)
assert acc > 0.5  # a threshold of 0.5 in code is fine
```

The held-out accuracy is {glue:text}`acc:.3f`, as section 2.4 and Figure 1.2 show
{cite}`hansen2024interpreting` (arXiv 2401.12588; PMLR 235:17538-17553), with jupyter-book 1.0.4.
Inline math $\sigma = 0.5$ and code `lr=3e-3, beta=0.05` are not prose; neither is
{math}`\tfrac{1}{2} = 0.5` nor a [link](../v0.5/page.html).

$$
d = 0.25 \, \lVert z \rVert
$$

$$ a = 1.5 $$

\begin{align}
x &= 2.5
\end{align}

:::{note}
:width: 0.5
Twelve epochs; nine heavy atoms; 130,831 molecules (integers are not checked).
:::

% a MyST comment with 0.7
<!-- an HTML comment with 0.9 -->

~~~text
a fenced block 3.14
~~~
"""


def _write(tmp_path, text, name="chapter.md"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_clean_chapter_passes(tmp_path):
    p = _write(tmp_path, CLEAN)
    assert check_prose.scan(p) == []
    assert check_prose.main([str(p)]) == 0


@pytest.mark.parametrize(
    "sentence, number",
    [
        ("The bond accuracy reached 0.836 after 12 epochs.", "0.836"),
        ("about 0.2% of held-out molecules came back exactly", "0.2"),
        ("the raw index is about .5 here", ".5"),
        ("smoke ~0.28, cpu ~0.15", "0.28"),
        ("R² of 0.67.", "0.67"),
        ("| gap | 0.91 ± 0.02 |", "0.91"),
    ],
)
def test_typed_decimal_fails(tmp_path, sentence, number):
    p = _write(tmp_path, CLEAN + "\n" + sentence + "\n")
    hits = check_prose.scan(p)
    assert [h.number for h in hits][:1] == [number]
    assert hits[0].line == len(CLEAN.split("\n")) + 1  # the line of the typed number
    assert check_prose.main([str(p)]) == 1


def test_decimal_in_heading_title_and_note_is_caught(tmp_path):
    text = CLEAN + "\n## 3.2 Why 0.5 is the threshold\n\n:::{note}\nMeasured: 0.75.\n:::\n"
    numbers = [h.number for h in check_prose.scan(_write(tmp_path, text))]
    assert numbers == ["0.5", "0.75"]  # the section number 3.2 is not a hit


def test_prose_after_code_cell_and_math_block_is_checked_again(tmp_path):
    text = FRONT + "```{code-cell} ipython3\nx = 1.5\n```\n$$\ny = 2.5\n$$\nafter: 3.5\n"
    assert [h.number for h in check_prose.scan(_write(tmp_path, text))] == ["3.5"]


def test_command_line_exit_status(tmp_path):
    good = _write(tmp_path, CLEAN, "good.md")
    bad = _write(tmp_path, CLEAN + "\nwe measured 0.815 here\n", "bad.md")
    run = lambda *a: subprocess.run([sys.executable, str(TOOL), *a], capture_output=True, text=True)  # noqa: E731
    assert run(str(good)).returncode == 0
    out = run(str(good), str(bad))
    assert out.returncode == 1
    assert "bad.md:" in out.stdout and "0.815" in out.stdout and "good.md" not in out.stdout
    assert run(str(tmp_path / "missing.md")).returncode == 2
