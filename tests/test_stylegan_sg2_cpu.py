"""StyleGAN2's CPU fast path (bridge.stylegan.sg2_cpu) against the plain ops it replaces.

Each rearranged op is checked against its plain counterpart on its own (both memory formats where the path
takes both), then whole networks: the NVIDIA fixture (perturbed, non-separable filters), and small random
networks with the size thresholds lowered so that every branch (Winograd, bands, channels-last up-convs) runs.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bridge.stylegan import ops, sg2_cpu, winograd
from bridge.stylegan.generator import Generator
from bridge.stylegan.loader import load_network
from stylegan_cases import ROOT, assert_case_ok, case_ids, load_cases, psnr, run_case_fast

CL = torch.channels_last
SG2_CASES = [case for case in load_cases() if case["arch"] == "stylegan2"]


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _close(got, ref, rtol=1e-5):
    scale = float(ref.abs().max())
    assert float((got - ref).abs().max()) <= rtol * scale + 1e-6, float((got - ref).abs().max()) / scale


# ------------------------------------------------------------------------------------------------------ ops

def test_demod_coefficients_equal_the_5d_formula():
    weight, styles = _rand(6, 5, 3, 3), _rand(5, seed=1)
    ref = ((weight * styles.reshape(1, -1, 1, 1)).square().sum(dim=[1, 2, 3]) + 1e-8).rsqrt()
    _close(sg2_cpu.demod_coefficients(sg2_cpu.squared_weight_sums(weight), styles), ref)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("kernel", [3, 2, 4])
def test_upconv_phases_then_blur_equal_conv2d_resample(channels_last, kernel, monkeypatch):
    """The four phase convolutions, interleaved into a padded buffer and blurred, give conv2d_resample's
    stride-2 transposed conv + FIR (kernels of 2 taps and up, any 4x4 filter, here not a separable one)."""
    monkeypatch.setattr(sg2_cpu, "CHANNELS_LAST_MIN", 1 if channels_last else 10 ** 6)
    x, weight, f = _rand(1, 5, 6, 7), _rand(4, 5, kernel, kernel, seed=1), torch.rand(4, 4) + 0.1
    padding = kernel // 2
    ref = ops.conv2d_resample(x, weight, f=f, up=2, padding=padding, flip_weight=False)
    fw = 4  # the blur's width; its padding as SynthesisLayer._up_blur_padding computes it
    pad = padding + (fw + 1) // 2 - (kernel - 1)
    assert pad == padding + (fw - 2) // 2 - (kernel - 2)
    buf = sg2_cpu.upconv_phases(x, sg2_cpu.phase_kernels(weight), kernel, kernel, pad, sg2_cpu.Scratch())
    assert sg2_cpu.memory_format_of(buf) == (CL if channels_last else torch.contiguous_format)
    got = F.conv2d(buf, sg2_cpu.depthwise_filter(f, 4, 4.0), groups=4)
    assert got.shape == ref.shape
    _close(got, ref)


@pytest.mark.parametrize("channels_last", [False, True])
def test_pointwise_and_torgb_equal_a_1x1_conv(channels_last):
    x, weight, bias = _rand(1, 6, 5, 4), _rand(3, 6, 1, 1, seed=1), _rand(3, seed=2)
    if channels_last:
        x = x.contiguous(memory_format=CL)
    _close(sg2_cpu.pointwise(x, weight[:, :, 0, 0]), F.conv2d(x, weight))
    _close(sg2_cpu.torgb(x, weight, bias, clamp=0.5), F.conv2d(x, weight, bias).clamp(-0.5, 0.5))


@pytest.mark.parametrize("f", [torch.tensor([1.0, 3.0, 3.0, 1.0]), torch.rand(4) + 0.1, torch.rand(4, 4) + 0.1])
def test_upsample_image_equals_upsample2d(f):
    img = _rand(1, 3, 8, 6)
    _close(sg2_cpu.upsample_image(img, f), ops.upsample2d(img, f))


@pytest.mark.parametrize("channels_last", [False, True])
def test_winograd_conv_equals_conv_bias_noise_lrelu_clamp(channels_last):
    x, weight, bias, noise = _rand(1, 7, 12, 8), _rand(5, 7, 3, 3, seed=1), _rand(5, seed=2), _rand(12, 8, seed=3)
    if channels_last:
        x = x.contiguous(memory_format=CL)
    ref = ops.bias_act(F.conv2d(x, weight, padding=1) + noise, bias, act="lrelu", gain=1.0, clamp=2.0)
    scratch = sg2_cpu.Scratch()
    for _ in range(2):  # the second call reuses the work buffers
        got = sg2_cpu.winograd_conv3x3_(x, sg2_cpu.winograd_weight(weight), bias, noise, "lrelu", 0.2, 2.0, scratch)
        _close(got, ref, rtol=1e-4)  # F(4x4, 3x3) rounds a little more than a direct conv
    s_in, s_out = torch.rand(7) + 0.5, torch.rand(5) + 0.5  # a modulated conv's styles and demodulation
    ref = ops.bias_act(F.conv2d(x * s_in.reshape(1, -1, 1, 1), weight, padding=1) * s_out.reshape(1, -1, 1, 1)
                       + noise, bias, act="lrelu", gain=1.0, clamp=2.0)
    got = sg2_cpu.winograd_conv3x3_(x, sg2_cpu.winograd_weight(weight), bias, noise, "lrelu", 0.2, 2.0, scratch,
                                    in_scale=s_in, out_scale=s_out)
    _close(got, ref, rtol=1e-4)


def test_banded_conv_equals_whole_conv():
    x, weight, bias, noise = _rand(1, 4, 9, 6), _rand(3, 4, 3, 3, seed=1), _rand(3, seed=2), _rand(9, 6, seed=3)
    ref = ops.bias_act(F.conv2d(x, weight, padding=1) + noise, bias, act="lrelu", gain=1.0, clamp=1.5)
    src = sg2_cpu.padded_copy(x, 1, sg2_cpu.Scratch(), "in")
    got = sg2_cpu.banded_conv_(src, weight, bias, 1, torch.empty(1, 3, 9, 6), noise, "lrelu", 0.2, 1.5, rows=2)
    _close(got, ref)


# ------------------------------------------------------------------------------------------------- networks

@pytest.fixture(scope="module")
def sg2_tiny() -> Generator:
    return load_network(ROOT / "sg2_tiny.pkl")


def _both(generator: Generator, ws: torch.Tensor, noise_mode: str = "const") -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        generator.set_fast(False)
        ref = generator.synthesis(ws, noise_mode=noise_mode)
        generator.set_fast(True)
        try:
            got = generator.synthesis(ws, noise_mode=noise_mode)
        finally:
            generator.set_fast(False)
    return got, ref


def _ws(generator: Generator, seed: int, n: int = 1) -> torch.Tensor:
    with torch.no_grad():
        return generator.mapping(_rand(n, generator.z_dim, seed=seed), None, truncation_psi=0.7)


@pytest.mark.parametrize("case", SG2_CASES, ids=case_ids(SG2_CASES))
def test_fast_path_matches_nvidia_fixture_cases(sg2_tiny, case):
    """NVIDIA's reference cases (edited filters, noise modes, const overrides) through the fast path."""
    result = run_case_fast(sg2_tiny, case)
    assert_case_ok(result, case)
    assert result["psnr"] >= 100, result["psnr"]


