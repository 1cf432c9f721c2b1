"""Shared DDPM pieces for the diffusion baselines (SinDDM, SinDiffusion, SinFusion).

* beta schedules: linear (Ho et al. 2020, rescaled to T steps as in improved-DDPM) and cosine
  (Nichol & Dhariwal 2021, eq. 17);
* :class:`Schedule`: the closed forms of q(x_t | x_0) (eq. 4 of Ho et al.) and of the posterior
  q(x_{t-1} | x_t, x_0) (eqs. 6-7), and respacing to fewer steps (improved-DDPM, Sec. 4);
* :func:`ema_model`: the EMA of the weights (``torch.optim.swa_utils.AveragedModel``);
* :func:`train_loop`: a plain, seeded, resumable optimisation loop with atomic checkpoints;
* :class:`DiffusionGenerator`: what the three generators share (standardisation, checkpoint dir,
  save/load, per-sample seeded sampling in chunks).

Timesteps are integers 0..T-1 (t = 0 is the least noisy); tensors are (N, C, H, W). No Lightning,
no Hydra.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from sinsemi.errors import InputError, pickle_refusal

if TYPE_CHECKING:
    from sinsemi.generators.base import SampleOutput

log = logging.getLogger("sinsemi.generators.diffusion")


# ----------------------------------------------------------------------------- schedules
def linear_betas(steps: int, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    """Ho et al.'s linear betas for 1000 steps, rescaled by 1000/steps for other step counts."""
    scale = 1000.0 / steps
    return torch.linspace(scale * start, scale * end, steps, dtype=torch.float64)


def cosine_alphas_cumprod(steps: int, s: float = 0.008) -> torch.Tensor:
    """abar(t) = f(t)/f(0), f(t) = cos^2(((t/T) + s)/(1 + s) * pi/2), t = 0..T (T + 1 values)."""
    t = torch.arange(steps + 1, dtype=torch.float64)
    f = torch.cos(((t / steps) + s) / (1 + s) * math.pi / 2) ** 2
    return f / f[0]


def cosine_betas(steps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """betas_t = 1 - abar(t+1)/abar(t), clipped to ``max_beta`` (Nichol & Dhariwal eq. 17)."""
    ac = cosine_alphas_cumprod(steps, s)
    return (1 - ac[1:] / ac[:-1]).clamp(0, max_beta)


def make_betas(kind: str, steps: int) -> torch.Tensor:
    if steps < 1:
        raise InputError(f"diffusion steps must be >= 1, got {steps}")
    if kind == "linear":
        return linear_betas(steps)
    if kind == "cosine":
        return cosine_betas(steps)
    raise InputError(f"unknown beta schedule '{kind}' (use linear or cosine)")


def _bcast(v: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """v[t] as (N, 1, 1, 1) in x's dtype/device."""
    return v[t.cpu()].to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.ndim - 1)))


