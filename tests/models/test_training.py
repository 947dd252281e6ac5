"""The one training loop: schedules from the step number, resumable, one result format."""

import pytest
import torch

from invlatent.models._training import fit, lr_at


def test_onecycle_matches_torch_step_for_step():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=3e-3)
    S = 37
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=S)
    for k in range(S):
        lr, beta1 = lr_at(k, S, 3e-3, "onecycle")
        assert lr == opt.param_groups[0]["lr"] and beta1 == opt.param_groups[0]["betas"][0]
        opt.step()
        sched.step()


def test_warmup_cosine_matches_lambda_lr():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1e-2)
    S, w = 50, 3
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / w) * 0.5 * (1 + __import__("math").cos(__import__("math").pi * min(k, S) / S)))
    for k in range(S):
        assert lr_at(k, S, 1e-2, "warmup_cosine", warmup_steps=w)[0] == opt.param_groups[0]["lr"]
        opt.step()
        sched.step()


def _problem(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x = torch.randn(96, 3, generator=torch.Generator().manual_seed(1))
    y = x.pow(2).sum(1, keepdim=True)

    def batches(epoch, gen):
        order = torch.randperm(96, generator=gen)
        return [(order[i:i + 32], 32) for i in range(0, 96, 32)]

    def step(idx, k):
        err = model(x[idx]) - y[idx]
        return {"loss": err.square().mean(), "mae": err.abs().mean()}

    return model, batches, step


def test_resume_equals_uninterrupted_run(tmp_path):
    kw = dict(epochs=6, lr=1e-2, schedule="cosine", seed=3, epoch_seed=lambda e: 1000 + e)
    m1, b1, s1 = _problem()
    full = fit(m1, b1, s1, **kw)
    m2, b2, s2 = _problem()
    ck = tmp_path / "run.safetensors"
    with pytest.warns(UserWarning, match="time_limit"):  # an interrupted run: stops after epoch 1
        fit(m2, b2, s2, **kw, checkpoint=ck, time_limit=0.0)
    m3, b3, s3 = _problem()
    rest = fit(m3, b3, s3, **kw, checkpoint=ck)
    assert rest["epochs"] == 6 and len(rest["history"].split(",")) == 6
    for a, b in zip(m1.state_dict().values(), m3.state_dict().values()):
        # exact: the same kernels on the same inputs in the same order (a resumed run replays it)
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert set(full) >= {"epochs", "steps", "seconds", "seed", "schedule", "lr", "history", "final_loss", "final_mae"}
    assert full["steps"] == 18 and full["final_loss"] < float(full["history"].split(",")[0])


def test_time_limit_stops_with_a_warning():
    m, b, s = _problem()
    with pytest.warns(UserWarning, match="time_limit"):
        out = fit(m, b, s, epochs=5, lr=1e-2, time_limit=0.0)
    assert out["epochs"] == 1 and out["stopped_early"] is True


def test_bad_schedule_is_a_value_error():
    m, b, s = _problem()
    with pytest.raises(ValueError, match="schedule"):
        fit(m, b, s, epochs=1, lr=1e-2, schedule="linear")


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    # The loss turns NaN in the second epoch; fit must raise instead of saving NaN weights.
    model = torch.nn.Linear(2, 1)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))

    def batches(epoch, gen):
        return [(epoch, 32)]

    def step(epoch, k):
        loss = model(x).square().mean()
        return {"loss": loss * float("nan") if epoch >= 1 else loss}

    ck = tmp_path / "ck.safetensors"
    with pytest.raises(FloatingPointError, match="non-finite loss in epoch 2"):
        fit(model, batches, step, epochs=3, lr=0.01, checkpoint=ck)
    from safetensors import safe_open

    with safe_open(str(ck), "pt") as f:
        assert f.metadata()["epoch"] == "1"
        assert torch.isfinite(f.get_tensor("model.weight")).all()
