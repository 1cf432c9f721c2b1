"""The SinSEMI speed path: fused CPU kernels and torch.compile give the eager results; the
``trainer.precision=auto`` decision (fake timers: no timing is asserted); the new config keys."""

from __future__ import annotations

import logging

import pytest
import torch

from sinsemi.errors import InputError
from sinsemi.generators import speed
from sinsemi.generators.speed import SpeedPath, choose_precision, dominant_size, resolve_precision
from sinsemi.nets import fastconv
from sinsemi.nets.sinddm import SinDDMNet


def _loss_and_grads(net, x, t, s, forward=None, bf16=False):
    net.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        v = (forward or net)(x, t, s)
    loss = (v.float() - x).pow(2).mean()
    loss.backward()
    return v.detach().float(), loss.detach(), {k: p.grad.clone() for k, p in net.named_parameters()}


def _inputs(cl: bool, size: int = 12, batch: int = 3):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 1, size, size + 2, generator=g)
    t, s = torch.rand(batch, generator=g), torch.tensor([0.0, 1.0, 2.0][:batch])
    return (x.contiguous(memory_format=torch.channels_last) if cl else x), t, s


@pytest.fixture
def eager_param_grads(monkeypatch):
    """The fused kernel's maths without inductor (fast; the compiled kernel has its own test)."""
    monkeypatch.setattr(fastconv, "_compiled_param_grads", lambda: fastconv.depthwise_param_grads)


def test_depthwise_param_grads_are_aten_s():
    g = torch.Generator().manual_seed(0)
    x, go, w = torch.randn(2, 4, 9, 7, generator=g), torch.randn(2, 4, 9, 7, generator=g), torch.randn(4, 1, 5, 5, generator=g)
    _, ref_w, ref_b = torch.ops.aten.convolution_backward(go, x, w, [4], [1, 1], [2, 2], [1, 1], False, [0, 0], 4,
                                                          [False, True, True])
    gw, gb = fastconv.depthwise_param_grads(go, x, 5)
    torch.testing.assert_close(gw, ref_w, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gb, ref_b, rtol=1e-5, atol=1e-5)
    # and the aten fallback returns the same pair, in float32 also for bf16 inputs
    for got, ref in zip(fastconv._aten_param_grads(go, x, w), (ref_w, ref_b)):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    bw, bb = fastconv._aten_param_grads(go.bfloat16(), x.bfloat16(), w.bfloat16())
    assert bw.dtype == bb.dtype == torch.float32 and bb.shape == (4,)


@pytest.mark.parametrize("kernel", [5, 7])  # the paper's and the CPU profiles' depthwise kernel
@pytest.mark.parametrize("cl", [False, True])
def test_fast_kernels_match_eager(eager_param_grads, cl, kernel):
    torch.manual_seed(0)
    ref_net = SinDDMNet(1, 8, kernel=kernel)
    fast_net = SinDDMNet(1, 8, kernel=kernel).set_fast_kernels(True)
    fast_net.load_state_dict(ref_net.state_dict())
    assert fast_net.state_dict().keys() == ref_net.state_dict().keys()
    if cl:
        ref_net, fast_net = (n.to(memory_format=torch.channels_last) for n in (ref_net, fast_net))
    x, t, s = _inputs(cl)
    v0, l0, g0 = _loss_and_grads(ref_net, x, t, s)
    v1, l1, g1 = _loss_and_grads(fast_net, x, t, s)
    torch.testing.assert_close(v1, v0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-6)
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], rtol=1e-4, atol=1e-5, msg=k)


def test_fast_kernels_under_bf16_autocast(eager_param_grads):
    """bf16: the same as aten's bf16 path within bf16 rounding; the weight gradient stays float32."""
    torch.manual_seed(0)
    ref_net, fast_net = SinDDMNet(1, 8), SinDDMNet(1, 8).set_fast_kernels(True)
    fast_net.load_state_dict(ref_net.state_dict())
    x, t, s = _inputs(True)
    _, l0, g0 = _loss_and_grads(ref_net, x, t, s, bf16=True)
    _, l1, g1 = _loss_and_grads(fast_net, x, t, s, bf16=True)
    torch.testing.assert_close(l1, l0, rtol=2e-2, atol=1e-3)
    for k in g0:
        assert g1[k].dtype == torch.float32
        assert (g1[k] - g0[k]).norm() <= 0.05 * g0[k].norm() + 1e-6, k


def _compile_or_skip(fn):
    try:
        compiled = torch.compile(fn)
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"torch.compile unavailable here: {type(e).__name__}: {e}")
    return compiled


