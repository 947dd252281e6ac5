"""Compute profiles: one switch for how much work a chapter or benchmark does.

``INVLATENT_PROFILE`` selects one of

* ``smoke`` -- seconds per chapter; what CI and the nbval run of every chapter use;
* ``cpu``   -- the default book build on a laptop: real data, real training, minutes;
* ``gpu``   -- paper scale (full datasets), meant for one GPU.

When the variable is unset the profile is ``gpu`` if CUDA is available and ``cpu``
otherwise. Read it only through :func:`get_profile` (and :func:`by_profile`), so that
every chapter and benchmark agrees.

What each profile runs, chapter by chapter, is :func:`profile_table`: every ``by_profile`` call
of the chapters, read from their source (the book's intro page shows it, built from the code).

Example
-------
>>> import os
>>> os.environ["INVLATENT_PROFILE"] = "smoke"
>>> get_profile()
'smoke'
>>> by_profile(smoke=100, cpu=20_000, gpu=None)
100
>>> del os.environ["INVLATENT_PROFILE"]
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Any, Iterable, TypeVar

__all__ = ["PROFILES", "get_profile", "by_profile", "profile_table", "profile_table_markdown", "profile_values"]

PROFILES = ("smoke", "cpu", "gpu")
_T = TypeVar("_T")


def get_profile() -> str:
    """Return the active profile name: ``'smoke'``, ``'cpu'`` or ``'gpu'``.

    Raises
    ------
    ValueError
        If ``INVLATENT_PROFILE`` is set to anything else (case and surrounding
        spaces are ignored; an empty value counts as unset).
    """
    raw = os.environ.get("INVLATENT_PROFILE", "")
    name = raw.strip().lower()
    if not name:
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(
            f"INVLATENT_PROFILE={raw!r} is not a known profile; expected one of "
            f"{', '.join(PROFILES)} (or unset for gpu when CUDA is available, else cpu)"
        )
    return name


def by_profile(*, smoke: _T, cpu: _T, gpu: _T) -> _T:
    """Pick the value for the active profile.

    All three values are required, so a chapter states its scale at every profile
    in one line: ``n_train = by_profile(smoke=2_000, cpu=20_000, gpu=110_000)``.
    """
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[get_profile()]


_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def _code_cells(text: str) -> list[str]:
    cells = []
    for body in _CELL.findall(text):
        lines = body.splitlines()
        if lines and lines[0].strip() == "---":          # MyST cell options as a YAML block
            end = next((i for i, ln in enumerate(lines[1:], 1) if ln.strip() == "---"), 0)
            lines = lines[end + 1:]
        while lines and lines[0].startswith(":"):       # MyST cell options (:tags: ...)
            lines.pop(0)
        # IPython magics and shell escapes are not Python: blank them, keep line numbers
        cells.append("\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines))
    return cells


def _is_by_profile(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Name) and f.id == "by_profile") or (isinstance(f, ast.Attribute) and f.attr == "by_profile")


def _label(call: ast.Call, parents: dict, src: str) -> str:
    node, keyword, inner_call = call, None, None
    while node in parents:
        parent = parents[node]
        if isinstance(parent, ast.keyword) and keyword is None:
            keyword = parent.arg
        elif isinstance(parent, ast.Call) and inner_call is None and node is not parent.func:
            inner_call = parent
        if isinstance(parent, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
            name = ", ".join(ast.get_source_segment(src, t) or "?" for t in targets)
            return f"{name}: {keyword}" if keyword else name
        if isinstance(parent, ast.stmt):
            if inner_call is not None:
                head = (ast.get_source_segment(src, inner_call.func) or "?") + "(…)"
            else:  # e.g. an assert: the statement, with the call shown as "…"
                stmt = ast.get_source_segment(src, parent) or "?"
                head = " ".join(stmt.replace(ast.get_source_segment(src, call) or "", "…").split())
            return f"{head} {keyword}" if keyword else head
        node = parent
    return "?"


def profile_table(chapters: Iterable[str | os.PathLike]) -> list[dict[str, str]]:
    r"""What each profile runs, chapter by chapter, read from the chapters' own code.

    Every ``by_profile(smoke=..., cpu=..., gpu=...)`` call in the code cells of the given
    MyST Markdown chapters becomes one row: the chapter's title, the setting it sets (its
    assignment target, and the keyword it is passed as, if any), and the source text of the
    three values. Nothing is typed twice, so the table cannot drift from what the chapters run.

    Parameters
    ----------
    chapters : iterable of paths
        Chapter sources (``.md`` with ``{code-cell}`` blocks), in reading order.

    Returns
    -------
    list of dict
        Keys ``chapter``, ``setting``, ``smoke``, ``cpu``, ``gpu`` (all ``str``).

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "ch.md"
    >>> _ = p.write_text("# 9. Toy\n```{code-cell} ipython3\nn = by_profile(smoke=10, cpu=100, gpu=1_000)\n```\n")
    >>> profile_table([p])
    [{'chapter': '9. Toy', 'setting': 'n', 'smoke': '10', 'cpu': '100', 'gpu': '1_000'}]
    """
    rows = []
    for path in chapters:
        path = Path(path)
        text = path.read_text()
        title = next((ln[2:].strip() for ln in text.splitlines() if ln.startswith("# ")), path.stem)
        for src in _code_cells(text):
            try:
                tree = ast.parse(src)
            except SyntaxError as err:
                raise ValueError(f"{path}: a code cell is not valid Python ({err})") from err
            parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
            calls = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call) and _is_by_profile(n)), key=lambda n: (n.lineno, n.col_offset))
            for call in calls:
                values = {kw.arg: ast.get_source_segment(src, kw.value) for kw in call.keywords}
                if set(values) != set(PROFILES) or call.args:
                    raise ValueError(f"{path}:{call.lineno}: by_profile must be called with smoke=, cpu=, gpu= only")
                rows.append({"chapter": title, "setting": _label(call, parents, src),
                             **{k: " ".join((values[k] or "").split()) for k in PROFILES}})
    return rows


def profile_table_markdown(chapters: Iterable[str | os.PathLike]) -> str:
    """:func:`profile_table` as a Markdown table (one header row per chapter)."""
    out = ["| setting | `smoke` | `cpu` | `gpu` |", "|---|---|---|---|"]
    last = None
    for row in profile_table(chapters):
        if row["chapter"] != last:
            out.append(f"| **{row['chapter']}** | | | |")
            last = row["chapter"]
        cells = [row["setting"]] + [row[k] for k in PROFILES]
        out.append("| " + " | ".join(f"`{c.replace('|', '¦')}`" for c in cells) + " |")
    return "\n".join(out)


def profile_values(chapter: str | os.PathLike, profile: str = "gpu",
                   names: dict[str, Any] | None = None) -> dict[str, Any]:
    r"""The value of every ``by_profile`` setting of one chapter at ``profile``, from its source.

    Each value's source text (as :func:`profile_table` reads it) is evaluated with ``names``
    as its only variables (no builtins but ``len``, ``min``, ``max``, ``range``, ``slice``), so sizes that depend
    on data, such as ``len(split["train"])``, get the values the caller passes. Settings whose
    value needs anything else (a data set object, say) are left out. Used to estimate what a
    chapter costs at a profile without running it (:mod:`invlatent.book`).

    Returns
    -------
    dict
        ``{setting: value}``, settings named as in :func:`profile_table`.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "ch.md"
    >>> _ = p.write_text("# 9. Toy\n```{code-cell} ipython3\n"
    ...                  "n = by_profile(smoke=10, cpu=100, gpu=len(data) if full else 50)\n```\n")
    >>> profile_values(p, "gpu", {"data": range(7), "full": True})
    {'n': 7}
    >>> profile_values(p, "smoke")
    {'n': 10}
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    scope = {"__builtins__": {"len": len, "min": min, "max": max, "range": range, "slice": slice}, **(names or {})}
    out: dict[str, Any] = {}
    for row in profile_table([chapter]):
        try:
            out[row["setting"]] = eval(row[profile], scope)  # noqa: S307 -- the chapter's own literal text
        except Exception:  # needs a name the caller did not pass: not a size
            continue
    return out

