"""Issue 25's library pieces, in process: limits before work (finite numbers, seed range, bounded n,
typed sampler settings, no +typo keys), a run dir's config read as data, the fingerprint never
adopted from other inputs, deterministic torch.save bytes, own temp files cleaned."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
import torch
import yaml

from sinsemi import runs
from sinsemi.errors import InputError
from sinsemi.validation import (MAX_SAMPLES, SEED_MAX, check_added_keys, check_count, check_number, check_sampler_settings,
                                check_seed)


# ----------------------------------------------------------------------------- numbers and seeds
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_numbers_are_refused(value):
    with pytest.raises(InputError, match="sampler.guidance must be a finite number"):
        check_number("sampler.guidance", value, strict=False)
    with pytest.raises(InputError):
        check_number("trainer.max_steps", value, integer=True, allow_none=True)


def test_seed_range():
    assert check_seed("seed", SEED_MAX) == SEED_MAX == 2**32 - 1
    with pytest.raises(InputError, match=r"seed must be an integer >= 0 and <= 4294967295, got 1180591620717411303424"):
        check_seed("seed", 2**70)
    with pytest.raises(InputError, match="seed must be an integer >= 0, got 'abc'"):
        check_seed("seed", "abc")


def test_count_is_bounded_before_any_list_is_built():
    from sinsemi.seeding import sample_seeds

    assert check_count("n", MAX_SAMPLES) == MAX_SAMPLES
    with pytest.raises(InputError, match=r"n=1000000000 is over the limit of 1000000 samples per job: draw them in chunks"):
        sample_seeds(10**9)  # refused before a list of 10^9 seeds exists
    with pytest.raises(InputError, match=r"seed_base=4294967290 with n=10 needs seeds up to 4294967299"):
        sample_seeds(10, 2**32 - 6)
    assert sample_seeds(6, 2**32 - 6)[-1] == SEED_MAX
    with pytest.raises(InputError, match="number of samples must be positive"):
        sample_seeds(0)
    with pytest.raises(InputError, match="n must be an integer > 0, got 2.5"):
        check_count("n", 2.5)


def test_generator_seeds_are_in_range():
    import numpy as np

    from sinsemi.generators.base import check_seeds

    assert check_seeds([np.int64(3), torch.tensor(4).item(), 5]) == [3, 4, 5]
    with pytest.raises(InputError, match="a sample seed must be an integer >= 0 and <= 4294967295"):
        check_seeds([2**70])


def test_sampler_setting_of_the_wrong_type():
    with pytest.raises(InputError, match=r"sampler.noise_std must be a number \(its default is 0.75\), got 'abc'"):
        check_sampler_settings("gpnn", {"noise_std": "abc"})
    with pytest.raises(InputError, match="sampler.noise_std must be a finite number, got inf"):
        check_sampler_settings("gpnn", {"noise_std": math.inf})
    with pytest.raises(InputError, match="sampler.lpips_net must be one of alex, vgg, squeeze, got 3"):
        check_sampler_settings("sinsemi", {"lpips_net": 3})
    with pytest.raises(InputError, match="sampler.keep_intermediates must be true or false"):
        check_sampler_settings("sinsemi", {"keep_intermediates": "yes"})
    check_sampler_settings("gpnn", {"noise_std": 1, "alpha": 0.01})  # an int for a float: fine
    check_sampler_settings("sinsemi", {"steps": 3, "coarse_steps": 4, "noise": 0.5, "guidance": 0.0})


def test_added_top_level_keys_are_refused():
    groups = {"generator": "gpnn", "profile": "tiny", "experiment": "table1"}
    check_added_keys(["+experiment=table1", "+sampler.steps=3", "seed=1", "++trainer.max_steps=4", "+hydra/launcher=x"],
                     groups, "sinsemi-train")
    with pytest.raises(InputError, match=r"unknown setting\(s\) n_sample for sinsemi-sample"):
        check_added_keys(["n=3", "+n_sample=100"], groups, "sinsemi-sample")


# ----------------------------------------------------------------------------- a run dir read back
def _run_dir(tmp_path, **edits):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = {"generator": {"name": "gpnn", "patch_size": 7}, "seed": 0, "trainer": {"max_steps": None},
           "sampler": {"noise_std": 0.75}, "profile_name": "tiny"}
    fp = {"generator": "gpnn", "params": {"patch_size": 7}, "image_sha256": "x", "image_shape": [1, 32, 32], "seed": 0,
          "max_steps": None}
    (run_dir / "fingerprint.json").write_text(json.dumps(fp))
    (run_dir / "metrics.json").write_text(json.dumps({"sampler": {"noise_std": 0.75}}))
    for key, value in edits.items():
        node = cfg
        *path, last = key.split("__")
        for k in path:
            node = node[k]
        node[last] = value
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    return run_dir


def test_read_run_config_as_data(tmp_path):
    cfg = runs.read_run_config(_run_dir(tmp_path))
    assert cfg["sampler"] == {"noise_std": 0.75} and cfg["generator"]["patch_size"] == 7


@pytest.mark.parametrize("edits,match", [
    ({"sampler__noise_std": "${oc.env:SINSEMI_TEST_SECRET}"}, r"holds an interpolation \('\$\{...\}'\) at sampler.noise_std"),
    ({"profile_name": "a${x}"}, "at profile_name"),
    ({"generator__patch_size": 5}, r"says generator.patch_size=5 but the run's model was trained with generator.patch_size=7"),
    ({"seed": 3}, "says seed=3 but"),
    ({"trainer__max_steps": 9}, "says trainer.max_steps=9 but"),
    ({"sampler__noise_std": 0.5}, r"says sampler.noise_std=0.5 but the run sampled with sampler.noise_std=0.75"),
])
def test_read_run_config_refuses(tmp_path, monkeypatch, edits, match):
    monkeypatch.setenv("SINSEMI_TEST_SECRET", "MARKER-7f3a")
    with pytest.raises(InputError, match=match) as e:
        runs.read_run_config(_run_dir(tmp_path, **edits))
    assert "MARKER-7f3a" not in str(e.value) and "\n" not in str(e.value)


def test_read_run_config_corrupt(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("- a\n- b\n")
    with pytest.raises(InputError, match="a mapping of settings expected"):
        runs.read_run_config(run_dir)
    (run_dir / "config.yaml").write_text("a: [\n")
    with pytest.raises(InputError, match="corrupt"):
        runs.read_run_config(run_dir)
    with pytest.raises(InputError, match="not a training run dir"):
        runs.read_run_config(tmp_path / "none")


# ----------------------------------------------------------------------------- fingerprint
def test_missing_fingerprint_on_a_run_with_a_model_is_refused(tmp_path):
    run_dir = _run_dir(tmp_path)
    (run_dir / "model").mkdir()
    (run_dir / "fingerprint.json").unlink()
    fp = runs.make_fingerprint("gpnn", {"patch_size": 7}, torch.rand(1, 32, 32), seed=0, max_steps=None)
    with pytest.raises(InputError, match="no fingerprint.json: the image it was made from is unknown"):
        runs.check_fingerprint(run_dir, fp)
    assert not (run_dir / "fingerprint.json").exists()
    assert runs.check_fingerprint(run_dir, fp, force=True) is True  # force: start again
    assert not (run_dir / "model").exists()


def test_forget_fresh_start(tmp_path):
    for name in runs.FRESH_START:
        (tmp_path / name).write_text("{}")
    (tmp_path / "train.log").write_text("")
    runs.forget_fresh_start(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["train.log"]
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.yaml").write_text("{}")
    runs.forget_fresh_start(tmp_path)  # a run that made something keeps its records
    assert (tmp_path / "config.yaml").exists()


# ----------------------------------------------------------------------------- bytes and temp files
def test_torch_save_bytes_do_not_depend_on_the_temp_name(tmp_path):
    from sinsemi.data.io import save_checkpoint_file

    state = {"w": torch.arange(6.0).reshape(2, 3), "step": 3, "name": "x"}
    a = save_checkpoint_file(state, tmp_path / "a" / "state.pt").read_bytes()
    b = save_checkpoint_file(state, tmp_path / "b" / "other.ckpt").read_bytes()
    c = save_checkpoint_file(state, tmp_path / "a" / "state.pt").read_bytes()  # rewritten in place
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest() == hashlib.sha256(c).digest()
    assert torch.equal(torch.load(tmp_path / "b" / "other.ckpt", weights_only=True)["w"], state["w"])


def test_remove_partials_not_recursive(tmp_path):
    from sinsemi.data.io import remove_partials

    (tmp_path / "checkpoints").mkdir()
    top, deep = tmp_path / ".defects.json.partial-abc.json", tmp_path / "checkpoints" / ".last.ckpt.partial-x.ckpt"
    top.write_text("")
    deep.write_text("")
    assert remove_partials(tmp_path, recursive=False) == [top]
    assert deep.exists()


# ----------------------------------------------------------------------------- streaming to disk
class _FakeGen:
    """Sample i depends on its seed alone; ``fail_after`` calls raise (a kill mid-set)."""

    name = "fake"

    def __init__(self, fail_after: int | None = None, side: int = 8):
        self.calls: list[list[int]] = []
        self.fail_after, self.side = fail_after, side

    def sample(self, seeds, **settings):
        from sinsemi.generators.base import SampleOutput

        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt
        self.calls.append(list(seeds))
        x = torch.stack([torch.rand(1, self.side, self.side, generator=torch.Generator().manual_seed(s)) for s in seeds])
        return SampleOutput(samples=x * settings["scale"], nfe=3, clamped_pixels=len(seeds), info={"kind": "fake"})


def _bytes(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def test_draw_to_disk_matches_one_go_and_resumes_after_a_kill(tmp_path):
    from sinsemi.data.io import display_range, load_bundle, save_samples
    from sinsemi.streaming import draw_to_disk

    seeds, settings, meta = list(range(100, 111)), {"scale": 0.9}, {"generator": "fake", "sampler": {"scale": 0.9}}
    out = _FakeGen().sample(seeds, **settings)
    save_samples(out.samples, tmp_path / "one", seeds=seeds, grid_range=display_range(out.samples),
                 meta={**meta, "sample_info": out.sample_info()})
    info = draw_to_disk(_FakeGen(), seeds, settings, tmp_path / "streamed", batch=4, meta=meta)
    assert _bytes(tmp_path / "streamed") == _bytes(tmp_path / "one")  # PNGs, grid, bundle: byte-identical
    assert info == {"nfe": 3, "kind": "fake", "clamped_pixels": 11}
    killed = _FakeGen(fail_after=2)  # two batches of 4 finished, then killed
    with pytest.raises(KeyboardInterrupt):
        draw_to_disk(killed, seeds, settings, tmp_path / "resumed", batch=4, meta=meta)
    assert len(list((tmp_path / "resumed").glob("*.png"))) == 8 and not (tmp_path / "resumed" / "samples.npz").exists()
    with pytest.raises(InputError, match="holds unfinished samples of another request"):
        draw_to_disk(_FakeGen(), seeds, {"scale": 0.5}, tmp_path / "resumed", batch=4, meta=meta)
    rerun = _FakeGen()
    draw_to_disk(rerun, seeds, settings, tmp_path / "resumed", batch=4, meta=meta)
    assert rerun.calls == [[108, 109, 110]]  # only the unfinished samples are drawn
    assert _bytes(tmp_path / "resumed") == _bytes(tmp_path / "one")
    assert not (tmp_path / "resumed" / ".parts").exists()
    assert load_bundle(tmp_path / "resumed" / "samples.npz")[1]["seeds"] == seeds
    # a kill mid-batch-commit (its temp left), resumed with another batch size: aligned on the new one
    with pytest.raises(KeyboardInterrupt):
        draw_to_disk(_FakeGen(fail_after=1), seeds, settings, tmp_path / "other", batch=3, meta=meta)
    rerun = _FakeGen()
    draw_to_disk(rerun, seeds, settings, tmp_path / "other", batch=2, meta=meta)
    assert rerun.calls == [[103], [104, 105], [106, 107], [108, 109], [110]]
    assert _bytes(tmp_path / "other") == _bytes(tmp_path / "one")


def test_draw_to_disk_grid_range_of_a_large_set_is_display_range(tmp_path):
    """Over display_range's 10^6-pixel sample the streamed range picks the same pixels, read batch by
    batch: the grid (and the whole dir) is byte-identical to save_samples of the set held in memory."""
    from sinsemi.data.io import display_range, save_samples
    from sinsemi.streaming import _RANGE_PIXELS, draw_to_disk

    gen = _FakeGen(side=160)
    seeds = list(range(_RANGE_PIXELS // (160 * 160) + 3))  # just over the sample, in batches of 16
    out = gen.sample(seeds, scale=1.0)
    save_samples(out.samples, tmp_path / "one", seeds=seeds, grid_range=display_range(out.samples),
                 meta={"sample_info": out.sample_info()})
    draw_to_disk(_FakeGen(side=160), seeds, {"scale": 1.0}, tmp_path / "streamed", batch=16)
    assert _bytes(tmp_path / "streamed") == _bytes(tmp_path / "one")


def test_disk_full_is_one_clear_error_and_leaves_no_temp(tmp_path):
    import errno

    from sinsemi.data.io import atomic_path

    with pytest.raises(InputError, match=r"cannot write .*out.json: No space left on device \(nothing half-written"):
        with atomic_path(tmp_path / "out.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(PermissionError):  # other OS errors stay what they are
        with atomic_path(tmp_path / "out.json"):
            raise PermissionError(errno.EACCES, "denied")
