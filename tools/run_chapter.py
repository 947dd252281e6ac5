#!/usr/bin/env python
"""Execute one chapter with this Python: ``python tools/run_chapter.py book/part/chapter.md [--show]``.

The profile comes from ``INVLATENT_PROFILE`` (use ``smoke`` while writing a chapter).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chapters import run  # noqa: E402

if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--show"]
    if len(args) != 1:
        sys.exit(__doc__)
    run(Path(args[0]).resolve(), show="--show" in sys.argv)
