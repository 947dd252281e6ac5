#!/usr/bin/env python
"""List code-cell lines of the book's chapters longer than the text column; exit 1 if any.

Usage::

    python tools/check_code_width.py [--max 88] [FILE.md ...]   # default: pages of _toc.yml

The book's HTML theme shows about 88 monospace characters of a code cell at 1280 px; a longer
line makes the whole cell scroll sideways. Every line inside a ```` ```{code-cell} ```` fence
(cell options ``:tags:`` included) is measured in characters; one hit per line, as
``FILE:LINE: LENGTH > MAX | start of the line``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_WIDTH = 88

_CELL = re.compile(r"^(`{3,})\{code-cell\}")


def long_lines(text: str, max_width: int = MAX_WIDTH) -> list[tuple[int, int, str]]:
    """``(line_number, length, line)`` of every code-cell line longer than ``max_width``."""
    out, fence = [], None
    for i, line in enumerate(text.split("\n"), 1):
        if fence is None:
            m = _CELL.match(line)
            if m:
                fence = m.group(1)
            continue
        if line.strip() == fence:
            fence = None
            continue
        if len(line) > max_width:
            out.append((i, len(line), line))
    return out


def main(argv: list[str]) -> int:
    max_width = MAX_WIDTH
    if argv[:1] == ["--max"]:
        max_width, argv = int(argv[1]), argv[2:]
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv:
        paths = [Path(a) for a in argv]
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from chapters import toc_files

        paths = [p for p in toc_files() if p.suffix == ".md"]
    n = 0
    for p in paths:
        name = str(p.resolve().relative_to(ROOT)) if p.resolve().is_relative_to(ROOT) else str(p)
        for lineno, length, line in long_lines(p.read_text(encoding="utf-8"), max_width):
            print(f"{name}:{lineno}: {length} > {max_width} | {line.strip()[:70]}")
            n += 1
    if n:
        print(f"check_code_width: {n} code line(s) longer than {max_width} characters", file=sys.stderr)
        return 1
    print(f"check_code_width: every code line of {len(paths)} page(s) fits in {max_width} characters")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
