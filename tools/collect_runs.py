"""Collect the metadata of training checkpoints into a record under ``invlatent/records``.

    python tools/collect_runs.py OUT.json --what "what was run and why" CKPT [CKPT ...]

Each checkpoint written by ``python -m invlatent.train graph-vae`` carries its command,
commit, hardware, settings, per-epoch loss history and held-out evaluations in its
safetensors metadata; this copies them, one run per checkpoint, into a JSON record that
a chapter can read with ``importlib.resources`` (see ``invlatent/records/README.md``).
The parameter count is that of the model tensors (not the optimizer state).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open

NUMBERS = ("beta", "mmd", "lr", "latent_channels", "hidden", "depth", "decoder_depth", "batch_size",
           "n_train", "n_eval", "planned_epochs")


def run_record(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
        parameters = sum(_numel(fh.get_slice(k).get_shape()) for k in fh.keys() if k.startswith("model."))
    rec = {"decoder": meta["decoder"], "parameters": parameters, "epochs": int(meta["epoch"]),
           "seconds": float(meta["total_seconds"])}
    for key in NUMBERS:
        if key in meta:
            rec[key] = json.loads(meta[key])
    rec.update(command=meta["command"], hardware=meta["hardware"], commit=meta["commit"],
               history=[float(v) for v in meta["history"].split(",")] if meta.get("history") else [],
               evals=json.loads(meta.get("evals", "[]")))
    return rec


def _numel(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("checkpoints", type=Path, nargs="+")
    p.add_argument("--what", required=True, help="one paragraph: what was run, on what, and how scored")
    args = p.parse_args()
    record = {"what": args.what, "runs": [run_record(c) for c in args.checkpoints]}
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}: {len(record['runs'])} runs")


if __name__ == "__main__":
    main()
