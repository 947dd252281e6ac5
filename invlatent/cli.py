"""The ``invlatent`` command: training, export, the shipped weights' check and the profile table.

::

    invlatent train graph-vae --epochs 300 --checkpoint run.safetensors   # = python -m invlatent.train
    invlatent export run.safetensors weights.safetensors                  # model-only weights
    invlatent verify-weights [FOLDER]                                     # checksums of shipped weights
    invlatent profiles [CHAPTER.md ...]                                   # what each profile runs

Every subcommand has ``--help``. ``python -m invlatent`` is the same command.

Example
-------
>>> import contextlib, io
>>> out = io.StringIO()
>>> with contextlib.redirect_stdout(out):
...     status = main(["verify-weights"])
>>> status, out.getvalue().splitlines()[-1].startswith("ok ")
(0, True)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main"]

_COMMANDS = {
    "train": "train a model of the book, resumably (python -m invlatent.train)",
    "export": "write model-only weights from a training checkpoint",
    "verify-weights": "check the shipped weights against their recorded SHA-256 sums",
    "profiles": "print the compute profiles and what each chapter runs at each",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="invlatent", description="invlatent: training, export, the shipped "
                                "weights' check and the profile table (each COMMAND has --help)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # `train` is parsed by invlatent.train itself (its own --help lists the models and options)
    sub.add_parser("train", help=_COMMANDS["train"], add_help=False)
    e = sub.add_parser("export", help=_COMMANDS["export"], description=_COMMANDS["export"])
    e.add_argument("checkpoint", help="training checkpoint (model + optimizer, safetensors)")
    e.add_argument("out", help="where to write the model-only weights")
    v = sub.add_parser("verify-weights", help=_COMMANDS["verify-weights"], description=_COMMANDS["verify-weights"])
    v.add_argument("folder", nargs="?", default=None, help="folder of weights (default: the installed package's)")
    r = sub.add_parser("profiles", help=_COMMANDS["profiles"], description=_COMMANDS["profiles"])
    r.add_argument("chapters", nargs="*", type=Path,
                   help="MyST chapters to read by_profile calls from (default: book/**/*.md here, if any)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``invlatent`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        from .train import main as train_main

        train_main(argv[1:], prog="invlatent train")
        return 0
    args = _parser().parse_args(argv)
    if args.command == "export":
        from .train import export_weights

        meta = export_weights(args.checkpoint, args.out)
        print(f"wrote {args.out} (epoch {meta.get('epoch')})")
    elif args.command == "verify-weights":
        from .io import WEIGHTS_DIR, verify_shipped_weights

        folder = WEIGHTS_DIR if args.folder is None else Path(args.folder)
        sums = verify_shipped_weights(folder)
        for name, digest in sums.items():
            print(f"{digest}  {name}")
        print(f"ok {len(sums)} shipped weight files match SHA256SUMS in {folder}")
    elif args.command == "profiles":
        _profiles(args.chapters)
    return 0


def _profiles(chapters: list[Path]) -> None:
    from .profiles import PROFILES, get_profile, profile_table_markdown
    from . import profiles

    doc = profiles.__doc__ or ""
    for line in doc.splitlines():
        if line.startswith("* ``") and any(f"``{name}``" in line for name in PROFILES):
            print(line[2:].replace("``", ""))
    print(f"current profile: {get_profile()} (INVLATENT_PROFILE)")
    if not chapters and Path("book").is_dir():
        chapters = sorted(p for p in Path("book").rglob("*.md") if "by_profile(" in p.read_text())
    if chapters:
        print()
        print(profile_table_markdown(chapters))
