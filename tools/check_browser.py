#!/usr/bin/env python
"""Open the built book in headless Chromium, offline, and check what a reader sees.

Usage::

    python tools/check_browser.py [HTML_DIR] [--root BOOK_DIR]

``HTML_DIR`` defaults to ``_build/smoke/_build/html`` (made by ``make book-check``); ``BOOK_DIR``, the
folder whose ``_toc.yml`` lists the pages, to the repository.

For every page of _toc.yml the checker loads ``HTML_DIR/<page>.html`` from disk in headless
Chromium with networking disabled (no proxy reachable, every host name unresolvable), waits for
the page and MathJax to finish, and asserts that

* math is rendered: a page whose source has math (``$``, ``{math}``, ``\\begin``) has MathJax
  output elements (``mjx-container``), none of them a MathJax error, and no raw ``$$``,
  ``\\(`` or ``\\[`` is left in the visible text (code blocks excluded);
* every ``<img>`` has loaded: ``complete`` and ``naturalWidth > 0``;
* nothing scrolls sideways in a 1280 px wide window: no ``<pre>`` (code cells, printed output),
  no ``<table>`` and no cell output is wider than its box (``scrollWidth > clientWidth``) or
  than its parent's box. Folded cells (``hide-input``) are unfolded first, so their content is
  measured too. ``_static/invlatent.css`` and ``tools/check_code_width.py`` make 88 characters
  of code fit. Display math is measured the same way: no typeset equation
  (``mjx-container[display=true]``) and no math block (``div.math``) scrolls sideways or is
  wider than its parent's box (split a long equation with ``aligned``);
* no cell output holds a Python warning (a line such as ``TqdmWarning: IProgress not found``
  or ``.../x.py:3: UserWarning: ...``): a warning printed at build time is noise in the reader's
  page. This part reads the HTML files themselves, so it runs without Chromium too.

No Python driver is needed: a copy of each page with a small script appended is opened with
``chromium --headless --dump-dom --virtual-time-budget``; the script writes its findings into
the DOM, which Chromium prints. The copy lies next to the page (so relative links resolve) and
is deleted afterwards.

Exit status: 0 all pages pass, 1 a page fails; without Chromium a ``SKIP`` line for what needs
the browser and exit status 1 only if a page's outputs hold a warning (``make browser`` installs
Debian's ``chromium`` first when it runs as root).
"""

from __future__ import annotations

import json
import os
from html.parser import HTMLParser
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
MARK = "invlatent-browser-check"
#: Where ``make book-check`` (``jupyter-book build . --path-output _build/smoke``) puts the HTML.
DEFAULT_HTML = ROOT / "_build" / "smoke" / "_build" / "html"

# Runs in the page: waits for load and MathJax, then writes a JSON report into <pre id=MARK>.
PROBE = r"""
<script>
(function () {
  function report() {
    var imgs = Array.prototype.slice.call(document.images);
    var bad = imgs.filter(function (im) { return !(im.complete && im.naturalWidth > 0); })
                  .map(function (im) { return im.getAttribute("src") || "(no src)"; });
    var body = document.body.cloneNode(true);
    body.querySelectorAll("script, style, pre, code, mjx-container, .highlight, .MathJax")
        .forEach(function (el) { el.remove(); });
    var text = body.textContent || "";
    var raw = [];
    ["$$", "\\(", "\\["].forEach(function (d) {
      var k = text.indexOf(d);
      if (k >= 0) raw.push(text.substr(Math.max(0, k - 30), 70).replace(/\s+/g, " "));
    });
    // unfold every folded cell (hide-input, hide-output) so that its content is measured too
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
    function overflows(el) {
      // content scrolls inside the element, or the element is wider than its parent's box
      var parent = el.parentElement;
      return el.scrollWidth > el.clientWidth + 1 ||
             (parent && parent.clientWidth > 0 && el.offsetWidth > parent.clientWidth + 1);
    }
    function snippet(el) {
      return (el.textContent || "").trim().split("\n")[0].slice(0, 60);
    }
    function texOf(el) {
      // the TeX source of a typeset equation (its rendered text is drawn by CSS, not text)
      try {
        var items = window.MathJax.startup.document.getMathItemsWithin(el);
        if (items && items.length) return String(items[0].math).replace(/\s+/g, " ").trim();
      } catch (e) {}
      return (el.textContent || "").replace(/\s+/g, " ").trim();
    }
    var wide = [], flagged = [];
    function check(selector, kind) {
      Array.prototype.slice.call(document.querySelectorAll(selector)).forEach(function (el) {
        if (el.id === "__MARK__" || flagged.indexOf(el) >= 0) return;
        if (flagged.some(function (f) { return el.contains(f); })) return;  // inner one reported
        if (!overflows(el)) return;
        flagged.push(el);
        var text = kind === "math" ? texOf(el).slice(0, 80) : snippet(el);
        var parent = el.parentElement;
        var by = Math.max(el.scrollWidth - el.clientWidth,
                          parent ? el.offsetWidth - parent.clientWidth : 0);
        wide.push({kind: el.closest("div.cell_input") ? "code" : kind, text: text, by: by});
      });
    }
    check("pre", "pre");
    check("table", "table");
    check("div.cell_output, div.cell_output > *, div.cell_output .output", "output");
    // display math: the typeset equation first, then the block that holds it (inline math
    // wraps with its line, and an inline box has no clientWidth to compare)
    check("mjx-container[display='true']", "math");
    check("div.math", "math");
    var out = {
      wide: wide,
      math: document.querySelectorAll("mjx-container").length,
      math_errors: document.querySelectorAll("mjx-merror, [data-mjx-error]").length,
      mathjax: !!(window.MathJax && window.MathJax.startup),
      images: imgs.length, broken_images: bad, raw_math: raw
    };
    var pre = document.createElement("pre");
    pre.id = "__MARK__";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  function whenTypeset() {
    var mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) {
      mj.startup.promise.then(function () {
        return mj.typesetPromise ? mj.typesetPromise() : null;
      }).then(report, report);
    } else { report(); }
  }
  if (document.readyState === "complete") { whenTypeset(); }
  else { window.addEventListener("load", whenTypeset); }
})();
</script>
""".replace("__MARK__", MARK)