@dataclass(frozen=True)
class Schedule:
    """A discrete diffusion schedule (float64 buffers, length T).

    ``timesteps[i]``: the original timestep of step i (the identity unless respaced); networks are
    always called with the original timesteps.
    """

    betas: torch.Tensor
    timesteps: torch.Tensor

    @classmethod
    def from_betas(cls, betas: torch.Tensor) -> "Schedule":
        return cls(betas=betas.double(), timesteps=torch.arange(len(betas)))

    @classmethod
    def make(cls, kind: str, steps: int) -> "Schedule":
        return cls.from_betas(make_betas(kind, steps))

    @property
    def T(self) -> int:
        return len(self.betas)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return torch.cumprod(1 - self.betas, 0)

    @property
    def alphas_cumprod_prev(self) -> torch.Tensor:
        return torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])

    @property
    def posterior_variance(self) -> torch.Tensor:
        """beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t) (Ho et al. eq. 7)."""
        return self.betas * (1 - self.alphas_cumprod_prev) / (1 - self.alphas_cumprod)

    @property
    def sigma_over_alpha(self) -> torch.Tensor:
        """sqrt((1 - abar_t) / abar_t): the noise std in units of x_0 (SinDDM's sigma_t)."""
        ac = self.alphas_cumprod
        return ((1 - ac) / ac).sqrt()

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (Ho et al. eq. 4)."""
        ac = self.alphas_cumprod
        return _bcast(ac.sqrt(), t, x0) * x0 + _bcast((1 - ac).sqrt(), t, x0) * noise

    def x0_from_eps(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
        ac = self.alphas_cumprod
        return _bcast((1 / ac).sqrt(), t, xt) * xt - _bcast((1 / ac - 1).sqrt(), t, xt) * eps

    def posterior_mean(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """mu~_t(x_t, x_0) (Ho et al. eq. 7)."""
        ac, acp = self.alphas_cumprod, self.alphas_cumprod_prev
        c0 = self.betas * acp.sqrt() / (1 - ac)
        ct = (1 - acp) * (1 - self.betas).sqrt() / (1 - ac)
        return _bcast(c0, t, xt) * x0 + _bcast(ct, t, xt) * xt

    def posterior_log_variance(self, t: torch.Tensor, x: torch.Tensor, kind: str = "small") -> torch.Tensor:
        """log of the reverse-step variance: "small" = beta~_t, "large" = beta_t (beta~_1 at t = 0,
        as guided-diffusion's FIXED_LARGE)."""
        if kind == "small":
            var = self.posterior_variance.clamp(min=1e-20)
        elif kind == "large":
            var = torch.cat([self.posterior_variance[1:2], self.betas[1:]]) if self.T > 1 else self.betas
        else:
            raise InputError(f"unknown variance kind '{kind}' (use small or large)")
        return _bcast(var.log(), t, x)

    def respace(self, steps: int | None) -> "Schedule":
        """``steps`` evenly spaced timesteps of this schedule, with betas recomputed so that the
        kept abar values are unchanged: beta'_i = 1 - abar_{k_i} / abar_{k_{i-1}}."""
        if steps is None or steps == self.T:
            return self
        if not 1 <= steps <= self.T:
            raise InputError(f"sampling steps must be in 1..{self.T}, got {steps}")
        keep = torch.linspace(0, self.T - 1, steps).round().long().unique()
        ac = self.alphas_cumprod[keep]
        prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
        return Schedule(betas=1 - ac / prev, timesteps=self.timesteps[keep])


def ancestral_step(sched: Schedule, x0: torch.Tensor, xt: torch.Tensor, i: int, noise: torch.Tensor,
                   variance: str = "small") -> torch.Tensor:
    """x_{i-1} ~ N(mu~_i(x_t, x_0), sigma_i^2) (no noise at i = 0). ``i`` indexes ``sched``."""
    t = torch.full((xt.shape[0],), i, dtype=torch.long)
    mean = sched.posterior_mean(x0, xt, t)
    if i == 0:
        return mean
    return mean + (0.5 * sched.posterior_log_variance(t, xt, variance)).exp() * noise


# ----------------------------------------------------------------------------- EMA
def ema_model(model: nn.Module, decay: float) -> AveragedModel:
    """torch's EMA of ``model``'s weights, theta_ema <- decay * theta_ema + (1 - decay) * theta
    (``get_ema_multi_avg_fn``: one lerp per tensor), in a frozen copy (``.module``) whose buffers
    follow the model's. The average starts at the model's current weights: the first update
    averages, it does not copy (``n_averaged`` starts at 1)."""
    assert 0.0 <= decay < 1.0, decay  # validated with the generator's params
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(float(decay)), use_buffers=False)
    ema.n_averaged += 1
    return ema.eval().requires_grad_(False)


# ----------------------------------------------------------------------------- training loop
@dataclass
class TrainSpec:
    """What :func:`train_loop` needs besides the model.

    ``loss_fn(model, gen, step) -> scalar``: all randomness from ``gen`` (a seeded CPU generator whose
    state is checkpointed, so a resumed run equals an uninterrupted one). ``ema_every``/``ema_start``:
    update the EMA every k steps; before ``ema_start`` it is a copy of the model (SinDDM's rule).
    """

    loss_fn: Callable[[nn.Module, torch.Generator, int], torch.Tensor]
    steps: int
    lr: float
    seed: int
    ema_decay: float | None = None
    ema_every: int = 1
    ema_start: int = 0
    lr_milestones: Sequence[int] = ()
    lr_gamma: float = 0.5
    optimizer: str = "adam"  # adam | adamw
    fingerprint: Mapping[str, Any] | None = None  # must match on resume


