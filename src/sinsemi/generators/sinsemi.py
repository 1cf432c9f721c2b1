"""SinSEMI: one-shot multi-scale Schrödinger-bridge CFM with Euler–Maruyama sampling and optional
LPIPS energy guidance, behind the :class:`~sinsemi.generators.base.OneShotGenerator` interface.

A training "step" is one optimiser step on one uniformly drawn scale (see
:mod:`sinsemi.generators.sinsemi_module`); ``iterations`` (or ``runtime.max_steps``) counts them.

Multi-device (``runtime.trainer_kwargs["devices"]`` x ``num_nodes`` = W > 1): Lightning's ``ddp``
strategy (NCCL on GPUs, gloo on CPUs); ``batch_size`` is the global batch, split B / W per rank so
that W ranks train the weights one process would (see the module's docstring); the last checkpoint is
written by rank 0. Sampling after such a fit is sharded across the ranks and gathered (:meth:`SinSEMI.sample`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from sinsemi.data.pyramid import Pyramid, build_pyramid, pyramid_sizes
from sinsemi.errors import InputError, pickle_refusal
from sinsemi.generators.base import (SNAPSHOTS, Runtime, SampleOutput, Standardizer, check_seeds, clamp_counted,
                                     read_model, resume_source, snapshot_steps, write_model)
from sinsemi.generators.params import (IDENTITY, SinSEMIParams, SinSEMISampler, module_hparams, parse_params,
                                      parse_sampler)
from sinsemi.generators.speed import cpu_bf16_supported, effective_precision  # noqa: F401  (re-exported)

log = logging.getLogger("sinsemi.generators.sinsemi")


def _world(rt: Runtime) -> tuple[int, int]:
    """(devices, num_nodes) the runtime asks Lightning for."""
    return int(rt.trainer_kwargs.get("devices", 1)), int(rt.trainer_kwargs.get("num_nodes", 1))


class SinSEMI:
    """Learn from one image (C, H, W), sample many. See the module docstring and issue 3."""

    name = "sinsemi"
    resumes_from_file = True  # a Lightning checkpoint (.ckpt)
    supports_ddp = True  # trains with Lightning's DDP strategy (trainer.devices > 1)

    Params = SinSEMIParams  # cfg.generator (without name)
    Sampler = SinSEMISampler  # cfg.sampler: sample()'s keywords

    def __init__(self, *, runtime: Runtime | None = None, **params):
        """``params``: :class:`~sinsemi.generators.params.SinSEMIParams`' fields (checked here: an
        InputError names the setting and its range)."""
        self.p: SinSEMIParams = parse_params(self.name, params)
        self.params = asdict(self.p)  # generator.json's params
        self.runtime = runtime or Runtime()
        devices, nodes = _world(self.runtime)
        if self.p.batch_size % (devices * nodes):
            raise InputError(f"SinSEMI batch_size={self.p.batch_size} (the global batch) must be divisible by the world size "
                             f"{devices * nodes} (trainer.devices={devices} x num_nodes={nodes}): each rank trains on "
                             "batch_size / world copies")
        self.standardizer: Standardizer | None = None
        self.pyramid: Pyramid | None = None  # standardised levels/conditions
        self.net: torch.nn.Module | None = None  # the EMA net used for sampling
        self.module = None  # the LightningModule after fit()

    # ------------------------------------------------------------------ training
    def _sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        p = self.params
        return pyramid_sizes(height, width, p["scale_factor"], area=p["coarse_area"],
                             min_coarse=p["min_coarse"], max_coarse=p["max_coarse"])

    def fit(self, image: torch.Tensor, *, seed: int, out_dir: str | Path) -> None:
        """Train on ``image`` (C, H, W); checkpoints in ``out_dir/checkpoints`` (resumed from last.ckpt),
        each written atomically (:class:`~sinsemi.generators.sinsemi_module.AtomicCheckpointIO`)."""
        import lightning as L
        from lightning.pytorch.callbacks import ModelCheckpoint

        from sinsemi.data.io import ensure_dir
        from sinsemi.distributed import is_global_zero
        from sinsemi.generators.sinsemi_module import AtomicCheckpointIO, PyramidDataModule, SinSEMIModule
        from sinsemi.runs import image_sha256

        if not isinstance(image, torch.Tensor) or image.ndim != 3:
            raise InputError(f"SinSEMI.fit needs an image tensor (C, H, W), got {getattr(image, 'shape', type(image))}")
        self.standardizer = Standardizer.fit(image)
        x = self.standardizer.forward(image.detach().float().cpu())
        self.pyramid = build_pyramid(x, self._sizes(*x.shape[-2:]))
        p, rt = self.params, self.runtime
        if p["scale_weights"] and len(p["scale_weights"]) != self.pyramid.n_scales:
            raise InputError(f"scale_weights has {len(p['scale_weights'])} entries but the pyramid of this "
                             f"{tuple(x.shape[-2:])} image has {self.pyramid.n_scales} scales {self.pyramid.sizes}")
        steps = int(rt.max_steps) if rt.max_steps is not None else p["iterations"]
        devices, nodes = _world(rt)
        world = devices * nodes
        ckpt_dir = Path(out_dir) / "checkpoints"
        if is_global_zero():
            ensure_dir(ckpt_dir)
        hparams = module_hparams(self.p, channels=x.shape[0], n_scales=self.pyramid.n_scales, seed=seed,
                                 image_sha256=image_sha256(image))
        last = ckpt_dir / "last.ckpt"
        src = resume_source(last, rt)  # this run's last.ckpt, else ckpt_path=<file>
        ckpt_path = str(src) if src is not None else None
        old = self._check_checkpoint(src, hparams) if src is not None else {}
        hparams["precision"] = self._precision(world, old.get("precision"))  # recorded: a resume keeps it
        L.seed_everything(int(seed), workers=True, verbose=False)
        module = SinSEMIModule(**hparams)
        dm = PyramidDataModule(list(self.pyramid.levels), list(self.pyramid.conditions), steps)
        cuda = str(rt.device).startswith("cuda")
        callbacks = self._callbacks(ckpt_dir)  # none: no periodic checkpoint (not Lightning's own default one either)
        snaps = snapshot_steps(rt.snapshots, steps)
        if snaps:
            from sinsemi.generators.sinsemi_module import Snapshots

            callbacks = [*callbacks, Snapshots(snaps, self._snapshot_writer(Path(out_dir) / SNAPSHOTS))]
        trainer = L.Trainer(
            accelerator="gpu" if cuda else "cpu", devices=devices, num_nodes=nodes,
            # every rank iterates the whole one-item-per-step dataset; the rank slices its rows itself
            strategy="ddp" if world > 1 else "auto", use_distributed_sampler=False,
            precision=hparams["precision"], max_steps=steps, max_epochs=-1,
            gradient_clip_val=p["grad_clip"], gradient_clip_algorithm="norm",
            logger=rt.logger if rt.logger is not None else False, log_every_n_steps=max(1, rt.log_every),
            enable_progress_bar=rt.progress, enable_model_summary=False, num_sanity_val_steps=0, detect_anomaly=rt.detect_anomaly,
            limit_val_batches=0, default_root_dir=str(out_dir),
            plugins=[AtomicCheckpointIO()],  # last.ckpt is replaced whole, never half-written
            callbacks=callbacks, enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        )
        if ckpt_path:
            log.info("resuming SinSEMI from %s", ckpt_path)
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
        trainer.save_checkpoint(str(last))  # the final state, whatever checkpoint_every was (rank 0 writes, all call)
        self.module = module
        self.net = module.ema.module.float().eval()
        # a rank samples on its own device (Lightning's root device: cuda:<local rank>), one process on rt.device
        self._device = trainer.strategy.root_device if world > 1 else torch.device(rt.device)

    def _snapshot_writer(self, folder: Path):
        """The model with ``net`` (the module's EMA net at step k) as the sampling net, saved as a
        model dir ``folder/step<k>/`` (loadable by ``load_generator``)."""

        def write(step: int, net: torch.nn.Module) -> None:
            keep, self.net = self.net, net
            try:
                self.save(folder / f"step{step}")
            finally:
                self.net = keep

        return write

    def _precision(self, world: int, resumed: str | None = None) -> str:
        """The Lightning precision of this fit: ``runtime.precision``, with ``auto`` resolved by a probe
        of this net at the size that costs the most time (:mod:`sinsemi.generators.speed`), or, when
        resuming, the precision the checkpoint's run trained in (``resumed``: a resumed run continues as
        it started). Several CPU ranks would each probe and could disagree: there ``auto`` is 32-true."""
        from sinsemi.generators.speed import SpeedPath, dominant_size, resolve_precision

        p, rt = self.params, self.runtime
        cpu = not str(rt.device).startswith("cuda")
        if rt.precision == "auto" and resumed:
            log.info("precision=auto: %s (what the resumed checkpoint's run trained in)", resumed)
            return str(resumed)
        if rt.precision == "auto" and cpu and world > 1:
            log.info("precision=auto: 32-true (%d CPU ranks would each probe, and could disagree)", world)
            return "32-true"
        size = dominant_size(list(self.pyramid.sizes), p["scale_weights"], p["crop"])
        path = SpeedPath(channels_last=p["channels_last"], fast_kernels=p["fast_kernels"] and cpu)
        return resolve_precision(rt.precision, str(rt.device), width=p["width"], batch=p["batch_size"] // world,
                                 size=size, channels=int(self.pyramid.levels[0].shape[0]), kernel=p["kernel"], path=path)

    def _callbacks(self, ckpt_dir: Path) -> list:
        """``runtime.callbacks`` (the ``callbacks`` config group) with every ModelCheckpoint that names
        no ``dirpath`` writing into ``ckpt_dir`` (where a resume looks); without any, the default:
        ``last.ckpt`` every ``checkpoint_every`` steps (and each step's file with ``keep_checkpoints``).
        Lightning writes checkpoints atomically (an fsspec transaction)."""
        from lightning.pytorch.callbacks import ModelCheckpoint

        rt = self.runtime
        if rt.callbacks is None:
            return [ModelCheckpoint(dirpath=str(ckpt_dir), filename="step{step}",
                                    save_top_k=-1 if rt.keep_checkpoints else 0, save_last=True, auto_insert_metric_name=False,
                                    every_n_train_steps=max(1, rt.checkpoint_every), enable_version_counter=False)]
        for cb in rt.callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.dirpath is None:
                cb.dirpath = str(ckpt_dir)
        return list(rt.callbacks)

    @staticmethod
    def _check_checkpoint(path: Path, hparams: dict) -> dict:
        """A last.ckpt from another model/width/image raises one clear error instead of a shape dump;
        returns the checkpoint's hyper-parameters."""
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise pickle_refusal(path, e) or InputError(
                f"cannot read checkpoint {path}: {type(e).__name__}: {e} (delete it or use ckpt_path=null)") from None
        old = ck.get("hyper_parameters", {})
        legacy = {"padding_mode": "zeros", "kernel": 5, "image_sha256": hparams["image_sha256"]}  # checkpoints from before these keys
        for key in IDENTITY:
            if old.get(key, legacy.get(key)) != hparams[key]:
                raise InputError(f"checkpoint {path} does not match this run: {key}={old.get(key)!r} there, "
                                 f"{hparams[key]!r} here (another model/width/image? use a new run dir or ckpt_path=null)")
        return old

    # ------------------------------------------------------------------ sampling
    def _require_fitted(self) -> None:
        if self.net is None or self.pyramid is None or self.standardizer is None:
            raise InputError("SinSEMI has not been trained: call fit() or load() first")

    def sample(self, seeds: Sequence[int], **settings) -> SampleOutput:
        """One sample per seed, ``samples`` (len(seeds), C, H, W) in the training image's scale
        (clamped to [0, 1], counted in ``clamped_pixels``); sample i uses ``seeds[i]`` only.

        ``settings``: :class:`~sinsemi.generators.params.SinSEMISampler`'s fields (steps, kind, coarse,
        coarse_steps, guidance, noise, lpips_net, batch_size, allow_random_backbone, keep_intermediates;
        checked here: an InputError names the setting); guidance 0 = off (no LPIPS call); noise None =
        the training sigma (the published code used 1); keep_intermediates: also return the result at
        every scale (image scale, coarsest first).
        ``nfe`` = steps x (scales - 1) + coarse_steps; ``info``: steps, kind, coarse, coarse_steps, guidance,
        noise, lpips_net, random_backbone.

        In a DDP world (``torch.distributed`` up: after a multi-device :meth:`fit` in this process) every
        rank must call this with the same arguments: the ``batch_size`` chunks of ``seeds`` are dealt to
        the ranks round-robin and gathered, and every rank returns all samples, sample i bitwise the one a
        single process draws (same chunks, same batches). W ranks speed it up when there are >= W chunks.
        """
        from sinsemi.distributed import all_gather, rank_and_world
        from sinsemi.flow.guidance import LPIPSGuidance
        from sinsemi.flow.sampler import sample_pyramid
        from sinsemi.seeding import derive_seed, generators_for

        self._require_fitted()
        seeds = check_seeds(seeds)
        st: SinSEMISampler = parse_sampler(self.name, settings)
        steps, kind, coarse, coarse_steps, guidance = st.steps, st.kind, st.coarse, st.coarse_steps, st.guidance
        lpips_net, keep_intermediates = st.lpips_net, st.keep_intermediates
        noise = self.p.sigma if st.noise is None else st.noise
        batch_size = self.p.sample_batch if st.batch_size is None else st.batch_size
        device = self._device
        lpips_fn = None
        if guidance > 0:
            from sinsemi.metrics.weights import lpips_model

            lpips_fn = lpips_model(lpips_net, allow_random=st.allow_random_backbone, device=str(device))
        precision = effective_precision(self.runtime.precision, str(device))
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision.startswith("bf16"))
        cl = self.params["channels_last"]
        net = self.net.to(device)

        def velocity(x: torch.Tensor, t: torch.Tensor, s: int) -> torch.Tensor:
            with torch.no_grad(), autocast:
                xin = x.contiguous(memory_format=torch.channels_last) if cl else x
                return net(xin, t, torch.full_like(t, s)).float()

        sizes = self.pyramid.sizes
        levels, conds = list(self.pyramid.levels), list(self.pyramid.conditions)
        channels = levels[0].shape[0]
        chunks = [seeds[i:i + batch_size] for i in range(0, len(seeds), batch_size)]
        # In a DDP world (after a multi-device fit) rank r draws chunks r, r + W, ...: the chunks, and so
        # each forward's batch, are the single-process ones, so sample i is bitwise the same at any W.
        rank, world = rank_and_world()
        mine = list(range(rank, len(chunks), world))
        done: dict[int, tuple[torch.Tensor, list[torch.Tensor], int]] = {}  # chunk -> (samples, per scale, nfe)
        per_sample = steps * (len(sizes) - 1) + (coarse_steps or steps)
        from sinsemi.progress import Progress  # a bar on a terminal, a line every ~10 s in a file

        with Progress(len(mine) * per_sample, f"sinsemi sampling ({kind})", unit="steps",
                      enabled=self.runtime.progress and rank == 0) as bar:
            for c in mine:
                chunk = chunks[c]
                gens = generators_for(chunk, device)
                v = velocity
                if guidance > 0:
                    g_gens = generators_for([derive_seed(s, stream="guidance") for s in chunk], device)
                    v = LPIPSGuidance(lpips_fn, levels, conds, g_gens, weight=float(guidance), sigma=self.params["sigma"])(velocity)
                out = sample_pyramid(v, sizes, channels, gens, steps=steps, kind=kind, coarse=coarse, noise=float(noise),
                                     sigma=self.params["sigma"], t_eps=self.params["t_eps"],
                                     keep_intermediates=keep_intermediates, device=device, on_step=lambda: bar.update(1),
                                     coarse_steps=coarse_steps)
                done[c] = (out.samples.detach().float().cpu(), [x.float().cpu() for x in out.intermediates], out.nfe)
        for part in all_gather(done):  # every rank gets every chunk (one rank: done itself)
            done.update(part)
        outs, inters, nfe = [done[c][0] for c in range(len(chunks))], [done[c][1] for c in range(len(chunks))], done[0][2]
        samples = self.standardizer.inverse(torch.cat(outs))
        # Images live in [0, 1] (the scale files load in); a trajectory that leaves it (an undertrained
        # net can run away in a dark blob) is clamped, and how many pixels were is recorded.
        samples, clamped = clamp_counted(samples, 0.0, 1.0)
        per_scale = [self.standardizer.inverse(torch.cat([c[s] for c in inters])) for s in range(len(sizes))] if keep_intermediates else []
        info = {"steps": steps, "kind": kind, "coarse": coarse, "coarse_steps": coarse_steps, "guidance": float(guidance), "noise": float(noise),
                "lpips_net": lpips_net if guidance > 0 else None,
                "random_backbone": bool(getattr(lpips_fn, "random_backbone", False)) if lpips_fn is not None else False}
        return SampleOutput(samples=samples, nfe=nfe, clamped_pixels=clamped, intermediates=per_scale, info=info)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> None:
        """``generator.json`` (params) + ``state.pt`` (EMA net, standardiser, standardised pyramid)."""
        self._require_fitted()
        state = {
            "ema": {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()},
            "standardizer": self.standardizer.state_dict(),
            "levels": [lv.cpu() for lv in self.pyramid.levels],
            "conditions": [c.cpu() if c is not None else torch.empty(0) for c in self.pyramid.conditions],
        }
        write_model(directory, self.name, self.params, state)

    @classmethod
    def load(cls, directory: str | Path, *, runtime: Runtime | None = None) -> "SinSEMI":
        from sinsemi.nets.sinddm import SinDDMNet

        _, params, state = read_model(directory, expected=cls.name)
        try:
            gen = cls(runtime=runtime, **params)
        except (TypeError, InputError) as e:
            raise InputError(f"{directory}: saved SinSEMI params do not fit this version: {e}") from None
        try:
            levels = [lv.float() for lv in state["levels"]]
            conds = [None if c.numel() == 0 else c.float() for c in state["conditions"]]
            ema = state["ema"]
            std = Standardizer.from_state(state["standardizer"])
        except (KeyError, TypeError, AttributeError) as e:
            raise InputError(f"{directory}/state.pt is not a SinSEMI model state ({type(e).__name__}: {e})") from None
        net = SinDDMNet(levels[0].shape[0], gen.params["width"], multiscale=True, padding_mode=gen.params["padding_mode"],
                        kernel=gen.params["kernel"])
        expected = net.state_dict()
        bad = [k for k in expected if k not in ema or tuple(ema[k].shape) != tuple(expected[k].shape)]
        if bad or len(ema) != len(expected):
            k = bad[0] if bad else "(key set)"
            got = tuple(ema[k].shape) if bad and k in ema else "missing"
            raise InputError(f"{directory}: weights do not match a SinSEMI net of width {gen.params['width']} "
                             f"(e.g. {k}: expected {tuple(expected[k].shape) if bad else ''}, found {got}); "
                             "checkpoint from another model or width")
        net.load_state_dict(ema)
        gen.net = net.eval()
        gen.standardizer = std
        gen.pyramid = Pyramid(levels=tuple(levels), conditions=tuple(conds))
        gen._device = torch.device(gen.runtime.device)
        return gen
