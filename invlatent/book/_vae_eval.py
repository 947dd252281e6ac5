r"""The book's QM9 graph VAE: its settings per profile, load-or-train, and reading its training.

The molecule chapters and the appendix page on training all use one model recipe, so it lives
here once:

* :func:`book_vae_settings` -- the architecture and the training schedule at the active
  compute profile (this book's choices; the paper's are not known);
* :func:`load_book_vae` -- the shipped weights (cpu, gpu) or a model trained live and cached
  (smoke), with the metadata that says which;
* :func:`curve_flatness` -- this book's rule for "the learning curve has stopped rising": a
  straight line fitted to the held-out exact reconstruction over the last fifth of the epochs
  rises by less than ``tol`` over that fifth, at the end of the planned schedule;
* :func:`step_flops` -- the matmul work of one training step per molecule (forward and
  backward), counted by PyTorch's ``FlopCounterMode``, to compare decoders at equal compute.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

__all__ = ["book_vae_settings", "load_book_vae", "curve_flatness", "step_flops"]

#: Architecture tag stored in the fingerprint of a live-trained model's cache file.
BOOK_ARCH = "graph_vae-v5"


def book_vae_settings() -> tuple[dict, dict]:
    """``(model_cfg, train_cfg)`` of the book's graph VAE at the active profile.

    ``model_cfg`` holds :class:`~invlatent.models.graph_vae.GraphVAE` arguments except
    ``latent_channels``; ``train_cfg`` holds
    :func:`~invlatent.models.graph_vae.train_graph_vae` arguments. The smoke profile trains
    the one-shot ``"sort-transformer"`` decoder live (an autoregressive decoder can model
    molecules without reading the codes, and after seconds of training it barely does); cpu
    and gpu load the shipped autoregressive weights.

    Example
    -------
    >>> model_cfg, train_cfg = book_vae_settings()
    >>> sorted(model_cfg), train_cfg["beta"]
    (['decoder', 'decoder_depth', 'depth', 'hidden'], 0.02)
    """
    from ..profiles import by_profile

    model_cfg = dict(
        hidden=by_profile(smoke=32, cpu=64, gpu=64),
        depth=2,
        decoder_depth=3,
        decoder=by_profile(
            smoke="sort-transformer", cpu="sort-autoregressive", gpu="sort-autoregressive"
        ),
    )
    train_cfg = dict(
        epochs=by_profile(smoke=5, cpu=12, gpu=60),
        batch_size=by_profile(smoke=64, cpu=256, gpu=256),
        lr=2e-3,
        beta=0.02,
        warmup_epochs=by_profile(smoke=1, cpu=2, gpu=5),
        schedule="cosine",
        seed=0,
        # a safety net only: the epoch count is fixed, so a run is reproducible on CPU
        time_limit=by_profile(smoke=90, cpu=470, gpu=3000),
    )
    return model_cfg, train_cfg


def load_book_vae(c: int, train_data: Mapping[str, torch.Tensor], *, decoder: str | None = None,
                  suffix: str = "", ship: bool = True, device: torch.device | str | None = None,
                  **overrides) -> tuple[torch.nn.Module, dict[str, str]]:
    """The book's graph VAE with ``c`` latent channels per node, in eval mode on ``device``.

    At the cpu and gpu profiles (and ``ship=True``) it loads the shipped weights
    ``graph_vae_c{c}{suffix}.safetensors`` (checked against their SHA-256); otherwise it trains
    on ``train_data`` (dense ``{"x": (M, 9, 4), "adj": (M, 9, 9, 3), "mask": (M, 9)}``) with
    :func:`book_vae_settings`, updated by ``overrides`` (e.g. ``epochs=2``), and caches the
    result (:func:`invlatent.io.train_or_load`), so a second chapter loads what the first
    trained. The model is built after ``torch.manual_seed(0)``.

    Returns ``(model, metadata)``; ``metadata["source"]`` is ``"shipped"``, ``"cache"`` or
    ``"trained"``, and ``metadata["epochs"]`` the epochs trained.
    """
    from ..io import WEIGHTS_DIR, train_or_load
    from ..models.graph_vae import GraphVAE, train_graph_vae
    from ..profiles import get_profile

    if isinstance(c, bool) or not isinstance(c, int) or c < 1:
        raise ValueError(f"c must be a positive int, got {c!r}")
    if not isinstance(train_data, Mapping) or not all(k in train_data for k in ("x", "adj", "mask")):
        raise TypeError("train_data must be a mapping with tensors 'x', 'adj', 'mask'")
    model_cfg, train_cfg = book_vae_settings()
    if decoder is not None:
        model_cfg["decoder"] = decoder
    train_cfg.update(overrides)
    name = f"graph_vae_c{c}{suffix}"
    torch.manual_seed(0)
    model = GraphVAE(latent_channels=c, **model_cfg)
    shipped = WEIGHTS_DIR / f"{name}.safetensors" if ship and get_profile() != "smoke" else None
    n_train = int(train_data["x"].shape[0])
    config = {"arch": BOOK_ARCH, "c": c, **model_cfg, **train_cfg, "n_train": n_train}

    def fit(m):
        return train_graph_vae(m, train_data, device=device, **train_cfg)

    model, meta = train_or_load(name, model, fit, shipped=shipped, config=config)
    meta.setdefault("epochs", meta.get("epoch"))  # shipped weights record "epoch"
    return model.to(device or "cpu").eval(), meta


def curve_flatness(evals: Sequence[Mapping[str, float]], planned: int, tol: float = 0.02) -> dict:
    """Read a learning curve by this book's flatness rule (module docstring).

    ``evals``: the run's held-out evaluations in epoch order, each with ``"epoch"``,
    ``"exact"`` and ``"prior_validity"``. Returns ``last`` (last epoch), ``planned``,
    ``tail_from`` (first epoch of the last fifth), ``rise`` (of the fitted line over the tail),
    ``flat`` (``rise < tol`` and ``last == planned``) and the range ``pv_lo``, ``pv_hi`` of
    prior validity over the tail.

    Example
    -------
    >>> ev = [{"epoch": e, "exact": 0.5 + 0.001 * e, "prior_validity": 0.6} for e in range(1, 11)]
    >>> f = curve_flatness(ev, planned=10)
    >>> f["tail_from"], round(f["rise"], 4), f["flat"]
    (8, 0.002, True)
    """
    if len(evals) < 2:
        raise ValueError(f"evals must hold at least two evaluations, got {len(evals)}")
    ep = np.array([e["epoch"] for e in evals], dtype=float)
    ex = np.array([e["exact"] for e in evals], dtype=float)
    tail = ep >= 0.8 * ep[-1]
    if tail.sum() < 2:  # one point cannot carry a line: take the last two
        tail[-2:] = True
    rise = float(np.polyfit(ep[tail], ex[tail], 1)[0] * (ep[-1] - ep[tail][0]))
    pv = [e["prior_validity"] for e, t in zip(evals, tail) if t]
    return dict(last=int(ep[-1]), planned=int(planned), tail_from=int(ep[tail][0]), rise=rise,
                flat=bool(rise < tol and int(ep[-1]) == int(planned)), pv_lo=min(pv), pv_hi=max(pv))


def step_flops(model: torch.nn.Module, data: Mapping[str, torch.Tensor], *, batch: int = 64,
               beta: float = 0.02) -> float:
    """Matmul FLOPs of one training step (forward and backward of ``model.loss``) per molecule,
    on the first ``batch`` molecules of ``data`` (dense ``x``, ``adj``, ``mask``).

    Example
    -------
    >>> from invlatent.models.graph_vae import GraphVAE
    >>> d = {"x": torch.zeros(4, 9, 4), "adj": torch.zeros(4, 9, 9, 3),
    ...      "mask": torch.zeros(4, 9, dtype=torch.bool)}
    >>> d["x"][:, :2, 0] = 1; d["mask"][:, :2] = True
    >>> step_flops(GraphVAE(hidden=8, decoder="maron"), d, batch=4) > 0
    True
    """
    from torch.utils.flop_counter import FlopCounterMode

    b = {k: v[:batch] for k, v in data.items() if k in ("x", "adj", "mask")}
    with FlopCounterMode(display=False) as counter:
        model.loss(b["x"], b["adj"], b["mask"], beta=beta)["loss"].backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / b["x"].shape[0]