@dataclass
class TrainResult:
    model: nn.Module  # the EMA model when an EMA is used, else the trained model
    steps: int
    last_loss: float


def _autocast(runtime, device: str):
    """bf16 autocast only on CUDA: measured on this CPU, bf16 autocast made the conv nets slower
    (see sinsemi.bench / the generators' report), so "bf16-mixed" on CPU trains in fp32."""
    import contextlib

    if device.startswith("cuda") and (str(runtime.precision).startswith("bf16") or runtime.precision == "auto"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.startswith("cuda") and str(runtime.precision).startswith("16"):
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def train_loop(model: nn.Module, spec: TrainSpec, runtime, ckpt_dir: Path, *, desc: str = "train",
               on_snapshot=None) -> TrainResult:
    """Adam(W) on ``spec.loss_fn`` for ``spec.steps`` steps; checkpoints ``ckpt_dir/last.pt``
    (atomically) every ``runtime.checkpoint_every`` steps and at the end; resumes from it when
    ``runtime.resume``. ``on_snapshot(step, net)``: called with the net samples would use (the EMA
    when there is one) at the steps of ``runtime.snapshots`` (the budget curves)."""
    from sinsemi.data.io import ensure_dir, save_checkpoint_file
    from sinsemi.generators.base import resume_source, snapshot_steps

    device = runtime.device
    model.to(device).train()
    opt_cls = torch.optim.AdamW if spec.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(model.parameters(), lr=spec.lr, **({"weight_decay": 0.0} if spec.optimizer == "adamw" else {}))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=sorted(set(int(m) for m in spec.lr_milestones)), gamma=spec.lr_gamma)
    ema = ema_model(model, spec.ema_decay) if spec.ema_decay is not None else None
    gen = torch.Generator().manual_seed(int(spec.seed))
    step, last_loss = 0, float("nan")
    fingerprint = dict(spec.fingerprint or {})

    ckpt = Path(ckpt_dir) / "last.pt"
    src = resume_source(ckpt, runtime)  # this run's last.pt, else ckpt_path=<file>
    if src is not None:
        try:
            state = torch.load(src, map_location="cpu", weights_only=True)
        except Exception as e:
            raise pickle_refusal(src, e) or InputError(f"cannot read checkpoint {src}: {type(e).__name__}: {e}") from None
        if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
            raise InputError(f"checkpoint {src} belongs to a different run (generator, settings, budget or image differ): "
                             "use another run dir or ckpt_path=null")
        if src != ckpt:
            log.info("resuming %s from %s", desc, src)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        if ema is not None:
            ema.module.load_state_dict(state["ema"])
        gen.set_state(state["rng"])
        step, last_loss = int(state["step"]), float(state["loss"])

    def save() -> None:
        ensure_dir(ckpt.parent)
        save_checkpoint_file({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                              "ema": ema.module.state_dict() if ema is not None else None, "rng": gen.get_state(),
                              "step": step, "loss": last_loss, "fingerprint": fingerprint}, ckpt)

    bar = None
    if runtime.progress and step < spec.steps:
        from sinsemi.progress import Progress  # a bar on a terminal, a line every ~10 s in a file

        bar = Progress(spec.steps, desc, unit="steps", initial=step)
    window: list[float] = []
    log_every = max(1, int(runtime.log_every))
    ckpt_every = max(1, int(runtime.checkpoint_every))
    snaps = set(snapshot_steps(getattr(runtime, "snapshots", ()), spec.steps)) if on_snapshot is not None else set()
    while step < spec.steps:
        with _autocast(runtime, device):
            loss = spec.loss_fn(model, gen, step)
        opt.zero_grad(set_to_none=True)
        loss.float().backward()
        opt.step()
        sched.step()
        step += 1
        last_loss = float(loss.detach())
        if ema is not None and step % spec.ema_every == 0:
            if step < spec.ema_start:  # a copy of the model until ema_start (SinDDM's rule)
                ema.module.load_state_dict(model.state_dict())
            else:
                ema.update_parameters(model)
        if step in snaps:
            on_snapshot(step, ema.module if ema is not None else model)
        window.append(last_loss)
        if step % log_every == 0 or step == spec.steps:
            runtime.log({"train/loss": sum(window) / len(window), "train/lr": opt.param_groups[0]["lr"]}, step)
            window.clear()
        if bar is not None:
            bar.update(1, loss=last_loss, lr=opt.param_groups[0]["lr"])
        if step % ckpt_every == 0 or step == spec.steps:
            save()
    if bar is not None:
        bar.close()
    if step == 0 or (not ckpt.exists()):
        save()
    out = ema.module if ema is not None else model
    return TrainResult(model=out.eval(), steps=step, last_loss=last_loss)


