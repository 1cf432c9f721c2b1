"""The fit/save/load/sample, resume, budget and bad-input tests shared by the three diffusion baselines
(SinDDM, SinDiffusion, SinFusion). Each test module calls
``globals().update(contract_tests(NAME, TINY, SAMPLER))`` so pytest collects them there."""

from __future__ import annotations

import pytest
import torch

from sinsemi.errors import InputError
from sinsemi.generators.base import Runtime, build_generator, generator_class, write_model


def contract_tests(NAME: str, TINY: dict, SAMPLER: dict) -> dict:
    """Test functions and fixtures (and the ``_fit`` helper) bound to one generator's tiny config."""
    @pytest.fixture(autouse=True)
    def _one_thread():
        """One intra-op thread: on the shared 2-core machine two threads thrash (measured ~6x slower)."""
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(n)


    def _fit(tmp_path, image, sub="run", **rt):
        gen = build_generator(NAME, TINY, Runtime(progress=False, **rt))
        gen.fit(image, seed=0, out_dir=tmp_path / sub)
        return gen


    def test_fit_save_load_sample_deterministic(tmp_path, tiny_image):
        gen = _fit(tmp_path, tiny_image)
        assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()
        a = gen.sample([5, 6, 7], **SAMPLER).samples
        assert a.shape == (3, *tiny_image.shape) and a.dtype == torch.float32 and torch.isfinite(a).all()
        # in the image's own scale, within the x_0 clip range mapped back to it: the image's range
        # widened by 10 % of its span, or SinDDM's official [-1, 1], i.e. [0, 1]
        bounds = gen.std.inverse(torch.tensor(gen.clip).view(1, 1, 2, 1))  # (1, C, 2, 1)
        lo, hi = bounds[:, :, 0].min().item(), bounds[:, :, 1].max().item()
        if tuple(gen.clip) != (-1.0, 1.0):
            span = tiny_image.max().item() - tiny_image.min().item()
            assert lo == pytest.approx(tiny_image.min().item() - 0.1 * span, abs=1e-4)
            assert hi == pytest.approx(tiny_image.max().item() + 0.1 * span, abs=1e-4)
        assert a.min() >= lo - 1e-5 and a.max() <= hi + 1e-5
        assert torch.equal(a, gen.sample([5, 6, 7], **SAMPLER).samples)
        # sample i depends only on its seed, not on n or its position
        torch.testing.assert_close(gen.sample([6], **SAMPLER).samples[0], a[1], rtol=1e-4, atol=1e-5)
        assert (a[0] - a[1]).abs().mean() > 1e-3  # different seeds give different samples
        gen.save(tmp_path / "model")
        loaded = generator_class(NAME).load(tmp_path / "model", runtime=Runtime(progress=False))
        assert torch.equal(loaded.sample([5, 6, 7], **SAMPLER).samples, a)
        assert loaded_meta(tmp_path / "model") == NAME


    def loaded_meta(d):
        import json

        return json.loads((d / "generator.json").read_text())["name"]


    class _Stop(Exception):
        pass


    class _StopAt:
        def __init__(self, k):
            self.k = k

        def log_metrics(self, metrics, step):
            if step == self.k:
                raise _Stop


    def test_resume_equals_uninterrupted(tmp_path, tiny_image):
        full = _fit(tmp_path, tiny_image, "full")
        with pytest.raises(_Stop):
            _fit(tmp_path, tiny_image, "cut", log_every=1, checkpoint_every=4, logger=_StopAt(6))
        resumed = _fit(tmp_path, tiny_image, "cut")
        for (k, p), q in zip(full.net.state_dict().items(), resumed.net.state_dict().values()):
            assert torch.equal(p, q), k
        assert torch.equal(full.sample([0, 1], **SAMPLER).samples, resumed.sample([0, 1], **SAMPLER).samples)


    def test_max_steps_overrides_budget(tmp_path, tiny_image):
        _fit(tmp_path, tiny_image, max_steps=3)
        assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == 3


    def test_bad_inputs(tmp_path, tiny_image):
        gen = build_generator(NAME, TINY, Runtime(progress=False))
        with pytest.raises(InputError, match="not fitted"):
            gen.sample([0])
        with pytest.raises(InputError, match="constant"):
            gen.fit(torch.full((1, 32, 32), 0.5), seed=0, out_dir=tmp_path / "c")
        gen = _fit(tmp_path, tiny_image, max_steps=2)
        with pytest.raises(InputError, match="positive"):
            gen.sample([])
        with pytest.raises(InputError, match="unknown sampler"):
            gen.sample([0], bogus=1)
        # another generator's checkpoint
        write_model(tmp_path / "other", "gpnn", {}, {"x": torch.zeros(1)})
        with pytest.raises(InputError, match="not a '" + NAME + "'"):
            generator_class(NAME).load(tmp_path / "other")

    return {k: v for k, v in locals().items() if k.startswith(("test_", "_"))}