def _run_or_skip(fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - no C++ compiler, unsupported platform
        if "inductor" in type(e).__module__ or "dynamo" in type(e).__module__ or "compil" in str(e).lower():
            pytest.skip(f"torch.compile cannot run here: {type(e).__name__}: {str(e)[:200]}")
        raise


@pytest.mark.slow  # torch.compile (opt-in: generator.compile=true) costs ~15 s per test on 2 cores
def test_compiled_depthwise_param_grads_match():
    g = torch.Generator().manual_seed(0)
    x, go = torch.randn(2, 4, 9, 7, generator=g), torch.randn(2, 4, 9, 7, generator=g)
    fn = _compile_or_skip(fastconv.depthwise_param_grads)
    for got, ref in zip(_run_or_skip(fn, go, x, 5), fastconv.depthwise_param_grads(go, x, 5)):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # torch.compile, opt-in (see above)
@pytest.mark.parametrize("fast", [False, True])
def test_compiled_forward_matches_eager_and_keeps_state_dict(fast):
    """generator.compile (alone, and with fast_kernels: inside the compiled forward the plain conv is
    traced): the module compiles the net's forward; loss, outputs and gradients are eager's, and the
    state_dict (checkpoints) has the same keys as without compile."""
    from sinsemi.generators.sinsemi_module import SinSEMIModule

    kw = dict(channels=1, width=8, n_scales=3, batch_size=3, lr=1e-3, milestones=[10], lr_gamma=0.5, sigma=0.35,
              t_eps=0.01, ema_decay=0.9, seed=0)
    torch.manual_seed(0)
    plain, comp = SinSEMIModule(**kw), SinSEMIModule(**kw, compile=True, fast_kernels=fast)
    comp.load_state_dict(plain.state_dict())
    plain.on_fit_start()
    comp.on_fit_start()
    assert comp.state_dict().keys() == plain.state_dict().keys()
    assert comp._forward is not plain.net.forward
    x, t, s = _inputs(False)
    v0, l0, g0 = _loss_and_grads(plain.net, x, t, s)
    v1, l1, g1 = _run_or_skip(_loss_and_grads, comp.net, x, t, s, comp._forward)
    torch.testing.assert_close(v1, v0, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(l1, l0, rtol=1e-4, atol=1e-6)
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], rtol=1e-3, atol=1e-5, msg=k)


def test_fit_uses_the_fast_path(eager_param_grads, tmp_path, tiny_image, monkeypatch):
    """generator.fast_kernels=true reaches the real fit: the trained net runs the fused kernels."""
    from sinsemi.generators.base import Runtime
    from sinsemi.generators.sinsemi import SinSEMI

    from tests.test_sinsemi import tiny_params

    calls = []
    real = fastconv.depthwise_param_grads
    monkeypatch.setattr(fastconv, "_compiled_param_grads", lambda: lambda *a: calls.append(1) or real(*a))
    gen = SinSEMI(runtime=Runtime(progress=False, max_steps=2), **tiny_params(fast_kernels=True))
    gen.fit(tiny_image, seed=0, out_dir=tmp_path)
    assert calls and gen.module.net.blocks[0].fast_kernels


# ----------------------------------------------------------------------------- precision=auto
class FakeTimer:
    def __init__(self, t32: float, tbf: float):
        self.t, self.calls = {False: t32, True: tbf}, []

    def __call__(self, bf16: bool) -> float:
        self.calls.append(bf16)
        return self.t[bf16]


@pytest.mark.parametrize("t32,tbf,expected", [(1.0, 0.5, "bf16-mixed"), (1.0, 1.2, "32-true"),
                                              (1.0, 0.99, "32-true"), (1.0, 0.96, "bf16-mixed")])
def test_choose_precision(t32, tbf, expected):
    choice, a, b = choose_precision(FakeTimer(t32, tbf), margin=0.03)
    assert (choice, a, b) == (expected, t32, tbf)


@pytest.fixture
def native_bf16(monkeypatch):
    monkeypatch.setattr(speed, "cpu_bf16_supported", lambda: True)
    monkeypatch.setattr(speed, "_AUTO_CACHE", {})


def test_auto_probes_once_per_key_and_logs_both_timings(native_bf16, caplog):
    timer = FakeTimer(0.2, 0.1)
    kw = dict(width=32, batch=8, size=(55, 55))
    with caplog.at_level(logging.INFO, logger="sinsemi.generators.speed"):
        assert resolve_precision("auto", "cpu", timer=timer, **kw) == "bf16-mixed"
        assert resolve_precision("auto", "cpu", timer=FakeTimer(0.1, 0.2), **kw) == "bf16-mixed"  # cached
    assert sorted(timer.calls) == [False, True]
    line = [r.getMessage() for r in caplog.records if "precision=auto" in r.getMessage()][0]
    assert "200.0 ms" in line and "100.0 ms" in line and "bf16-mixed" in line
    other = FakeTimer(0.1, 0.2)  # another size: probed again
    assert resolve_precision("auto", "cpu", timer=other, width=32, batch=8, size=(96, 96)) == "32-true"
    assert other.calls


def test_auto_without_probe_on_cuda_and_on_cpus_without_bf16(monkeypatch):
    timer = FakeTimer(1.0, 0.1)
    assert resolve_precision("auto", "cuda", timer=timer, width=8, batch=2, size=(16, 16)) == "bf16-mixed"
    monkeypatch.setattr(speed, "cpu_bf16_supported", lambda: False)
    monkeypatch.setattr(speed, "_AUTO_CACHE", {})
    assert resolve_precision("auto", "cpu", timer=timer, width=8, batch=2, size=(16, 16)) == "32-true"
    assert resolve_precision("32-true", "cpu", timer=timer, width=8, batch=2, size=(16, 16)) == "32-true"
    assert timer.calls == []


