#!/usr/bin/env python
"""Screenshots of parts of a built book page, as a reader sees them (headless Chromium, offline).

Usage::

    python tools/screenshots.py PAGE.html OUT_DIR NAME=SECTION_ID[>SELECTOR[#K]][:SKIP] ...

For each ``NAME=SECTION_ID`` the page is opened at 1280 px width, shifted so that the element
with that ``id`` (a section: Jupyter Book gives every heading's section an id such as
``latent-maps-raw-versus-sorted``) is at the top of the window, optionally further down by
``SKIP`` pixels (with ``>SELECTOR#K``: the ``K``-th element inside the section that matches
the CSS selector, e.g. ``>img#1`` or ``>table``), and a 1280 x 1000 screenshot is written to ``OUT_DIR/NAME.png``. Chromium runs with
the same offline flags as ``tools/check_browser.py`` (no request leaves the machine). The page
copy with the scrolling script lies next to the page, so relative links resolve, and is deleted.

Used for issue reports and the closing notes of layout work (code cells that fit the column,
tables, figure sizes): ``make book`` first, then e.g.::

    python tools/screenshots.py _build/html/book/molecules/03_qm9_graph_vae.html /tmp/shots \\
        map=latent-maps-raw-versus-sorted
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_browser import OFFLINE_FLAGS, find_browser  # noqa: E402

# Headless Chromium screenshots ignore scrolling, so the script shifts the body up instead.
SCROLL = r"""
<script>
window.addEventListener("load", function () {
  var el = document.getElementById("__ID__");
  if (el && "__SEL__") { el = el.querySelectorAll("__SEL__")[__NTH__] || null; }
  if (!el) { return; }
  var y = el.getBoundingClientRect().top + window.scrollY + __SKIP__;
  document.body.style.marginTop = (-y) + "px";
});
</script>
"""


def shoot(browser: str, page: Path, section: str, skip: int, out: Path, height: int = 1000,
          selector: str = "", nth: int = 0) -> None:
    """Write ``out`` (PNG): the window shifted to ``section`` (or its ``nth`` element matching the CSS
    ``selector``), plus ``skip`` px, on ``page``."""
    html = page.read_text(encoding="utf-8")
    if f'id="{section}"' not in html:
        raise SystemExit(f"{page}: no element with id={section!r}")
    script = (SCROLL.replace("__ID__", section).replace("__SEL__", selector)
              .replace("__NTH__", str(int(nth))).replace("__SKIP__", str(int(skip))))
    fd, tmp = tempfile.mkstemp(prefix=".screenshot-", suffix=".html", dir=page.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html.replace("</body>", script + "</body>"))
        flags = [f for f in OFFLINE_FLAGS if not f.startswith("--window-size")]
        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            cmd = [browser, *flags, f"--window-size=1280,{height}", f"--user-data-dir={profile}",
                   f"--screenshot={out}", Path(tmp).as_uri()]
            subprocess.run(cmd, check=True, capture_output=True, timeout=180)
    finally:
        os.unlink(tmp)
    if not out.is_file():
        raise SystemExit(f"chromium wrote no screenshot for {section}")


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__)
        return 2
    page, out_dir = Path(argv[0]), Path(argv[1])
    browser = find_browser()
    if browser is None:
        print("SKIP: no Chromium found")
        return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for spec in argv[2:]:
        name, _, target = spec.partition("=")
        target, _, skip = target.partition(":")
        section, _, sel = target.partition(">")
        selector, _, nth = sel.partition("#")
        png = out_dir / f"{name}.png"
        shoot(browser, page, section, int(skip or 0), png, selector=selector, nth=int(nth or 0))
        print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