OFFLINE_FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root in a container
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=http://127.0.0.1:9",  # nothing listens there: no request leaves
    "--host-resolver-rules=MAP * ~NOTFOUND",  # and no host name resolves
    "--virtual-time-budget=20000",
    "--run-all-compositor-stages-before-draw",
    "--window-size=1280,2000",
]


def find_browser() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def has_math(source: str) -> bool:
    """Whether a MyST page has math outside its code cells."""
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1", "", source, flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "", text.replace("{math}`", "$"))
    return bool(re.search(r"\$[^$\n]+\$|^\s*\$\$|\\begin\{", text, flags=re.M))


def inspect(browser: str, page: Path, timeout: float = 120.0) -> dict:
    """The probe's report for one built HTML page (raises RuntimeError if there is none)."""
    html = page.read_text(encoding="utf-8")
    probe_html = html.replace("</body>", PROBE + "</body>") if "</body>" in html else html + PROBE
    fd, tmp = tempfile.mkstemp(prefix=".browser-check-", suffix=".html", dir=page.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(probe_html)
        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            cmd = [browser, *OFFLINE_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                   Path(tmp).as_uri()]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    finally:
        os.unlink(tmp)
    m = re.search(r'<pre id="' + MARK + r'"[^>]*>(.*?)</pre>', proc.stdout, flags=re.S)
    if not m:
        tail = (proc.stderr or "").strip().splitlines()[-5:]
        raise RuntimeError(f"no report from the browser (exit {proc.returncode}): {tail}")
    import html as _html

    return json.loads(_html.unescape(m.group(1)))


def problems(report: dict, expect_math: bool) -> list[str]:
    out = []
    if expect_math:
        if report["math"] == 0:
            out.append("no MathJax output (mjx-container) although the page has math"
                       + ("" if report["mathjax"] else "; MathJax did not load"))
        if report["math_errors"]:
            out.append(f"{report['math_errors']} MathJax error(s)")
    for snippet in report["raw_math"]:
        out.append(f"raw math delimiter in the visible text: ...{snippet}...")
    for src in report["broken_images"]:
        out.append(f"image not loaded (naturalWidth 0): {src[:80]}")
    names = {"code": "code cell", "pre": "preformatted text", "table": "table",
             "output": "cell output", "math": "math"}
    for item in report.get("wide", []):
        by = f" ({item['by']} px too wide)" if item.get("by") else ""
        out.append(f"{names.get(item['kind'], item['kind'])} scrolls sideways at 1280 px: "
                   f"{item['text']}{by}")
    return out


#: A Python warning as ``warnings`` prints it (``file.py:3: UserWarning: text``) or as a library
#: words it (``TqdmWarning: IProgress not found``, ``Warning: ...``).
WARNING_LINE = re.compile(r"(?<!\w)[A-Za-z_]*Warning:\s")


class _CellOutputs(HTMLParser):
    """The text of every ``div.cell_output`` of a built page (myst-nb's wrapper of a cell's
    outputs: streams, stderr, text and HTML results)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.outputs: list[str] = []
        self._depth = 0  # open divs inside the current cell output (0: outside one)
        self._text: list[str] = []

    _BLOCKS = {"div", "pre", "p", "br", "tr", "li", "table"}  # each starts a new line of text

    def handle_starttag(self, tag, attrs):
        if self._depth and tag in self._BLOCKS:
            self._text.append("\n")
        if tag != "div":
            return
        if self._depth:
            self._depth += 1
        elif "cell_output" in (dict(attrs).get("class") or "").split():
            self._depth, self._text = 1, []

    def handle_endtag(self, tag):
        if self._depth and tag in self._BLOCKS:
            self._text.append("\n")
        if tag == "div" and self._depth:
            self._depth -= 1
            if not self._depth:
                self.outputs.append("".join(self._text))

    def handle_data(self, data):
        if self._depth:
            self._text.append(data)


def output_warnings(html: str) -> list[str]:
    """The lines of a built page's cell outputs that hold a Python warning (see
    :data:`WARNING_LINE`), each shortened to 100 characters."""
    parser = _CellOutputs()
    parser.feed(html)
    parser.close()
    return [line.strip()[:100] for text in parser.outputs for line in text.splitlines()
            if WARNING_LINE.search(line)]


def toc_pages(html_dir: Path, root: Path = ROOT) -> list[tuple[Path, Path]]:
    """``(source, built page)`` for every page of ``root/_toc.yml``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from chapters import toc_names

    names = toc_names(root)
    pairs = []
    for name in names:
        stem = name[: -len(Path(name).suffix)] if Path(name).suffix in (".md", ".ipynb") else name
        src = next((root / f"{stem}{ext}" for ext in (".md", ".ipynb")
                    if (root / f"{stem}{ext}").is_file()), root / f"{stem}.md")
        pairs.append((src, html_dir / f"{stem}.html"))
    return pairs


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    root = ROOT
    if "--root" in argv:
        k = argv.index("--root")
        root, argv = Path(argv[k + 1]), argv[:k] + argv[k + 2:]
    html_dir = Path(argv[0]) if argv else DEFAULT_HTML
    browser = find_browser()
    if browser is None and not html_dir.is_dir():
        print("check_browser: SKIP: no Chromium found (tried "
              + ", ".join(BROWSERS) + "); on Debian: apt-get install chromium")
        return 0
    if not html_dir.is_dir():
        print(f"check_browser: no built book at {html_dir} (run `make book-check` first)",
              file=sys.stderr)
        return 1
    pages = toc_pages(html_dir, root)
    missing = [str(p) for _, p in pages if not p.is_file()]
    if missing:
        print("check_browser: pages missing from the build: " + ", ".join(missing),
              file=sys.stderr)
        return 1
    warned = {page: [f"warning in a cell output: {line}"
                     for line in output_warnings(page.read_text(encoding="utf-8"))]
              for _, page in pages}
    if browser is None:
        for page, found in warned.items():
            if found:
                print(f"FAIL {page.relative_to(html_dir)}:")
                for p in found:
                    print(f"     - {p}")
        n_warned = sum(map(bool, warned.values()))
        print("check_browser: SKIP: no Chromium found (tried " + ", ".join(BROWSERS)
              + "); on Debian: apt-get install chromium; checked only the cell outputs: "
              + f"{n_warned} of {len(pages)} page(s) print a warning")
        return 1 if n_warned else 0
    failed = 0
    for src, page in pages:
        rel = page.relative_to(html_dir)
        try:
            report = inspect(browser, page)
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            print(f"FAIL {rel}: {err}")
            failed += 1
            continue
        found = warned[page] + problems(report, has_math(src.read_text(encoding="utf-8")))
        status = "FAIL" if found else "ok  "
        print(f"{status} {rel}: {report['math']} math elements, {report['images']} images")
        for p in found:
            print(f"     - {p}")
        failed += bool(found)
    if failed:
        print(f"check_browser: {failed} of {len(pages)} page(s) failed", file=sys.stderr)
        return 1
    print(f"check_browser: {len(pages)} page(s) render their math and every image in "
          f"{Path(browser).name}, offline; nothing scrolls sideways; no cell output warns")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
