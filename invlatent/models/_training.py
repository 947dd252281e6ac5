r"""One training loop for every model of the package: seeded, resumable, one schedule, one result format.

:func:`fit` runs Adam over ``epochs`` epochs of mini-batches that the caller supplies, with the
learning rate (and, for ``"onecycle"``, Adam's :math:`\beta_1`) computed from the global step
number by :func:`lr_at` -- so a resumed run follows exactly the schedule of an uninterrupted
one. Loss terms are accumulated as detached tensors and moved to the host once per epoch (no
per-step device sync).

Schedules (``k`` = step, ``S`` = total steps, :math:`\eta` = ``lr``):

=====================  ==========================================================================
``"constant"``         :math:`\eta`
``"cosine"``           :math:`\eta\,(0.01 + 0.99\cdot\tfrac12(1+\cos(\pi \min(1, k/(S-1)))))` (to :math:`\eta/100`)
``"warmup_cosine"``    :math:`\eta \min(1, (k+1)/w)\cdot\tfrac12(1+\cos(\pi \min(k,S)/S))`, ``w = warmup_steps``
``"onecycle"``         PyTorch's ``OneCycleLR`` defaults (cosine up from :math:`\eta/25` to :math:`\eta`
                       in 30 % of the steps, then down to :math:`\eta/(25\cdot 10^4)`; :math:`\beta_1`
                       cycled 0.95 → 0.85 → 0.95), reproduced step for step
=====================  ==========================================================================

Result format
-------------
:func:`fit` returns one dict (also the checkpoint metadata of :func:`invlatent.io.train_or_load`):

``epochs``
    epochs done (fewer than asked when ``time_limit`` stopped the run; then ``stopped_early``
    is ``True`` and a ``UserWarning`` says so);
``steps``, ``seconds``, ``seed``, ``schedule``, ``lr``
    what ran (``seconds``: this call);
``total_seconds``
    training time over this call and the calls it resumed (kept in the checkpoint);
``final_<term>``
    the last epoch's sample-weighted mean of every term the step function returned
    (``final_loss`` always; e.g. ``final_kl``, ``final_accuracy``), rounded to 5 digits;
``history``
    the per-epoch mean loss, comma-separated (a string, so it fits safetensors metadata).

The epoch mean of a term :math:`\ell` over batches :math:`b` of :math:`n_b` samples is
:math:`\sum_b \ell_b\, n_b / N` with :math:`N = \sum_b n_b`, accumulated on the device in batch order.

Checkpoint metadata: ``epoch``, ``history`` (5 digits), what ``on_epoch_end`` returned,
``total_seconds`` and ``metadata``; the optimizer state as :func:`invlatent.io.save_checkpoint` stores it.

Example
-------
>>> import torch
>>> model = torch.nn.Linear(2, 1)
>>> x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)); y = x.sum(1, keepdim=True)
>>> def batches(epoch, gen):
...     order = torch.randperm(64, generator=gen)
...     return [(order[i:i + 16], 16) for i in range(0, 64, 16)]
>>> def step(idx, k):
...     return {"loss": (model(x[idx]) - y[idx]).square().mean()}
>>> out = fit(model, batches, step, epochs=30, lr=0.05, schedule="cosine", seed=0)
>>> out["epochs"], out["final_loss"] < 0.01, sorted(out)[:3]
(30, True, ['epochs', 'final_loss', 'history'])
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from .._validation import check_positive_int, describe

__all__ = ["fit", "lr_at", "SCHEDULES"]

SCHEDULES = ("constant", "cosine", "warmup_cosine", "onecycle")


def _anneal_cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def lr_at(step: int, total_steps: int, lr: float, schedule: str = "constant", *,
          warmup_steps: int = 1) -> tuple[float, float | None]:
    """``(learning rate, Adam beta1 or None)`` at global step ``step`` of ``total_steps`` (see the module table).

    Example
    -------
    >>> lr_at(0, 100, 1.0, "cosine")[0], round(lr_at(99, 100, 1.0, "cosine")[0], 6)
    (1.0, 0.01)
    """
    if schedule == "constant":
        return lr, None
    if schedule == "cosine":
        frac = step / max(1, total_steps - 1)
        return lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))), None
    if schedule == "warmup_cosine":
        return lr * (min(1.0, (step + 1) / warmup_steps)
                     * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))), None
    if schedule == "onecycle":  # torch.optim.lr_scheduler.OneCycleLR with its defaults, two phases
        initial = lr / 25.0
        phases = [(float(0.3 * total_steps) - 1, initial, lr, 0.95, 0.85),
                  (total_steps - 1, lr, initial / 1e4, 0.85, 0.95)]
        start = 0
        for i, (end, lr0, lr1, m0, m1) in enumerate(phases):
            if step <= end or i == len(phases) - 1:
                pct = (step - start) / (end - start)
                return _anneal_cos(lr0, lr1, pct), _anneal_cos(m0, m1, pct)
            start = end
    raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {describe(schedule)}")


def fit(
    model: nn.Module,
    batches: Callable[[int, torch.Generator], Iterable[tuple[object, int]]],
    step: Callable[[object, int], dict],
    *,
    epochs: int,
    lr: float,
    schedule: str = "constant",
    warmup_steps: int = 1,
    seed: int = 0,
    epoch_seed: Callable[[int], int] | None = None,
    manual_seed: bool = True,
    clip_grad_norm: float | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    time_limit: float | None = None,
    desc: str = "train",
    show: Sequence[str] = ("loss",),
    metadata: Mapping[str, object] | None = None,
    on_resume: Callable[[dict[str, str]], None] | None = None,
    on_epoch_end: Callable[[int, dict[str, float], Callable[[], float]], Mapping[str, object] | None] | None = None,
) -> dict:
    r"""Train ``model`` with Adam; return the result dict described in the module docstring.

    Parameters
    ----------
    model : nn.Module
        Put in train mode at the start of every epoch and in eval mode at the end.
    batches : callable ``(epoch, generator) -> iterable of (batch, n)``
        The mini-batches of one epoch (``n`` samples each); ``generator`` is this epoch's
        seeded CPU generator (draw shuffles and augmentations from it). All of an epoch's
        batches are drawn before its first step; the step function may draw from the same
        generator afterwards (pass it inside ``batch``).
    step : callable ``(batch, global_step) -> dict of scalar tensors``
        Must contain ``"loss"`` (back-propagated); every other entry is reported too.
        ``global_step`` counts from 0 over the whole run (resumed runs included), e.g. for a
        warm-up of a loss weight.
    epochs, lr, schedule, warmup_steps
        The schedule, see :func:`lr_at`. The number of steps per epoch is counted from the first
        epoch's batches.
    seed : int
        ``torch.manual_seed(seed)`` once (unless ``manual_seed=False``), and the generator of
        every epoch.
    epoch_seed : callable ``epoch -> int``, optional
        Seed of epoch ``e``'s generator (fresh per epoch: a resumed run draws what an
        uninterrupted run draws). Default: one generator seeded with ``seed`` for the whole run
        (then a resumed run is not bit-identical).
    manual_seed : bool
        ``False`` leaves PyTorch's global generators alone (for callers that draw everything
        from the epoch generators, or that seeded before building the model).
    clip_grad_norm : float, optional
        Clip the gradient norm to this before every step.
    checkpoint : path, optional
        Model and optimizer saved there after every epoch (:func:`invlatent.io.save_checkpoint`);
        with ``resume=True`` the run continues from the epoch stored in it.
    time_limit : float, optional
        Stop after the first epoch that ends later than this many seconds, with a warning.
    desc : str
        Progress-bar label.
    show : sequence of str
        Terms shown on the progress bar (those the step function returns).
    metadata : mapping, optional
        Extra entries saved with every checkpoint (e.g. the model configuration).
    on_resume : callable ``metadata -> None``, optional
        Called once with the checkpoint's metadata (``str -> str``) when a run resumes, e.g. to
        restore a log kept in it.
    on_epoch_end : callable ``(epochs_done, terms, clock) -> mapping or None``, optional
        Called after every epoch (model still in train mode, before the checkpoint is written)
        with the number of epochs done, the epoch's mean terms and ``clock()``, the training
        seconds so far over resumed calls. What it returns is saved in this epoch's checkpoint
        metadata (e.g. held-out scores).
    """
    from ..io import load_checkpoint, save_checkpoint
    from ..utils import progress, seeded_generator

    check_positive_int(epochs, "epochs")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {describe(schedule)}")
    if manual_seed:
        torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    first, history, seconds_before = 0, [], 0.0
    if checkpoint is not None and resume and Path(checkpoint).is_file():
        meta = load_checkpoint(checkpoint, model, optimizer=opt, map_location=next(model.parameters()).device)
        first = int(meta.get("epoch", 0))
        history = [float(v) for v in meta.get("history", "").split(",") if v]
        seconds_before = float(meta.get("total_seconds", 0.0))
        if on_resume is not None:
            on_resume(meta)
    run_gen = seeded_generator(seed)
    plan = None
    t0 = time.perf_counter()

    def clock() -> float:
        return seconds_before + time.perf_counter() - t0

    done, last, stopped = first, {}, False
    bar = progress(range(first, epochs), desc=desc, unit="epoch")
    for epoch in bar:
        gen = run_gen if epoch_seed is None else seeded_generator(epoch_seed(epoch))
        epoch_batches = list(batches(epoch, gen))
        if plan is None:
            per_epoch = len(epoch_batches)
            plan = (per_epoch, epochs * per_epoch)
        per_epoch, total = plan
        n_epoch = sum(n for _, n in epoch_batches)
        model.train()
        sums: dict[str, torch.Tensor] = {}
        for j, (batch, n) in enumerate(epoch_batches):
            k = epoch * per_epoch + j
            rate, beta1 = lr_at(k, total, lr, schedule, warmup_steps=warmup_steps)
            for group in opt.param_groups:
                group["lr"] = rate
                if beta1 is not None:
                    group["betas"] = (beta1, *group["betas"][1:])
            terms = step(batch, k)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            opt.step()
            for key, v in terms.items():  # stays on the device: no sync per step
                v = v.detach() * (n / n_epoch)
                sums[key] = sums[key] + v if key in sums else v
        last = {key: float(v) for key, v in sums.items()}  # one host transfer per term and epoch
        bad = [key for key, v in last.items() if not math.isfinite(v)]
        if bad:  # checked once per epoch (no per-step sync); the last good checkpoint is kept
            raise FloatingPointError(f"{desc}: non-finite {', '.join(bad)} in epoch {epoch + 1} "
                                     f"(the checkpoint keeps epoch {epoch}); lower lr or check the data")
        history.append(last["loss"])
        done = epoch + 1
        if hasattr(bar, "set_postfix"):
            bar.set_postfix({key: f"{last[key]:.3f}" for key in show if key in last})
        extra = on_epoch_end(done, dict(last), clock) if on_epoch_end is not None else None
        stopped = time_limit is not None and time.perf_counter() - t0 > time_limit and done < epochs
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer=opt, metadata={
                "epoch": done, "history": ",".join(f"{h:.5f}" for h in history), **(extra or {}),
                "total_seconds": round(clock(), 2), **(metadata or {})})
        if stopped:
            warnings.warn(f"{desc}: time_limit={time_limit} s reached, stopped after {done} of {epochs} epochs",
                          UserWarning, stacklevel=2)
            break
    model.eval()
    seconds = time.perf_counter() - t0
    return {
        "epochs": done,
        "steps": done * (plan[0] if plan else 0),
        "seconds": round(seconds, 2),
        "total_seconds": round(seconds_before + seconds, 2),
        "seed": seed,
        "schedule": schedule,
        "lr": lr,
        "stopped_early": stopped,
        "history": ",".join(f"{h:.4f}" for h in history),
        **{f"final_{key}": round(v, 5) for key, v in last.items()},
    }
