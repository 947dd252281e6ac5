#!/usr/bin/env python
"""List code lines of the book's chapters longer than the text column; exit 1 if any.

Usage::

    python tools/check_code_width.py [--max 88] [FILE.md ...]   # default: pages of _toc.yml

The book's HTML theme shows about 88 monospace characters of a code cell at 1280 px; a longer
line makes the whole cell scroll sideways. Every line inside a ```` ```{code-cell} ```` fence
(cell options ``:tags:`` included) is measured in characters; one hit per line, as
``FILE:LINE: LENGTH > MAX | start of the line``.

Package code shown with ```` ```{literalinclude} ```` is measured too, as Sphinx would show it:
``:pyobject:`` (found with :mod:`ast`, decorators included), then ``:start-at:`` /
``:start-after:`` and ``:end-at:`` / ``:end-before:`` (the first line containing the text), then
``:dedent:``. An excerpt must select its lines by text: ``:lines:`` (line numbers, which silently
show other lines when the function changes) is an error, and so is an option this check does not
know, a missing file, object or text marker. One hit per excerpt line, as
``FILE:LINE: LENGTH > MAX | literalinclude SOURCE:SOURCE_LINE | start of the line``.
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_WIDTH = 88

_CELL = re.compile(r"^(`{3,})\{code-cell\}")
_INCLUDE = re.compile(r"^(`{3,}|:{3,})\{literalinclude\}\s*(.*?)\s*$")
_OPTION = re.compile(r"^:([\w-]+):(?:\s+(.*?))?\s*$")
# what an excerpt may use: selection by text, never by line number
_KNOWN = {"pyobject", "start-at", "start-after", "end-at", "end-before", "dedent", "language",
          "caption", "name", "class", "emphasize-lines", "linenos", "lineno-match", "force"}


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


def literal_includes(text: str) -> list[tuple[int, str, dict[str, str]]]:
    """``(line_number, path, options)`` of every ``{literalinclude}`` directive of a page.

    Options are the ``:name: value`` lines after the opening fence (and the ``name: value``
    lines of a ``---`` block there, MyST's other spelling).
    """
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        m = _INCLUDE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start, options, j = m.group(1), i + 1, {}, i + 1
        while j < len(lines) and lines[j].strip() != fence:
            line = lines[j].strip()
            opt = _OPTION.match(line)
            if opt:
                options[opt.group(1)] = opt.group(2) or ""
            elif ":" in line and not line.startswith("---"):
                key, _, value = line.partition(":")
                options[key.strip()] = value.strip().strip("\"'")
            j += 1
        out.append((start, m.group(2), options))
        i = j + 1
    return out


def _object_span(source: str, dotted: str) -> tuple[int, int]:
    """1-based first and last line of the function or class ``dotted`` (``Class.method``).

    The first line is that of the first decorator, as in Sphinx's ``:pyobject:``.
    """
    body, node = ast.parse(source).body, None
    for part in dotted.split("."):
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                         ast.ClassDef)) and n.name == part), None)
        if node is None:
            raise ValueError(f"object {dotted!r} not found")
        body = node.body
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return first, node.end_lineno


def include_lines(source: str, options: dict[str, str]) -> list[tuple[int, str]]:
    """``(source_line, text)`` of the lines a literalinclude with ``options`` shows.

    Mirrors Sphinx's ``LiteralIncludeReader`` for the options of :data:`_KNOWN` (the filters run in
    its order: object, start, end, dedent). Raises ``ValueError`` for ``:lines:``, an unknown
    option, a missing object, a text marker that is not found or a dedent that cuts off code.
    """
    if "lines" in options:
        raise ValueError(":lines: selects by line number and shows other lines when the code "
                         "changes; select by text (:start-at:, :start-after:, :end-before:, "
                         ":end-at:) or include a function with :pyobject:")
    unknown = sorted(set(options) - _KNOWN)
    if unknown:
        raise ValueError(f"option(s) {', '.join(unknown)} not supported by this check")
    for a, b in (("start-at", "start-after"), ("end-at", "end-before")):
        if a in options and b in options:
            raise ValueError(f":{a}: and :{b}: cannot be used together")
    lines = list(enumerate(source.splitlines(), 1))
    if options.get("pyobject"):
        first, last = _object_span(source, options["pyobject"])
        lines = lines[first - 1:last]
    for key in ("start-at", "start-after"):
        if key in options:
            hit = next((k for k, (_, line) in enumerate(lines) if options[key] in line), None)
            if hit is None:
                raise ValueError(f":{key}: text {options[key]!r} not found")
            lines = lines[hit + (key == "start-after"):]
    for key in ("end-at", "end-before"):
        if key in options:
            # like Sphinx, :end-before: does not stop at the first line it is given
            first = 0 if key == "end-at" else 1
            hit = next((k for k, (_, line) in enumerate(lines)
                        if k >= first and options[key] in line), None)
            if hit is None:
                raise ValueError(f":{key}: text {options[key]!r} not found")
            lines = lines[:hit + (key == "end-at")]
    if "dedent" in options:
        if options["dedent"]:
            n = int(options["dedent"])
            if any(line[:n].strip() for _, line in lines):
                raise ValueError(f":dedent: {n} would cut off code (Sphinx warns)")
            lines = [(k, line[n:]) for k, line in lines]
        else:
            texts = textwrap.dedent("\n".join(line for _, line in lines)).split("\n")
            lines = [(k, t) for (k, _), t in zip(lines, texts)]
    return lines


def include_problems(page: Path, text: str, max_width: int = MAX_WIDTH
                     ) -> list[tuple[int, str]]:
    """``(line_number, message)`` for every literalinclude of ``page`` that selects lines by
    number, cannot be resolved, or shows a line longer than ``max_width``."""
    out = []
    for lineno, target, options in literal_includes(text):
        path = (page.parent / target) if not target.startswith("/") else None
        if path is None or not path.is_file():
            out.append((lineno, f"literalinclude {target}: file not found (a path relative to "
                                f"the page is expected)"))
            continue
        try:
            shown = include_lines(path.read_text(encoding="utf-8"), options)
        except (ValueError, SyntaxError) as e:
            out.append((lineno, f"literalinclude {target}: {e}"))
            continue
        for src_line, line in shown:
            if len(line) > max_width:
                out.append((lineno, f"{len(line)} > {max_width} | literalinclude "
                                    f"{target}:{src_line} | {line.strip()[:50]}"))
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
        for lineno, message in include_problems(p, p.read_text(encoding="utf-8"), max_width):
            print(f"{name}:{lineno}: {message}")
            n += 1
    if n:
        print(f"check_code_width: {n} code line(s) longer than {max_width} characters or "
              f"excerpt(s) not selected by text", file=sys.stderr)
        return 1
    print(f"check_code_width: every code line and literalinclude excerpt of {len(paths)} page(s) "
          f"fits in {max_width} characters, every excerpt selected by text")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
