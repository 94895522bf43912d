"""StyleGAN2 synthesis (bridge.stylegan.sg2) against NVIDIA's own outputs and its documented behaviour.

The sg2_tiny fixture (tests/data/stylegan, README there) is an NVIDIA-written pickle with reference outputs
from NVIDIA's code; a faithful float32 implementation lands at float noise (~1e-6), far inside the
tolerance (w 1e-4, 40 dB), so the tests also pin a much tighter bound to catch subtle regressions.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bridge.stylegan import ops
from bridge.stylegan.generator import Generator
from bridge.stylegan.loader import load_network
from stylegan_cases import ROOT, assert_case_ok, case_ids, load_cases, psnr, run_case

SG2_CASES = [case for case in load_cases() if case["arch"] == "stylegan2"]
MANIFEST = json.loads((ROOT / "manifest.json").read_text())
SG2_MODEL = MANIFEST["models"]["sg2_tiny"]
TOP_LEVEL = ("z_dim", "w_dim", "c_dim", "img_resolution", "img_channels", "mapping_kwargs")


def manifest_config(model: dict = SG2_MODEL) -> dict:
    """The generator config straight from NVIDIA's recorded init kwargs (no pickle reader involved)."""
    kwargs = model["G_ema_init_kwargs"]
    return {"arch": model["arch"], **{k: kwargs[k] for k in TOP_LEVEL},
            "synthesis_kwargs": {k: v for k, v in kwargs.items() if k not in TOP_LEVEL}}


@pytest.fixture(scope="module")
def sg2_tiny() -> Generator:
    return load_network(ROOT / "sg2_tiny.pkl")


def small_config(architecture: str = "skip", **synthesis) -> dict:
    return {"arch": "stylegan2", "z_dim": 16, "w_dim": 16, "c_dim": 0, "img_resolution": 16, "img_channels": 3,
            "mapping_kwargs": {"num_layers": 2},
            "synthesis_kwargs": {"channel_base": 128, "channel_max": 16, "architecture": architecture, **synthesis}}


# ----------------------------------------------------------------------------------- NVIDIA's reference

def test_fixture_has_all_sg2_cases():
    assert {c["name"] for c in SG2_CASES} == {"sg2_tiny_base_psi1", "sg2_tiny_base_psi0.7", "sg2_tiny_const_mod",
                                              "sg2_tiny_stylemix"}


@pytest.mark.parametrize("case", SG2_CASES, ids=case_ids(SG2_CASES))
def test_fixture_case_matches_nvidia(sg2_tiny, case):
    result = run_case(sg2_tiny, case)
    assert_case_ok(result, case)
    # Float noise, not just "within tolerance": measured ~7e-7 (w) and ~138-141 dB (image).
    assert result["w_err"] <= 1e-5, result["w_err"]
    assert result["psnr"] >= 100, result["psnr"]


def test_unfused_modulation_matches_fused(sg2_tiny):
    """The non-fused route (the fast path's choice for fp16 batches) computes the same image."""
    case = next(c for c in SG2_CASES if c["name"] == "sg2_tiny_base_psi1")
    ref = np.load(ROOT / case["outputs"]["img"])
    ws = torch.from_numpy(np.load(ROOT / case["outputs"]["w"]))
    with torch.no_grad():
        img = sg2_tiny.synthesis(ws, noise_mode="const", fused_modconv=False)
    assert psnr(img.numpy(), ref) >= 100


# ------------------------------------------------------------------------------------------- structure

def test_tensor_names_kinds_shapes_and_order_match_nvidia():
    generator = Generator(manifest_config())
    ours = [[n, "param", list(t.shape), "float32"] for n, t in generator.named_parameters()]
    ours += [[n, "buffer", list(t.shape), "float32"] for n, t in generator.named_buffers()]
    assert ours == SG2_MODEL["tensors"]
    assert generator.num_ws == SG2_MODEL["num_ws"] == 8


def test_loads_snapshot_state_dict_strictly():
    from bridge.stylegan.pickle_reader import read_snapshot

    record = read_snapshot(ROOT / "sg2_tiny.pkl")["G_ema"]
    generator = Generator(manifest_config())
    generator.load_state_dict(record.state_dict(), strict=True)  # raises on any name/shape mismatch
    torch.testing.assert_close(generator.synthesis.b4.const, record.state_dict()["synthesis.b4.const"])


