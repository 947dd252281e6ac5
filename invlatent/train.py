r"""Command line: train the book's models at any scale, resumably.

``python -m invlatent.train graph-vae --channels 1 --epochs 300 --checkpoint run.safetensors``
trains :class:`invlatent.models.graph_vae.GraphVAE` on the QM9 training split (seeded split
``qm9_split(seed=0)``), saves model and optimizer after every epoch, resumes from the
checkpoint when it exists, and every ``--eval-every`` epochs writes held-out scores into the
checkpoint's metadata: on the validation split, exact-graph reconstruction and bond accuracy
of the posterior means, and the argmax validity and uniqueness of prior samples.
``--export`` writes model-only weights (no optimizer state) with the same metadata, the form
shipped in :mod:`invlatent` as package data; ``python -m invlatent.train export CHECKPOINT OUT``
does the same for a checkpoint at any time, also while its run goes on. The decoder defaults
to ``sort-autoregressive``, the winner of the book's equal-compute comparison (``--decoder
sort-transformer``, ``maron`` and ``sort-mlp`` are the others); ``--mmd W`` adds the orbit MMD
penalty of
:meth:`GraphVAE.loss <invlatent.models.graph_vae.GraphVAE.loss>`.

Example
-------
>>> from invlatent.train import graph_vae_scores
>>> import torch
>>> from invlatent.models.graph_vae import GraphVAE
>>> from invlatent.data.qm9 import load_qm9
>>> _ = torch.manual_seed(0)
>>> data = load_qm9(limit=32).dense()
>>> scores = graph_vae_scores(GraphVAE(hidden=8, depth=1, decoder="sort-mlp", decoder_width=16),
...                           data, n_prior=16)
>>> sorted(scores)
['atom', 'bond', 'exact', 'prior_uniqueness', 'prior_validity']
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

import torch

__all__ = ["graph_vae_scores", "export_weights", "main"]


@torch.no_grad()
def graph_vae_scores(model, data: Mapping[str, torch.Tensor], *, n_prior: int = 2000, seed: int = 0,
                     batch_size: int = 4096) -> dict[str, float]:
    """Held-out scores of a graph VAE: ``exact``, ``atom``, ``bond`` (reconstruction of the
    posterior means of ``data``, :func:`~invlatent.models.graph_vae.graph_accuracy`) and
    ``prior_validity``, ``prior_uniqueness`` of ``n_prior`` argmax-decoded prior samples
    (:func:`~invlatent.chem.generation_metrics`, no valence repair)."""
    from .probes import generation_metrics, graphs_to_smiles
    from .models.graph_vae import decode_graphs, graph_accuracy
    from .utils import seeded_generator

    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    M = data["x"].shape[0]
    sums = {"exact": 0.0, "atom": 0.0, "bond": 0.0}
    n_atoms = n_pairs = 0
    for s in range(0, M, batch_size):
        x, adj, mask = (data[k][s : s + batch_size].to(dev) for k in ("x", "adj", "mask"))
        mu, _ = model.encode(x, adj, mask)
        target = (x.argmax(-1) * mask, torch.where(adj.sum(-1) > 0, adj.argmax(-1) + 1, 0), mask)
        acc = graph_accuracy(decode_graphs(model.decode(mu)), target)
        na = int(mask.sum())
        npairs = int((mask.sum(1) * (mask.sum(1) - 1) // 2).sum())
        sums["exact"] += acc["exact"] * x.shape[0]
        sums["atom"] += acc["atom"] * na
        sums["bond"] += acc["bond"] * npairs
        n_atoms += na
        n_pairs += npairs
    out = {"exact": sums["exact"] / M, "atom": sums["atom"] / max(n_atoms, 1),
           "bond": sums["bond"] / max(n_pairs, 1)}
    if n_prior > 0:
        n = data["x"].shape[1]
        smiles = graphs_to_smiles(*model.sample(n_prior, n=n, generator=seeded_generator(seed)))
        g = generation_metrics(smiles)
        out.update(prior_validity=g["validity"], prior_uniqueness=g["uniqueness"])
    model.train(was_training)
    return out


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def _graph_vae(args: argparse.Namespace) -> dict:
    from .data.qm9 import load_qm9, qm9_split
    from .io import load_checkpoint, save_checkpoint
    from .models.graph_vae import GraphVAE, train_graph_vae

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    qm9 = load_qm9()
    split = qm9_split(len(qm9), seed=0)
    train_idx = split["train"][: args.limit] if args.limit else split["train"]
    val_idx = split["val"][: args.eval_limit] if args.eval_limit else split["val"]
    train = qm9.subset(train_idx).dense()
    val = qm9.subset(val_idx).dense()
    torch.manual_seed(args.seed)
    model = GraphVAE(latent_channels=args.channels, hidden=args.hidden, depth=args.depth,
                     decoder_depth=args.decoder_depth, decoder=args.decoder, decoder_width=args.decoder_width)
    run = {"command": "python -m invlatent.train " + " ".join(sys.argv[1:] if args.argv is None else args.argv),
           "hardware": _hardware(device), "commit": _git_commit(), "n_train": len(train_idx),
           "n_eval": len(val_idx), "batch_size": args.batch_size, "lr": args.lr, "beta": args.beta,
           "mmd": args.mmd,
           "schedule": args.schedule, "planned_epochs": args.epochs}
    meta = train_graph_vae(
        model, train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, beta=args.beta,
        warmup_epochs=args.warmup_epochs, schedule=args.schedule, seed=args.seed, mmd=args.mmd,
        checkpoint=args.checkpoint, resume=True, time_limit=args.time_limit, device=device,
        eval_fn=lambda m: graph_vae_scores(m, val, n_prior=args.n_prior), eval_every=args.eval_every,
        extra_metadata=run)
    if args.export:
        save_checkpoint(args.export, model, metadata={**run, **{k: v for k, v in meta.items()}})
        load_checkpoint(args.export, GraphVAE.from_config(model.config))  # round-trip check
    evals = json.loads(meta["evals"])
    print(json.dumps({"epochs": meta["epochs"], "total_seconds": meta["total_seconds"],
                      "last_eval": evals[-1] if evals else None}))
    return meta


def export_weights(checkpoint: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Write the model-only weights of a (resumable) graph VAE training checkpoint to ``out``,
    with the checkpoint's metadata (training history, held-out evaluations, command, hardware)
    and without the optimizer state: the form shipped in ``invlatent/weights``. A run may still
    be writing ``checkpoint``: the file is replaced atomically after each epoch. Returns the
    metadata written."""
    from safetensors import safe_open

    from .io import load_checkpoint, save_checkpoint
    from .models.graph_vae import GraphVAE

    with safe_open(str(checkpoint), "pt") as f:
        meta = dict(f.metadata() or {})
    meta.pop("__optimizer__", None)
    model = GraphVAE.from_config(meta)
    load_checkpoint(checkpoint, model)
    save_checkpoint(out, model, metadata=meta)
    load_checkpoint(out, GraphVAE.from_config(meta))  # round trip
    return meta


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m invlatent.train") -> dict:
    """Entry point of ``python -m invlatent.train`` (and of ``invlatent train``); returns the run's metadata."""
    from .models.graph_vae import DECODERS

    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="model", required=True)
    g = sub.add_parser("graph-vae", help="the permutation-equivariant QM9 graph VAE")
    g.add_argument("--channels", type=int, default=1, help="latent channels per node (c)")
    g.add_argument("--decoder", default="sort-autoregressive", choices=DECODERS)
    g.add_argument("--hidden", type=int, default=64)
    g.add_argument("--depth", type=int, default=2)
    g.add_argument("--decoder-depth", type=int, default=3)
    g.add_argument("--decoder-width", type=int, default=512)
    g.add_argument("--epochs", type=int, required=True, help="planned epochs (the cosine schedule's length)")
    g.add_argument("--batch-size", type=int, default=256)
    g.add_argument("--lr", type=float, default=2e-3)
    g.add_argument("--beta", type=float, default=0.02)
    g.add_argument("--mmd", type=float, default=0.0,
                   help="weight of the orbit MMD between codes and prior draws (0: plain ELBO)")
    g.add_argument("--warmup-epochs", type=float, default=5.0)
    g.add_argument("--schedule", default="cosine", choices=("constant", "cosine"))
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--checkpoint", required=True, help="resumable checkpoint (model + optimizer)")
    g.add_argument("--export", help="write model-only weights here when done")
    g.add_argument("--eval-every", type=int, default=5)
    g.add_argument("--n-prior", type=int, default=2000, help="prior samples per evaluation")
    g.add_argument("--limit", type=int, default=0, help="train on the first N training molecules")
    g.add_argument("--eval-limit", type=int, default=0, help="evaluate on the first N validation molecules")
    g.add_argument("--time-limit", type=float, default=None, help="stop after the epoch that passes this (s)")
    g.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    g.add_argument("--device", default=None)
    e = sub.add_parser("export", help="model-only weights from a training checkpoint")
    e.add_argument("checkpoint")
    e.add_argument("out")
    args = p.parse_args(argv)
    if args.model == "export":
        meta = export_weights(args.checkpoint, args.out)
        print(f"wrote {args.out} (epoch {meta.get('epoch')})")
        return meta
    args.argv = None if argv is None else list(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return _graph_vae(args)


if __name__ == "__main__":
    main()