def test_auto_fit_trains_in_the_probed_precision(native_bf16, eager_param_grads, tmp_path, tiny_image, monkeypatch):
    from sinsemi.generators.base import Runtime
    from sinsemi.generators.sinsemi import SinSEMI

    from tests.test_sinsemi import tiny_params

    seen = {}

    def fake_probe(path, **kw):
        seen.update(kw, path=path)
        return FakeTimer(1.0, 2.0)  # bf16 slower: fp32

    monkeypatch.setattr(speed, "probe_timer", fake_probe)
    gen = SinSEMI(runtime=Runtime(progress=False, max_steps=1, precision="auto"),
                  **tiny_params(scale_weights=[0.1, 0.1, 0.8], fast_kernels=True, channels_last=True, kernel=7))
    gen.fit(tiny_image, seed=0, out_dir=tmp_path)
    assert seen["size"] == (32, 32) and seen["width"] == 16 and seen["batch"] == 2 and seen["kernel"] == 7
    assert seen["path"] == SpeedPath(channels_last=True, fast_kernels=True)
    assert gen.module.trainer.precision == "32-true"


def test_dominant_size():
    sizes = [(55, 55), (73, 73), (96, 96)]
    assert dominant_size(sizes, []) == (96, 96)
    assert dominant_size(sizes, [0.8, 0.1, 0.1]) == (55, 55)
    assert dominant_size(sizes, [], crop=48) == (48, 48)


# ----------------------------------------------------------------------------- config keys
def test_precision_auto_is_a_valid_setting():
    from sinsemi.validation import check_trainer

    check_trainer({"precision": "auto", "max_steps": None, "checkpoint_every": 1, "log_every": 1})
    with pytest.raises(InputError, match="trainer.precision must be one of"):
        check_trainer({"precision": "bf17", "max_steps": None, "checkpoint_every": 1, "log_every": 1})


@pytest.mark.parametrize("key", ["fast_kernels", "compile"])
def test_speed_keys_must_be_booleans(key):
    from sinsemi.generators.sinsemi import SinSEMI

    SinSEMI(**{key: True})
    with pytest.raises(InputError, match=f"{key} must be true or false"):
        SinSEMI(**{key: "yes"})


def test_auto_resume_keeps_the_checkpoint_s_precision(native_bf16, eager_param_grads, tmp_path, tiny_image, monkeypatch):
    from sinsemi.generators.base import Runtime
    from sinsemi.generators.sinsemi import SinSEMI

    from tests.test_sinsemi import tiny_params

    probes = []
    monkeypatch.setattr(speed, "probe_timer", lambda path, **kw: probes.append(kw) or FakeTimer(1.0, 2.0))
    first = SinSEMI(runtime=Runtime(progress=False, max_steps=2, precision="auto", checkpoint_every=1), **tiny_params())
    first.fit(tiny_image, seed=0, out_dir=tmp_path)
    assert first.module.hparams.precision == "32-true" and len(probes) == 1
    monkeypatch.setattr(speed, "_AUTO_CACHE", {})
    monkeypatch.setattr(speed, "probe_timer", lambda path, **kw: probes.append(kw) or FakeTimer(1.0, 0.1))  # would pick bf16
    again = SinSEMI(runtime=Runtime(progress=False, max_steps=3, precision="auto", checkpoint_every=1), **tiny_params())
    again.fit(tiny_image, seed=0, out_dir=tmp_path)
    assert again.module.trainer.precision == "32-true" and len(probes) == 1


def test_speed_keys_are_not_part_of_a_run_s_fingerprint(tiny_image):
    """A run started without (or with other) speed settings resumes: they change speed, not the model."""
    from sinsemi.runs import make_fingerprint

    a = make_fingerprint("sinsemi", {"width": 16}, tiny_image, seed=0, max_steps=2)
    b = make_fingerprint("sinsemi", {"width": 16, "fast_kernels": True, "compile": True}, tiny_image, seed=0, max_steps=2)
    assert a == b


def test_bench_net_selection(monkeypatch):
    from sinsemi.bench import sinsemi as bench

    monkeypatch.delenv("SINSEMI_BENCH_NETS", raising=False)
    assert bench.selected_nets() == bench.NETS
    monkeypatch.setenv("SINSEMI_BENCH_NETS", "paper")
    assert [row[1] for row in bench.selected_nets()] == [bench.WIDTH]
    monkeypatch.setenv("SINSEMI_BENCH_NETS", "quick, paper")
    assert bench.selected_nets() == bench.NETS
    monkeypatch.setenv("SINSEMI_BENCH_NETS", "papr")
    with pytest.raises(InputError, match="SINSEMI_BENCH_NETS='papr'"):
        bench.selected_nets()