def test_uses_the_pickled_resample_filters(sg2_tiny):
    """conv0 and block filters drive the output; b4's and conv1's are unused (as in NVIDIA's code)."""
    ws = sg2_tiny.mapping(torch.randn(1, 64), None)
    base = sg2_tiny.synthesis(ws)

    def image_with(name: str) -> torch.Tensor:
        tensor = dict(sg2_tiny.named_buffers())[name]
        saved = tensor.clone()
        with torch.no_grad():
            tensor.mul_(1.5)
            try:
                return sg2_tiny.synthesis(ws)
            finally:
                tensor.copy_(saved)

    assert not torch.allclose(image_with("synthesis.b16.conv0.resample_filter"), base)
    assert not torch.allclose(image_with("synthesis.b16.resample_filter"), base)
    torch.testing.assert_close(image_with("synthesis.b16.conv1.resample_filter"), base, rtol=0, atol=0)
    torch.testing.assert_close(image_with("synthesis.b4.resample_filter"), base, rtol=0, atol=0)


def test_ada_layout_builds_the_same_tensor_names():
    """2-ADA pickles share the SG2 tensor names; their kwargs (flattened by the loader) build the same tree."""
    ada = manifest_config()
    ada["synthesis_kwargs"] = {"channel_base": 256, "channel_max": 32, "num_fp16_res": 4, "conv_clamp": 256,
                               "architecture": "skip"}
    ada["mapping_kwargs"] = {"num_layers": 2, "w_avg_beta": 0.995}
    names = lambda g: [(n, tuple(t.shape)) for n, t in list(g.named_parameters()) + list(g.named_buffers())]
    assert names(Generator(ada)) == names(Generator(manifest_config()))


# --------------------------------------------------------------------------------------- architectures

@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_architectures_render(architecture):
    generator = Generator.from_config(small_config(architecture), seed=3)
    blocks = generator.synthesis.blocks()
    assert generator.num_ws == 6  # 16 px: b4 one conv, b8 and b16 two, plus the final ToRGB
    assert [hasattr(b, "torgb") for b in blocks] == ([True] * 3 if architecture == "skip" else [False, False, True])
    assert [hasattr(b, "skip") for b in blocks] == ([False, True, True] if architecture == "resnet" else [False] * 3)
    with torch.no_grad():
        img = generator(torch.randn(2, 16), None)
    assert img.shape == (2, 3, 16, 16) and img.dtype == torch.float32 and torch.isfinite(img).all()


def test_architectures_give_different_images():
    z = torch.randn(1, 16, generator=torch.Generator().manual_seed(0))
    images = {}
    for architecture in ("orig", "skip", "resnet"):
        with torch.no_grad():
            images[architecture] = Generator.from_config(small_config(architecture), seed=3)(z, None)
    assert not torch.allclose(images["orig"], images["skip"], atol=1e-3)
    assert not torch.allclose(images["resnet"], images["skip"], atol=1e-3)


def test_resnet_block_adds_its_skip_path_scaled_by_sqrt_half():
    """With conv1 silenced, a resnet block outputs exactly its 1x1 up-sampling skip conv times sqrt(0.5)."""
    generator = Generator.from_config(small_config("resnet"), seed=4)
    block = generator.synthesis.b8
    with torch.no_grad():
        block.conv1.weight.zero_()
        block.conv1.bias.zero_()
    seen = {}
    block.register_forward_hook(lambda mod, args, out: seen.update(x_in=args[0], x_out=out[0]))
    with torch.no_grad():
        generator(torch.randn(1, 16), None, noise_mode="none")
        skip = block.skip
        expected = ops.conv2d_resample(seen["x_in"], skip.weight * skip.weight_gain, f=skip.resample_filter, up=2,
                                       flip_weight=False) * np.sqrt(0.5)
    assert seen["x_out"].abs().max() > 0
    torch.testing.assert_close(seen["x_out"], expected, rtol=1e-5, atol=1e-6)


def test_bad_architecture_is_refused():
    with pytest.raises(ValueError, match="architecture"):
        Generator(small_config("unet"))


# ------------------------------------------------------------------------------------------------ noise

def test_noise_modes(sg2_tiny):
    ws = sg2_tiny.mapping(torch.randn(2, 64, generator=torch.Generator().manual_seed(5)), None)
    with torch.no_grad():
        const_a, const_b = sg2_tiny.synthesis(ws, noise_mode="const"), sg2_tiny.synthesis(ws, noise_mode="const")
        rand_a, rand_b = sg2_tiny.synthesis(ws, noise_mode="random"), sg2_tiny.synthesis(ws, noise_mode="random")
        none = sg2_tiny.synthesis(ws, noise_mode="none")
    assert torch.equal(const_a, const_b)                      # const: deterministic
    assert not torch.allclose(rand_a, rand_b, atol=1e-4)      # random: fresh noise every call
    assert not torch.allclose(none, const_a, atol=1e-4)       # none: no noise at all
    assert not torch.allclose(rand_a, const_a, atol=1e-4)
    with torch.no_grad():
        torch.manual_seed(9)
        seeded_a = sg2_tiny.synthesis(ws, noise_mode="random")
        torch.manual_seed(9)
        seeded_b = sg2_tiny.synthesis(ws, noise_mode="random")
    assert torch.equal(seeded_a, seeded_b)                    # random noise follows torch's seed


