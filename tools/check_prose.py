#!/usr/bin/env python
"""List every decimal number typed into the prose of the book's chapters; exit 1 if any.

Usage::

    python tools/check_prose.py               # every page listed in _toc.yml
    python tools/check_prose.py FILE.md ...   # only these files

A number the reader sees must come from a cell, through myst-nb's ``glue`` and a
``{glue:text}`name:.2f``` role, so that it is true at every profile, seed and machine.
This checker reads the MyST source of each page and reports ``FILE:LINE: NUMBER | context``
for every decimal number (``0.5``, ``12.25``, ``.5``, ``0,5`` is not one) in prose, that is
outside

* the front matter, code cells and every other fenced block (```` ``` ```` or ``~~~``);
* math: ``$...$``, ``$$...$$`` (inline or as a block), ``\\begin{env} ... \\end{env}``
  blocks, the ``{math}`` role;
* inline code (```...```) and MyST roles that hold a name, not prose: ``{glue:text}``,
  ``{glue}``, ``{cite}``, ``{ref}``, ``{numref}``, ``{eq}``, ``{doc}``, ``{func}`` ...;
* directive option lines (``:class: tip``), MyST comments (``% ...``) and HTML comments;
* cross-references and identifiers: "section 2.4", "Figure 1.2", "§2.3", "arXiv 2401.12588",
  "PMLR 235:17538", link targets ``](...)``, version strings ``1.0.4``, and the number of a
  heading (``## 1.2 Title``; the rest of the heading is checked).

Colon fences (``:::{note}``) hold prose and are checked.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: A decimal number not glued to a word, a dot or another digit group (so no versions, no ids).
DECIMAL = re.compile(r"(?<![\w.])(?:\d+\.\d+|\.\d+)(?![\w.]*\d)(?!\w)")

_ROLES = (
    r"glue|glue:text|glue:any|glue:figure|glue:math|math|eq|ref|numref|doc|download|term|"
    r"cite|cite:[a-z]+|func|class|mod|meth|attr|obj|data|exc|py:[a-z]+|abbr"
)
_STRIP = [
    re.compile(r"<!--.*?-->"),  # HTML comment on one line
    re.compile(r"\$\$.*?\$\$"),  # display math written inline
    re.compile(r"(?<!\\)\$(?!\$)(?:\\.|[^$\\])+?(?<!\\)\$"),  # inline math
    re.compile(r"\{(?:" + _ROLES + r")\}`[^`]*`"),  # roles that hold names, math or citations
    re.compile(r"(`+).*?\1"),  # inline code
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"<https?://[^>]*>|https?://\S+"),  # bare URLs
    re.compile(
        r"(?:§\s*|\b(?:[Ss]ections?|[Cc]hapters?|[Ff]igures?|[Tt]ables?|[Ee]quations?|"
        r"[Ee]xercises?|[Pp]arts?|[Aa]ppendix|[Ll]istings?)\s+)\d+(?:\.\d+)+"
    ),
    re.compile(r"\barXiv[: ]\s*\d+\.\d+(?:v\d+)?|\bPMLR\s+\d+:\d+(?:-\d+)?", re.I),
]
_HEADING_NUMBER = re.compile(r"^(#{1,6})\s+\d+(?:\.\d+)*\.?\s")
_OPTION = re.compile(r"^\s*:[\w-]+:(\s|$)")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_BEGIN = re.compile(r"^\s*\\begin\{([\w*]+)\}")


@dataclass(frozen=True)
class Hit:
    path: str
    line: int
    number: str
    context: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.number} | {self.context}"


def prose_lines(text: str):
    """Yield ``(line_number, text)`` for every line of prose, math blocks and code removed."""
    lines = text.split("\n")
    start = 0
    if lines and lines[0].strip() == "---":  # YAML front matter
        for k in range(1, len(lines)):
            if lines[k].strip() == "---":
                start = k + 1
                break
    fence: str | None = None  # the fence string that closes the current code/fenced block
    math_block = False  # inside $$ ... $$ spanning lines
    env: str | None = None  # inside \begin{env} ... \end{env}
    html_comment = False
    for i in range(start, len(lines)):
        line, s = lines[i], lines[i].strip()
        if fence is not None:
            if s.startswith(fence) and s.rstrip("`~") == "":
                fence = None
            continue
        if math_block:
            if "$$" in s:
                math_block = False
            continue
        if env is not None:
            if re.search(r"\\end\{" + re.escape(env) + r"\}", s):
                env = None
            continue
        if html_comment:
            if "-->" in s:
                html_comment = False
            continue
        m = _FENCE.match(line)
        if m:
            fence = m.group(1)
            continue
        if s.startswith("$$") and s.count("$$") == 1:
            math_block = True
            continue
        m = _BEGIN.match(line)
        if m and not re.search(r"\\end\{" + re.escape(m.group(1)) + r"\}", s):
            env = m.group(1)
            continue
        if s.startswith("<!--") and "-->" not in s:
            html_comment = True
            continue
        if s.startswith("%") or s == "+++" or _OPTION.match(line):
            continue  # MyST comment, cell break, directive option
        line = _HEADING_NUMBER.sub(r"\1 ", line)
        yield i + 1, line


def scan_text(text: str, name: str = "<text>") -> list[Hit]:
    """Every decimal number in the prose of one MyST page (see the module docstring)."""
    hits = []
    for lineno, line in prose_lines(text):
        t = line
        for pattern in _STRIP:
            t = pattern.sub(" ", t)
        for m in DECIMAL.finditer(t):
            hits.append(Hit(name, lineno, m.group(0), line.strip()[:110]))
    return hits


def scan(path: Path) -> list[Hit]:
    try:
        name = str(path.resolve().relative_to(ROOT))
    except ValueError:
        name = str(path)
    return scan_text(path.read_text(encoding="utf-8"), name)


def book_pages() -> list[Path]:
    """The MyST pages of _toc.yml (the root page, every chapter and the appendix)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from chapters import toc_files

    return [p for p in toc_files() if p.suffix == ".md"]


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    paths = [Path(a) for a in argv] if argv else book_pages()
    for p in paths:
        if not p.is_file():
            print(f"check_prose: no such file: {p}", file=sys.stderr)
            return 2
    hits = [h for p in paths for h in scan(p)]
    for h in hits:
        print(h)
    if hits:
        print(
            f"check_prose: {len(hits)} typed decimal number(s) in prose of {len(paths)} page(s); "
            "compute each in a cell and show it with glue (`{glue:text}`name:.2f``)",
            file=sys.stderr,
        )
        return 1
    print(f"check_prose: no typed decimal numbers in the prose of {len(paths)} page(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
