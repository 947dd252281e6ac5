#!/usr/bin/env python
"""Execute one chapter with this Python:
``python tools/run_chapter.py [--show] [--simulated-cuda] book/part/chapter.md``.

The profile comes from ``INVLATENT_PROFILE`` (use ``smoke`` while writing a chapter).
``--simulated-cuda`` runs the chapter on :func:`invlatent.testing.simulated_cuda`, the CPU's
stand-in for a CUDA device that raises what CUDA raises for tensors left on the wrong device.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chapters import run  # noqa: E402

if __name__ == "__main__":
    flags = ("--show", "--simulated-cuda")
    args = [a for a in sys.argv[1:] if a not in flags]
    if len(args) != 1:
        sys.exit(__doc__)
    run(Path(args[0]).resolve(), show="--show" in sys.argv, simulated_cuda="--simulated-cuda" in sys.argv)
