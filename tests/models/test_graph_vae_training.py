"""``train_graph_vae`` runs on the one loop (``models._training.fit``) and replays the old loop exactly.

The old loop is kept below, verbatim, as the reference. Same ops in the same order on the same
machine and thread count, so parameters, optimizer state and logged losses are compared for
bit-equality (``torch.equal``), not with a tolerance; only wall-clock seconds may differ.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Callable, Mapping

import pytest
import torch
from safetensors import safe_open

from invlatent._validation import describe
from invlatent.data.qm9 import load_qm9
from invlatent.models.graph_vae import GraphVAE, train_graph_vae
from invlatent.utils import progress, seeded_generator

RUN_CHECKPOINT = Path(__file__).resolve().parents[2] / "runs" / "graph_vae_c1" / "checkpoint.safetensors"


def old_train_graph_vae(
    model: GraphVAE,
    data: Mapping[str, torch.Tensor],
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    beta: float = 0.1,
    warmup_epochs: float = 2.0,
    schedule: str = "constant",
    seed: int = 0,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    time_limit: float | None = None,
    device: torch.device | str | None = None,
    eval_fn: Callable[[GraphVAE], Mapping[str, float]] | None = None,
    eval_every: int = 0,
    extra_metadata: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """``train_graph_vae`` as it was before it ran on ``fit`` (commit ecaf914), verbatim but for imports."""
    import json
    import warnings

    from invlatent.io import load_checkpoint, save_checkpoint

    if not isinstance(model, GraphVAE):
        raise TypeError(f"model must be a GraphVAE, got {describe(model)}")
    if not isinstance(data, Mapping) or not all(isinstance(data.get(k), torch.Tensor) for k in ("x", "adj", "mask")):
        raise TypeError(f"data must be a mapping with tensors 'x', 'adj', 'mask', got {describe(data)}")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {describe(schedule)}")
    x, adj, mask = data["x"], data["adj"], data["mask"]
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start, seconds_before = 0, 0.0
    history: list[float] = []
    evals: list[dict] = []
    if checkpoint is not None and resume and Path(checkpoint).is_file():
        meta = load_checkpoint(checkpoint, model, optimizer=opt, map_location=device)
        start = int(meta.get("epoch", 0))
        history = [float(v) for v in meta.get("history", "").split(",") if v]
        evals = json.loads(meta.get("evals", "[]"))
        seconds_before = float(meta.get("total_seconds", 0.0))
    M = x.shape[0]
    steps_per_epoch = math.ceil(M / batch_size)
    warm_steps = max(1, int(warmup_epochs * steps_per_epoch))
    t0 = time.perf_counter()
    last: dict[str, float] = {}
    done = start

    def evaluate(epoch: int) -> None:
        model.eval()
        scores = {k: round(float(v), 5) for k, v in eval_fn(model).items()}
        evals.append({"epoch": epoch, "molecules_seen": epoch * M,
                      "seconds": round(seconds_before + time.perf_counter() - t0, 1), **scores})

    bar = progress(range(start, epochs), desc="GraphVAE", unit="epoch")
    for epoch in bar:
        gen = seeded_generator(seed * 100_003 + epoch)
        order = torch.randperm(M, generator=gen)
        model.train()
        tot: dict[str, torch.Tensor] = {}
        for k in range(steps_per_epoch):
            idx = order[k * batch_size : (k + 1) * batch_size]
            step = epoch * steps_per_epoch + k
            b = beta * min(1.0, step / warm_steps)
            if schedule == "cosine":
                frac = step / max(1, epochs * steps_per_epoch - 1)
                for group in opt.param_groups:
                    group["lr"] = lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac))))
            out = model.loss(x[idx].to(device), adj[idx].to(device), mask[idx].to(device), beta=b,
                             generator=gen if device.type == "cpu" else None)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            for key, v in out.items():  # stays on the device: no sync per step
                tot[key] = tot.get(key, 0.0) + v.detach() * (len(idx) / M)
        last = {key: float(v) for key, v in tot.items()}
        history.append(last["loss"])
        done = epoch + 1
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{last['loss']:.3f}", kl=f"{last['kl']:.2f}")
        if eval_fn is not None and eval_every > 0 and (done % eval_every == 0 or done == epochs):
            evaluate(done)
        stop = time_limit is not None and time.perf_counter() - t0 > time_limit and done < epochs
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer=opt, metadata={
                "epoch": done, "history": ",".join(f"{h:.5f}" for h in history),
                "evals": json.dumps(evals),
                "total_seconds": round(seconds_before + time.perf_counter() - t0, 1),
                **(extra_metadata or {}), **model.config})
        if stop:
            warnings.warn(f"train_graph_vae: time_limit={time_limit} s reached after epoch {done} of "
                          f"{epochs}; the model is trained for fewer epochs than asked", stacklevel=2)
            break
    model.eval()
    seconds = time.perf_counter() - t0
    return {"epochs": done, "seconds": round(seconds, 2), "total_seconds": round(seconds_before + seconds, 1),
            "history": ",".join(f"{h:.4f}" for h in history), "evals": json.dumps(evals),
            **{f"final_{k}": round(v, 5) for k, v in last.items()}, **model.config}


# --------------------------------------------------------------------------------------------------


def _scores(model):
    """A cheap deterministic held-out score (the loop only logs it)."""
    with torch.no_grad():
        mu, _ = model.encode(DATA["x"][:16], DATA["adj"][:16], DATA["mask"][:16])
    return {"mu_norm": mu.norm().item(), "mu_mean": mu.mean().item()}


DATA = load_qm9(limit=64).dense()
# 64 molecules in batches of 24: 3 steps per epoch, the last one short (weights 24/64, 24/64, 16/64)
KW = dict(epochs=3, batch_size=24, lr=5e-3, beta=0.1, warmup_epochs=1.5, schedule="cosine", seed=2,
          eval_fn=_scores, eval_every=2, extra_metadata={"run": "test"})
DECODERS = ("maron", "sort-transformer")


def _model(decoder: str) -> GraphVAE:
    torch.manual_seed(0)
    return GraphVAE(hidden=8, depth=1, decoder_depth=1, decoder=decoder)


def _read(path):
    with safe_open(str(path), "pt") as f:
        return dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}


def _without_seconds(evals: str) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "seconds"} for e in json.loads(evals)]


def _assert_same_run(result, model, path, ref):
    """``result``/``model``/checkpoint ``path`` equal the reference run ``ref`` bit for bit (but seconds)."""
    ref_result, ref_state, ref_path = ref
    assert list(result) == list(ref_result)  # same keys, same order
    for key, v in ref_result.items():
        if key == "evals":
            assert _without_seconds(result[key]) == _without_seconds(v)
        elif key not in ("seconds", "total_seconds"):
            assert result[key] == v, key  # losses: the same float ops in the same order
    for key, v in ref_state.items():
        assert torch.equal(model.state_dict()[key], v), key
    meta, tensors = _read(path)
    ref_meta, ref_tensors = _read(ref_path)
    assert list(tensors) == list(ref_tensors) and all(torch.equal(tensors[k], ref_tensors[k]) for k in tensors)
    assert sorted(meta) == sorted(ref_meta)
    for key, v in ref_meta.items():
        if key == "evals":
            assert _without_seconds(meta[key]) == _without_seconds(v)
        elif key == "total_seconds":
            assert float(meta[key]) >= 0.0
        else:
            assert meta[key] == v, key  # incl. "__optimizer__": the same optimizer state format


@pytest.fixture(scope="module", params=DECODERS)
def reference(request, tmp_path_factory):
    """The old loop, uninterrupted, with a checkpoint."""
    path = tmp_path_factory.mktemp("ref") / "old.safetensors"
    model = _model(request.param)
    result = old_train_graph_vae(model, DATA, checkpoint=path, **KW)
    return request.param, (result, {k: v.clone() for k, v in model.state_dict().items()}, path)


def test_uninterrupted_run_equals_the_old_loop(reference, tmp_path):
    decoder, ref = reference
    model = _model(decoder)
    rng = torch.get_rng_state()
    result = train_graph_vae(model, DATA, checkpoint=tmp_path / "new.safetensors", **KW)
    assert torch.equal(torch.get_rng_state(), rng)  # global generator untouched, as before
    _assert_same_run(result, model, tmp_path / "new.safetensors", ref)
    assert [e["epoch"] for e in json.loads(result["evals"])] == [2, 3]
    assert json.loads(result["evals"])[-1]["molecules_seen"] == 3 * 64


def test_interrupted_and_resumed_run_equals_the_old_uninterrupted_loop(reference, tmp_path):
    decoder, ref = reference
    path = tmp_path / "new.safetensors"
    model = _model(decoder)
    with pytest.warns(UserWarning, match="time_limit"):
        first = train_graph_vae(model, DATA, checkpoint=path, **{**KW, "time_limit": 0.0})
    assert first["epochs"] == 1
    model = _model(decoder)  # a fresh process: everything comes from the checkpoint
    result = train_graph_vae(model, DATA, checkpoint=path, **KW)
    _assert_same_run(result, model, path, ref)
    assert result["total_seconds"] >= first["total_seconds"]


def test_checkpoints_of_the_old_loop_resume_in_the_new_one_and_back(reference, tmp_path):
    decoder, ref = reference
    # old (epoch 1, interrupted) -> new (to the end)
    a = tmp_path / "a.safetensors"
    with pytest.warns(UserWarning, match="time_limit"):
        old_train_graph_vae(_model(decoder), DATA, checkpoint=a, **{**KW, "time_limit": 0.0})
    model = _model(decoder)
    _assert_same_run(train_graph_vae(model, DATA, checkpoint=a, **KW), model, a, ref)
    # old (epoch 1) -> new (epoch 2, interrupted) -> old (to the end)
    b = tmp_path / "b.safetensors"
    with pytest.warns(UserWarning, match="time_limit"):
        old_train_graph_vae(_model(decoder), DATA, checkpoint=b, **{**KW, "time_limit": 0.0})
    with pytest.warns(UserWarning, match="time_limit"):
        assert train_graph_vae(_model(decoder), DATA, checkpoint=b, **{**KW, "time_limit": 0.0})["epochs"] == 2
    model = _model(decoder)
    _assert_same_run(old_train_graph_vae(model, DATA, checkpoint=b, **KW), model, b, ref)


@pytest.mark.skipif(not RUN_CHECKPOINT.is_file(), reason="no long-run checkpoint in this checkout")
def test_the_long_run_checkpoint_resumes(tmp_path):
    """``runs/graph_vae_c1``'s checkpoint (written by the old loop) loads and continues at its epoch.

    On 64 molecules instead of the run's training split the numbers mean nothing; what is checked
    is that the model, the optimizer state and the logs are taken over, and that the new loop
    continues exactly as the old one would.
    """
    meta, tensors = _read(RUN_CHECKPOINT)
    E = int(meta["epoch"])
    kw = dict(batch_size=int(meta["batch_size"]), lr=float(meta["lr"]), beta=float(meta["beta"]),
              warmup_epochs=5.0, schedule=meta["schedule"], seed=0)
    # resumed at its last epoch: nothing to train, the logs come back unchanged
    path = tmp_path / "same.safetensors"
    shutil.copy(RUN_CHECKPOINT, path)
    out = train_graph_vae(GraphVAE.from_config(meta), DATA, epochs=E, checkpoint=path, **kw)
    assert out["epochs"] == E and out["evals"] == meta["evals"]
    assert out["history"] == ",".join(f"{float(h):.4f}" for h in meta["history"].split(","))
    assert out["total_seconds"] >= float(meta["total_seconds"])
    # one more epoch (one step of 64 molecules), new loop vs old loop from copies of the checkpoint
    logs = ("epoch", "history", "evals", "total_seconds", "__optimizer__")
    run_info = {k: v for k, v in meta.items() if k not in logs}
    runs = {}
    for name, train in (("new", train_graph_vae), ("old", old_train_graph_vae)):
        path = tmp_path / f"{name}.safetensors"
        shutil.copy(RUN_CHECKPOINT, path)
        model = GraphVAE.from_config(meta)
        runs[name] = (train(model, DATA, epochs=E + 1, checkpoint=path, eval_fn=_scores, eval_every=2,
                            extra_metadata=run_info, **kw),
                      model, path)
    old_result, old_model, old_path = runs["old"]
    _assert_same_run(*runs["new"], (old_result, old_model.state_dict(), old_path))
    new_meta, new_tensors = _read(runs["new"][2])
    assert int(new_meta["epoch"]) == E + 1 and new_meta["history"].startswith(meta["history"] + ",")
    assert _without_seconds(new_meta["evals"])[:-1] == _without_seconds(meta["evals"])
    assert json.loads(new_meta["evals"])[-1]["epoch"] == E + 1
    assert set(new_meta) == set(meta) and set(new_tensors) == set(tensors)
    # the optimizer state was loaded: Adam's step count went on from the run's, by one step
    steps = [k for k in tensors if k.startswith("optim.") and k.endswith(".step")]
    assert steps and all(new_tensors[k].item() == tensors[k].item() + 1 for k in steps)
    group = json.loads(new_meta["__optimizer__"])["param_groups"][0]
    assert group["lr"] == kw["lr"] * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * 1.0)))  # last step: lr / 100