# ----------------------------------------------------------------------------- generator base
class DiffusionGenerator:
    """What the three diffusion generators share.

    Subclasses set ``name``, keep their constructor arguments in ``self.params`` (primitives), build
    ``self.net`` in :meth:`build`, implement :meth:`_fit` and :meth:`_sample_batch`, and may add
    tensors to :meth:`_extra_state` / :meth:`_load_extra`.
    """

    name = "diffusion"
    resumes_from_file = True  # train_loop's last.pt format
    sample_chunk = 16  # samples denoised together (memory); results do not depend on it

    def __init__(self, runtime=None, **params):
        from sinsemi.generators.base import Runtime

        self.runtime = runtime or Runtime()
        self.params = dict(params)
        self.std = None  # Standardizer after fit/load
        self.net: nn.Module | None = None
        self.image_size: tuple[int, int] | None = None
        self.channels: int | None = None

    # -- to implement
    def build(self, channels: int, image_size: tuple[int, int]) -> None:
        raise NotImplementedError

    def _fit(self, x: torch.Tensor, seed: int, ckpt_dir: Path) -> None:
        raise NotImplementedError

    def _sample_batch(self, gens: list[torch.Generator], **settings) -> tuple[torch.Tensor, int]:
        """One sample per generator on the standardised scale, (len(gens), C, H, W), and the net
        evaluations per sample."""
        raise NotImplementedError

    def _extra_state(self) -> dict:
        return {}

    def _load_extra(self, state: Mapping[str, Any]) -> None:
        pass

    def _standardizer(self, image: torch.Tensor):
        """The map from the image's intensities to the model's units: per-channel standardisation,
        or with the param ``intensity="raw"`` the official codes' fixed [0, 1] -> [-1, 1]
        (x -> (x - 0.5) / 0.5). SinDDM overrides it (its units follow ``scale_loss``)."""
        from sinsemi.generators.base import Standardizer

        if self.params.get("intensity") == "raw":
            return unit_range_standardizer(image.shape[0])
        return Standardizer.fit(image)

    def _clip_range(self, x: torch.Tensor) -> tuple[float, float]:
        """Where predicted x_0 is clipped: [-1, 1] on the raw units (the official codes), else the
        standardised image's range widened by 10 % (:func:`data_clip_range`)."""
        return (-1.0, 1.0) if self.params.get("intensity") == "raw" else data_clip_range(x)

    # -- shared
    def steps(self, default: int) -> int:
        """The iteration budget: ``runtime.max_steps`` when set, else the generator's own."""
        n = self.runtime.max_steps if self.runtime.max_steps is not None else default
        if int(n) < 1:
            raise InputError(f"{self.name}: training steps must be >= 1, got {n}")
        return int(n)

    def fingerprint(self, x: torch.Tensor, seed: int, steps: int) -> dict:
        """What a checkpoint must match to be resumed (params, image, seed, budget)."""
        import hashlib

        digest = hashlib.sha1(x.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()
        return {"name": self.name, "params": repr(sorted(self.params.items())), "image": digest,
                "seed": int(seed), "steps": int(steps)}

    def fit(self, image: torch.Tensor, *, seed: int, out_dir: str | Path) -> None:
        from sinsemi.data.io import check_trainable

        if not isinstance(image, torch.Tensor):
            raise InputError(f"{self.name}: the training image must be a tensor (C, H, W), got {type(image).__name__}")
        check_trainable(image, name=f"{self.name} training image")
        image = image.detach().float().cpu()
        self.std = self._standardizer(image)
        self.channels, self.image_size = image.shape[0], tuple(image.shape[-2:])
        with torch.random.fork_rng(devices=[]):  # seeded weight init, global RNG untouched
            torch.manual_seed(int(seed))
            self.build(self.channels, self.image_size)
        self._fit(self.std.forward(image), int(seed), Path(out_dir) / "checkpoints")

    def snapshot_writer(self, ckpt_dir: Path):
        """``on_snapshot`` for :func:`train_loop`: the model with ``net`` in place of the final one,
        saved as a model dir ``<run>/snapshots/step<k>/`` (loadable by ``load_generator``)."""
        from sinsemi.distributed import is_global_zero
        from sinsemi.generators.base import SNAPSHOTS

        def write(step: int, net: nn.Module) -> None:
            if not is_global_zero():
                return
            keep, self.net = self.net, net
            try:
                self.save(Path(ckpt_dir).parent / SNAPSHOTS / f"step{step}")
            finally:
                self.net = keep

        return write

    def _check_fitted(self) -> None:
        if self.net is None or self.std is None:
            raise InputError(f"{self.name} is not fitted: call fit() or load() first")

    @torch.no_grad()
    def sample(self, seeds: Sequence[int], **settings) -> SampleOutput:
        """One sample per seed, ``samples`` (len(seeds), C, H, W) in the training image's scale,
        drawn ``sample_chunk`` at a time; sample i uses only ``seeds[i]``. ``nfe``: the denoising
        steps (over all scales); nothing is clamped at the end (x_0 is clipped inside each step)."""
        from sinsemi.generators.base import SampleOutput, check_seeds
        from sinsemi.progress import Progress
        from sinsemi.seeding import generators_for

        seeds = check_seeds(seeds)
        self._check_fitted()
        self.net.to(self.runtime.device).eval()
        out, nfe = [], 0
        with Progress(len(seeds), f"{self.name} sampling", unit="samples", enabled=self.runtime.progress) as bar:
            for i in range(0, len(seeds), self.sample_chunk):
                x, nfe = self._sample_batch(generators_for(seeds[i:i + self.sample_chunk]), **settings)
                out.append(x.float().cpu())
                bar.update(x.shape[0])
        return SampleOutput(samples=self.std.inverse(torch.cat(out)), nfe=nfe)

    def state(self) -> dict:
        self._check_fitted()
        return {"net": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                "standardizer": self.std.state_dict(),
                "shape": torch.tensor([self.channels, *self.image_size]), **self._extra_state()}

    def save(self, directory: str | Path) -> None:
        from sinsemi.generators.base import write_model

        write_model(directory, self.name, self.params, self.state())

    @classmethod
    def load(cls, directory: str | Path, *, runtime=None):
        from sinsemi.generators.base import Standardizer, read_model

        _, params, state = read_model(directory, expected=cls.name)
        gen = cls(runtime=runtime, **params)
        c, h, w = (int(v) for v in state["shape"].tolist())
        gen.channels, gen.image_size = c, (h, w)
        gen.std = Standardizer.from_state(state["standardizer"])
        gen.build(c, (h, w))
        try:
            gen.net.load_state_dict(state["net"])
        except RuntimeError as e:
            raise InputError(f"{directory}: weights do not match the saved {cls.name} settings: {e}") from None
        gen._load_extra(state)
        gen.net.eval()
        return gen


def unit_range_standardizer(channels: int):
    """The fixed map [0, 1] -> [-1, 1] (mean = std = 0.5 per channel): the official diffusion codes' units."""
    from sinsemi.generators.base import Standardizer

    half = torch.full((int(channels),), 0.5)
    return Standardizer(mean=half, std=half.clone())


def data_clip_range(x: torch.Tensor, margin: float = 0.1) -> tuple[float, float]:
    """The standardised training image's range widened by ``margin`` of its span: where predicted
    x_0 is clipped (the official codes clip to the data range [-1, 1])."""
    lo, hi = float(x.min()), float(x.max())
    pad = margin * (hi - lo)
    return lo - pad, hi + pad