@pytest.mark.parametrize("noise_mode", ["const", "none"])
def test_fast_path_equals_plain_on_the_fixture(sg2_tiny, noise_mode):
    got, ref = _both(sg2_tiny, _ws(sg2_tiny, 0), noise_mode)
    assert psnr(got.numpy(), ref.numpy()) >= 110


def _wide(architecture: str = "skip") -> Generator:
    config = {"arch": "stylegan2", "z_dim": 16, "w_dim": 16, "c_dim": 0, "img_resolution": 32, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 2},
              "synthesis_kwargs": {"channel_base": 256, "channel_max": 16, "architecture": architecture}}
    generator = Generator.from_config(config, seed=4)
    with torch.no_grad():
        for module in generator.synthesis.modules():
            if getattr(module, "use_noise", False):
                module.noise_strength.fill_(0.3)
    return generator


@pytest.mark.parametrize("architecture", ["skip", "resnet", "orig"])
def test_every_branch_equals_plain(monkeypatch, architecture):
    """Thresholds lowered so a 32 px network takes Winograd, bands and channels-last up-convs; two frames
    with different styles, so reused work buffers must not leak one frame into the next."""
    monkeypatch.setattr(sg2_cpu, "winograd_applies", lambda weight, x, padding: tuple(weight.shape[2:]) == (3, 3)
                        and padding == 1 and x.shape[2] % 4 == 0 and x.shape[3] % 4 == 0 and x.shape[2] >= 16)
    monkeypatch.setattr(sg2_cpu, "BANDED_MIN_BYTES", 0)
    monkeypatch.setattr(sg2_cpu, "BAND_BYTES", 4 * 16 * 32 * 3)  # 3 rows a band at 32 px: a ragged last band
    monkeypatch.setattr(winograd, "STRIP_TILES", 1)  # one tile row a strip
    monkeypatch.setattr(sg2_cpu, "CHANNELS_LAST_MIN", 8)
    generator = _wide(architecture)
    for seed in (0, 1):
        got, ref = _both(generator, _ws(generator, seed))
        assert psnr(got.numpy(), ref.numpy()) >= 110, seed


def test_batches_and_autograd_take_the_plain_route(sg2_tiny):
    ws = _ws(sg2_tiny, 2, n=3)
    got, ref = _both(sg2_tiny, ws)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_in_place_weight_edits_reach_the_fast_path():
    generator = _wide()
    ws = _ws(generator, 3)
    _both(generator, ws)  # fill the caches
    with torch.no_grad():
        generator.synthesis.b32.conv1.weight.mul_(-1)
        generator.synthesis.b16.conv0.weight.mul_(0.5)
    got, ref = _both(generator, ws)
    assert psnr(got.numpy(), ref.numpy()) >= 110


def test_demo_network_fast_equals_plain():
    from bridge.stylegan.generator import demo_config

    generator = Generator.from_config(demo_config(), seed=0)
    got, ref = _both(generator, _ws(generator, 0))
    assert psnr(got.numpy(), ref.numpy()) >= 110


def test_work_buffers_follow_inference_mode(sg2_tiny):
    """The engine renders under inference_mode; a buffer made there cannot be written outside it (and back)."""
    ws = _ws(sg2_tiny, 4)
    sg2_tiny.set_fast(True)
    try:
        with torch.inference_mode():
            first = sg2_tiny.synthesis(ws)
        with torch.no_grad():
            second = sg2_tiny.synthesis(ws)
        with torch.inference_mode():
            third = sg2_tiny.synthesis(ws)
    finally:
        sg2_tiny.set_fast(False)
    torch.testing.assert_close(second, first.clone(), rtol=0, atol=0)
    torch.testing.assert_close(third, first, rtol=0, atol=0)
