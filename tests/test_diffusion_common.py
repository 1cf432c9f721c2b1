"""The shared DDPM pieces against closed forms; the training loop's checkpoint/resume."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sinsemi.errors import InputError
from sinsemi.generators.base import Runtime
from sinsemi.generators.common.diffusion import (Schedule, TrainSpec, ancestral_step, cosine_betas, ema_model,
                                                 linear_betas, train_loop)


def test_cosine_alphas_cumprod_closed_form():
    T, s = 100, 0.008
    sch = Schedule.make("cosine", T)
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    want = torch.tensor([f(t) / f(0) for t in range(1, T + 1)], dtype=torch.float64)
    # the last beta is clipped at 0.999 (abar_T = 0 otherwise), so compare t < T exactly
    torch.testing.assert_close(sch.alphas_cumprod[:-1], want[:-1], rtol=1e-10, atol=1e-12)
    assert cosine_betas(T).max() <= 0.999 and (cosine_betas(T) > 0).all()
    assert torch.all(sch.alphas_cumprod[1:] < sch.alphas_cumprod[:-1])


def test_linear_betas_endpoints_and_rescaling():
    b = linear_betas(1000)
    assert math.isclose(b[0].item(), 1e-4) and math.isclose(b[-1].item(), 0.02)
    b100 = linear_betas(100)  # rescaled by 1000/T (improved-DDPM), so abar_T stays ~0
    assert math.isclose(b100[-1].item(), 0.2)
    assert Schedule.make("linear", 1000).alphas_cumprod[-1] < 1e-4
    with pytest.raises(InputError):
        Schedule.make("quadratic", 10)


def test_q_sample_moments():
    sch = Schedule.make("cosine", 50)
    g = torch.Generator().manual_seed(0)
    for t in (0, 10, 30, 49):
        x0 = torch.full((20000, 1, 1, 1), 1.5)
        xt = sch.q_sample(x0, torch.full((20000,), t), torch.randn(x0.shape, generator=g))
        ac = sch.alphas_cumprod[t].item()
        assert abs(xt.mean().item() - math.sqrt(ac) * 1.5) < 0.03
        assert abs(xt.var().item() - (1 - ac)) < 0.03 + 0.03 * (1 - ac)


def test_x0_from_eps_inverts_q_sample():
    sch = Schedule.make("linear", 1000)
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(4, 1, 5, 5, generator=g), torch.randn(4, 1, 5, 5, generator=g)
    t = torch.tensor([0, 100, 500, 900])
    xt = sch.q_sample(x0, t, eps)
    torch.testing.assert_close(sch.x0_from_eps(xt, t, eps), x0, rtol=1e-4, atol=1e-4)


def test_posterior_matches_gaussian_product():
    """q(x_{t-1} | x_t, x_0) from Bayes: N(sqrt(abar_{t-1}) x0, 1 - abar_{t-1}) times N(x_t; sqrt(alpha_t) x_{t-1}, beta_t)."""
    sch = Schedule.make("cosine", 100)
    x0, xt = torch.full((1, 1, 1, 1), 0.7), torch.full((1, 1, 1, 1), -0.3)
    for t in (1, 20, 70):
        acp, beta = sch.alphas_cumprod[t - 1].item(), sch.betas[t].item()
        prec = 1 / (1 - acp) + (1 - beta) / beta
        mean = (math.sqrt(acp) * 0.7 / (1 - acp) + math.sqrt(1 - beta) * -0.3 / beta) / prec
        tt = torch.tensor([t])
        assert math.isclose(sch.posterior_mean(x0, xt, tt).item(), mean, rel_tol=1e-5, abs_tol=1e-6)
        assert math.isclose(sch.posterior_variance[t].item(), 1 / prec, rel_tol=1e-9)
    # the last step returns the mean (no noise)
    out = ancestral_step(sch, x0, xt, 0, torch.full_like(xt, 5.0))
    torch.testing.assert_close(out, sch.posterior_mean(x0, xt, torch.tensor([0])))


def test_respaced_schedule_keeps_alphas_cumprod():
    sch = Schedule.make("linear", 1000)
    assert sch.respace(None) is sch and sch.respace(1000) is sch
    r = sch.respace(50)
    assert r.T == 50 and r.timesteps[0] == 0 and r.timesteps[-1] == 999
    assert torch.all(r.timesteps[1:] > r.timesteps[:-1])
    torch.testing.assert_close(r.alphas_cumprod, sch.alphas_cumprod[r.timesteps], rtol=1e-12, atol=0)
    # posterior of the respaced chain is the exact DDPM posterior between the kept steps
    assert torch.all((r.posterior_variance[1:] > 0) & (r.posterior_variance[1:] < r.betas[1:]))
    for bad in (0, 1001):
        with pytest.raises(InputError):
            sch.respace(bad)


def test_ema_update_is_a_lerp_from_the_initial_weights():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    ema = ema_model(a, 0.9)  # torch's AveragedModel
    w0 = ema.module.weight.clone()
    ema.update_parameters(b)  # the first update averages (it does not copy b)
    torch.testing.assert_close(ema.module.weight, 0.9 * w0 + 0.1 * b.weight.detach())
    ema.update_parameters(b)
    torch.testing.assert_close(ema.module.weight, 0.81 * w0 + 0.19 * b.weight.detach())
    assert list(ema.module.state_dict()) == list(a.state_dict())  # checkpoints keep the model's keys
    with pytest.raises(AssertionError):  # validated with the generator's params
        ema_model(a, 1.0)


class _Stop(Exception):
    pass


class _StopAt:
    """A 'logger' that interrupts training when asked to log step ``k``."""

    def __init__(self, k):
        self.k = k

    def log_metrics(self, metrics, step):
        if step == self.k:
            raise _Stop


def _spec(steps, fingerprint=None):
    target = torch.tensor([[1.0, -2.0]])

    def loss_fn(model, gen, step):
        x = torch.randn(8, 2, generator=gen)
        return ((model(x) - x @ target.T) ** 2).mean()

    return TrainSpec(loss_fn=loss_fn, steps=steps, lr=0.05, seed=3, ema_decay=0.5, ema_every=2, ema_start=2,
                     lr_milestones=[4], lr_gamma=0.5, fingerprint=fingerprint)


def _model():
    torch.manual_seed(0)
    return nn.Linear(2, 1)


def test_resume_equals_uninterrupted(tmp_path):
    full = train_loop(_model(), _spec(9), Runtime(progress=False), tmp_path / "a")
    rt = Runtime(progress=False, log_every=1, checkpoint_every=3, logger=_StopAt(5))
    with pytest.raises(_Stop):
        train_loop(_model(), _spec(9), rt, tmp_path / "b")
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["step"] == 3
    resumed = train_loop(_model(), _spec(9), Runtime(progress=False), tmp_path / "b")
    assert resumed.steps == 9
    for p, q in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    # nothing half-written left beside the checkpoint
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["last.pt"]


def test_resume_refuses_another_run(tmp_path):
    train_loop(_model(), _spec(2, {"run": 1}), Runtime(progress=False), tmp_path)
    with pytest.raises(InputError, match="different run"):
        train_loop(_model(), _spec(2, {"run": 2}), Runtime(progress=False), tmp_path)
    # resume off: starts fresh and overwrites
    out = train_loop(_model(), _spec(2, {"run": 2}), Runtime(progress=False, resume=False), tmp_path)
    assert out.steps == 2


def test_resume_from_another_runs_checkpoint_file(tmp_path):
    """ckpt_path=<file>: a fresh dir starts from that file (only the missing steps run, the result
    equals an uninterrupted run); once the dir has its own last.pt, that one is used."""
    full = train_loop(_model(), _spec(9), Runtime(progress=False), tmp_path / "full")
    with pytest.raises(_Stop):
        train_loop(_model(), _spec(9), Runtime(progress=False, log_every=1, checkpoint_every=3, logger=_StopAt(5)),
                   tmp_path / "a")
    src = tmp_path / "a" / "last.pt"
    calls = []
    spec = _spec(9)
    inner = spec.loss_fn
    spec.loss_fn = lambda m, g, step: (calls.append(step), inner(m, g, step))[1]
    rt = Runtime(progress=False, resume_from=str(src))
    resumed = train_loop(_model(), spec, rt, tmp_path / "b")
    assert calls == list(range(3, 9))  # steps 3..8 only: it started from the file's step 3
    for p, q in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    assert torch.load(src, weights_only=True)["step"] == 3  # the source is read, never written
    calls.clear()
    train_loop(_model(), spec, rt, tmp_path / "b")  # b has its own last.pt (step 9) now: nothing to do
    assert calls == []
    with pytest.raises(InputError, match="different run"):  # a file of another run is refused, naming it
        train_loop(_model(), _spec(9, {"run": 2}), Runtime(progress=False, resume_from=str(src)), tmp_path / "c")