def test_zero_noise_strength_makes_modes_agree():
    generator = Generator.from_config(small_config(), seed=1)  # NVIDIA init: noise_strength 0
    ws = generator.mapping(torch.randn(1, 16), None)
    with torch.no_grad():
        images = [generator.synthesis(ws, noise_mode=m) for m in ("const", "random", "none")]
    torch.testing.assert_close(images[0], images[1], rtol=0, atol=0)
    torch.testing.assert_close(images[0], images[2], rtol=0, atol=0)


def test_bad_inputs_raise_clear_errors(sg2_tiny):
    ws = torch.zeros(1, sg2_tiny.num_ws, 64)
    with pytest.raises(ValueError, match="noise_mode"):
        sg2_tiny.synthesis(ws, noise_mode="loud")
    with pytest.raises(ValueError, match=r"ws must have shape \(N, 8, 64\)"):
        sg2_tiny.synthesis(torch.zeros(1, 7, 64))
    with pytest.raises(ValueError, match="power of two"):
        Generator({**small_config(), "img_resolution": 24})


# ---------------------------------------------------------------------------------------- GPU fast path

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fast_path_matches_plain_within_fp16_tolerance():
    config = {"arch": "stylegan2", "z_dim": 512, "w_dim": 512, "c_dim": 0, "img_resolution": 256,
              "img_channels": 3, "mapping_kwargs": {}, "synthesis_kwargs": {"channel_base": 16384, "channel_max": 512}}
    plain = Generator.from_config(config, seed=0).cuda()
    fast = Generator.from_config(config, seed=0, fast=True).cuda()
    assert any(b.use_fp16 for b in fast.synthesis.blocks())
    z = torch.randn(4, 512, generator=torch.Generator().manual_seed(0)).cuda()
    with torch.no_grad():
        for batch in (1, 4):  # batch 1 runs fused fp16 convs, batch 4 the non-fused route
            ref = plain(z[:batch], None, truncation_psi=0.7).float().cpu()
            got = fast(z[:batch], None, truncation_psi=0.7).float().cpu()
            assert got.dtype == torch.float32 and torch.isfinite(got).all()
            span = float(ref.max() - ref.min())
            assert float((got - ref).abs().max()) <= 0.05 * span
            assert psnr(got.numpy() / span * 2, ref.numpy() / span * 2) >= 35
        # A tensor edited in place between frames is seen by the fast path (its caches follow versions).
        fast.synthesis.b256.conv1.weight.mul_(-1)
        plain.synthesis.b256.conv1.weight.mul_(-1)
        ref = plain(z[:1], None).float().cpu()
        got = fast(z[:1], None).float().cpu()
        assert float((got - ref).abs().max()) <= 0.05 * float(ref.max() - ref.min())


def test_fast_path_logic_on_cpu_fp16(monkeypatch):
    """Where no GPU exists, run the fast path's fp16/channels_last code on CPU to pin its logic (not speed)."""
    from bridge.stylegan import sg2

    monkeypatch.setattr(sg2, "FAST_DEVICE_TYPES", ("cuda", "cpu"))
    config = small_config(num_fp16_res=2)
    plain = Generator.from_config(config, seed=2)
    fast = Generator.from_config(config, seed=2, fast=True)
    assert [b.use_fp16 for b in fast.synthesis.blocks()] == [False, True, True]
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for batch in (1, 3):
            ref, got = plain(z[:batch], None), fast(z[:batch], None)
            assert got.dtype == torch.float32
            assert float((got - ref).abs().max()) <= 0.02 * float(ref.abs().max()), batch
            assert not torch.equal(got, ref)  # fp16 really ran
        for g in (plain, fast):  # an in-place edit must reach the cached fp16 weight on the next frame
            g.synthesis.b16.conv1.weight.mul_(-1)
        ref, got = plain(z[:1], None), fast(z[:1], None)
    assert float((got - ref).abs().max()) <= 0.02 * float(ref.abs().max())
    fast.set_fast(False)
    with torch.no_grad():
        torch.testing.assert_close(fast(z[:1], None), ref, rtol=0, atol=0)
