"""Multi-device training (issue 13): the global batch split over DDP ranks, sharded sampling, one writer.

The end-to-end test runs the real ``sinsemi-train`` twice, as 2 DDP processes (gloo on CPU, Lightning's
``ddp`` strategy) and as one process, at the same global batch, and compares what they wrote.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from sinsemi.errors import InputError
from sinsemi.generators.base import GENERATORS, Runtime, build_generator

from ._cli import BIN
from .test_sinsemi import tiny_params

SPY = Path(__file__).resolve().parent / "write_spy"


def _module(**over):
    from sinsemi.generators.sinsemi_module import SinSEMIModule

    kw = dict(channels=1, width=8, n_scales=3, batch_size=4, lr=1e-3, milestones=[5], lr_gamma=0.5, sigma=0.35,
              t_eps=0.01, ema_decay=0.9, seed=3)
    return SinSEMIModule(**{**kw, **over})


def _batch() -> dict:
    g = torch.Generator().manual_seed(1)
    levels = [torch.rand(1, 16, 16, generator=g), torch.rand(1, 23, 23, generator=g), torch.rand(1, 32, 32, generator=g)]
    batch = {f"x0_{s}": lv for s, lv in enumerate(levels)}
    batch.update({f"x1_{s}": torch.rand(levels[s].shape, generator=g) for s in (1, 2)})
    return batch


@pytest.mark.parametrize("over", [{}, {"crop": 20, "t_sampling": "ends"}])
def test_the_ranks_draws_together_are_the_single_process_draws(over):
    m, batch = _module(**over), _batch()
    for step in range(12):
        s1, *whole = m._draws(step, batch)
        for world in (2, 4):
            parts = [m._draws(step, batch, rank, world) for rank in range(world)]
            assert all(p[0] == s1 for p in parts)  # one scale per step, the same on every rank
            for i, w in enumerate(whole):  # x0, x1, t, z: each rank B/W distinct rows, together the B rows
                assert all(p[1 + i].shape[0] == 4 // world for p in parts)
                assert torch.equal(torch.cat([p[1 + i] for p in parts]), w)
            assert not torch.equal(parts[0][4], parts[1][4])  # not every rank on the same draws (the old bug)
    with pytest.raises(ValueError, match="batch_size=4 is not divisible by the world size 3"):
        m._draws(0, batch, 0, 3)


def test_a_global_batch_the_world_does_not_divide_is_refused():
    with pytest.raises(InputError, match=r"batch_size=2 .*world size 4 \(trainer.devices=4 x num_nodes=1\)"):
        build_generator("sinsemi", tiny_params(batch_size=2), Runtime(trainer_kwargs={"devices": 4}))
    build_generator("sinsemi", tiny_params(batch_size=4), Runtime(trainer_kwargs={"devices": 4}))  # divisible


def _train_cfg(*over: str) -> dict:
    with initialize_config_module("sinsemi.conf", version_base="1.3"):
        return OmegaConf.to_container(compose("train", overrides=["profile=tiny", *over]), resolve=True)


@pytest.mark.parametrize("name", sorted(set(GENERATORS) - {"sinsemi"}))
def test_baselines_refuse_several_devices_before_any_work(name, tmp_path):
    from sinsemi.validation import validate_train

    cfg = _train_cfg(f"generator={name}", "trainer.devices=2")
    with pytest.raises(InputError, match=rf"generator '{name}' trains on one device.*trainer.devices=2"):
        validate_train(cfg, tmp_path / "run")
    with pytest.raises(InputError, match=rf"generator '{name}'"):  # the library path too
        build_generator(name, {k: v for k, v in cfg["generator"].items()}, Runtime(trainer_kwargs={"devices": 2}))
    assert not (tmp_path / "run").exists()
    validate_train(_train_cfg(f"generator={name}", "trainer.devices=1"), tmp_path / "run")


def test_sinsemi_validates_with_several_devices(tmp_path):
    from sinsemi.validation import validate_train

    validate_train(_train_cfg("generator=sinsemi", "trainer.devices=2"), tmp_path)


def test_sampling_alone_refuses_several_devices(tmp_path):
    from sinsemi.validation import validate_sample

    with initialize_config_module("sinsemi.conf", version_base="1.3"):
        cfg = compose("sample", overrides=["profile=tiny", f"run_dir={tmp_path}", "trainer.devices=2"])
    with pytest.raises(InputError, match="sinsemi-sample draws on one device, got trainer.devices=2"):
        validate_sample(OmegaConf.to_container(cfg, resolve=True), "sinsemi")


def test_a_multirun_with_several_devices_needs_slurm(monkeypatch):
    from sinsemi.jobs.train import check_ddp_launch as _check_ddp_launch

    for k in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(k)
    cfg = OmegaConf.create({"trainer": {"devices": 2}})
    with pytest.raises(InputError, match="trainer.devices=2 in a multirun sweep needs launcher=slurm"):
        _check_ddp_launch(cfg, multirun=True)
    _check_ddp_launch(cfg, multirun=False)  # a single run: Lightning's launcher starts rank 1
    _check_ddp_launch(OmegaConf.create({"trainer": {"devices": 1}}), multirun=True)


def _start_train(run_dir: Path, devices: int, spy_log: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1",
           "PYTHONPATH": os.pathsep.join([str(SPY), os.environ.get("PYTHONPATH", "")]),
           "SINSEMI_WRITE_SPY": str(spy_log), "SINSEMI_WRITE_SPY_ROOT": str(run_dir)}
    for k in ("LOCAL_RANK", "RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_PORT"):
        env.pop(k, None)
    # batch_size 4 (the global batch, 2 per rank), 4 samples in 4 chunks of 1: 2 per rank
    args = ["profile=tiny", "generator=sinsemi", "generator.batch_size=4", "generator.sample_batch=1", "n_samples=4",
            "trainer.accelerator=cpu", f"trainer.devices={devices}", f"hydra.run.dir={run_dir}"]
    return subprocess.Popen([str(BIN / "sinsemi-train"), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def _state(path: Path, key: str) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)[key]


def test_two_ddp_processes_train_and_sample_what_one_process_does_and_only_rank_0_writes(tmp_path):
    """2 gloo ranks vs 1 process at global batch 4: the same final weights (to float summation
    order), the same samples, the same files, and rank 1 opens no file in the run dir."""
    from sinsemi.data.io import load_bundle
    from sinsemi.generators.sinsemi import SinSEMI

    ddp_dir, one_dir = tmp_path / "ddp", tmp_path / "one"
    spy_ddp, spy_one = tmp_path / "writes_ddp.tsv", tmp_path / "writes_one.tsv"
    procs = [_start_train(ddp_dir, 2, spy_ddp), _start_train(one_dir, 1, spy_one)]  # side by side: half the wall time
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
    assert "Starting with 2 processes" in outs[0] and "distributed_backend=gloo" in outs[0]

    # one writer: rank 1 wrote nothing under the run dir; rank 0 wrote the run (the spy sees writes)
    writes = [line.split("\t") for line in spy_ddp.read_text().splitlines()]
    assert [w for w in writes if w[0] != "0"] == []
    written = {Path(w[2]).name for w in writes}
    assert {"state.pt", "samples.npz", "metrics.json", "last.ckpt", "grid.png", "train.log"} <= written
    assert _files(ddp_dir) == _files(one_dir)  # no rank-suffixed log, no leftover temp file, nothing extra

    # the same weights: the net and its EMA at the last step, and the saved model
    a, b = _state(ddp_dir / "checkpoints" / "last.ckpt", "state_dict"), _state(one_dir / "checkpoints" / "last.ckpt", "state_dict")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0, msg=k)
    assert torch.equal(a["scale_counts"], b["scale_counts"]) and int(a["scale_counts"].sum()) == 6
    ema_a, ema_b = _state(ddp_dir / "model" / "state.pt", "ema"), _state(one_dir / "model" / "state.pt", "ema")
    for k in ema_a:
        torch.testing.assert_close(ema_a[k], ema_b[k], atol=1e-5, rtol=0, msg=k)

    # the same samples; and the sharded, gathered samples are bitwise one process's from that model
    sa, meta_a = load_bundle(ddp_dir / "samples" / "samples.npz")
    sb, meta_b = load_bundle(one_dir / "samples" / "samples.npz")
    assert meta_a["seeds"] == meta_b["seeds"] == [0, 1, 2, 3]
    torch.testing.assert_close(sa, sb, atol=1e-5, rtol=0)
    again = SinSEMI.load(ddp_dir / "model", runtime=Runtime(progress=False)).sample([0, 1, 2, 3], **meta_a["sampler"])
    assert torch.equal(again.samples, sa)
    assert not torch.equal(again.samples[0], again.samples[1])  # 4 distinct samples, in seed order
