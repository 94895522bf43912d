"""StyleGAN3 (-T, -R) synthesis against NVIDIA's own outputs, structure, transforms and the fast path.

Real data: the fixture pickles in tests/data/stylegan (tiny, perturbed networks NVIDIA's code pickled and ran).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bridge.stylegan import Generator, load_network, read_snapshot, sg3
from bridge.stylegan.sg3 import (SynthesisLayer, SynthesisNetwork, filtered_lrelu_fast, filtered_lrelu_reference,
                                 synthesis_layout)
from conftest import STYLEGAN_FIXTURES
from stylegan_cases import assert_case_ok, case_ids, load_cases, load_manifest, psnr, run_case, run_case_fast

SG3_CASES = [c for c in load_cases() if c["arch"] == "stylegan3"]
SG3_MODELS = ("sg3t_tiny", "sg3r_tiny")
MANIFEST = load_manifest()


@pytest.fixture(scope="module")
def networks() -> dict:
    """Each fixture pickle loaded once (cases restore what they override)."""
    return {m: load_network(STYLEGAN_FIXTURES / f"{m}.pkl") for m in SG3_MODELS}


def _config(model: str) -> dict:
    kwargs = dict(MANIFEST["models"][model]["G_ema_init_kwargs"])
    top = {k: kwargs.pop(k) for k in ("z_dim", "w_dim", "c_dim", "img_resolution", "img_channels")}
    return {"arch": "stylegan3", **top, "mapping_kwargs": kwargs.pop("mapping_kwargs"), "synthesis_kwargs": kwargs}


def _ws(generator, seed: int, n: int = 1) -> torch.Tensor:
    z = torch.from_numpy(np.random.RandomState(seed).randn(n, generator.z_dim))
    z = z.to(next(generator.parameters()).device)
    with torch.no_grad():
        return generator.mapping(z, None)


# ------------------------------------------------------------------------------ NVIDIA's outputs

def test_all_eight_sg3_cases_are_present():
    assert len(SG3_CASES) == 8
    assert {c["model"] for c in SG3_CASES} == set(SG3_MODELS)


@pytest.mark.parametrize("case", SG3_CASES, ids=case_ids(SG3_CASES))
def test_plain_path_matches_nvidia(networks, case):
    result = run_case(networks[case["model"]], case)
    assert_case_ok(result, case)
    # A faithful float32 implementation lands at float noise (measured ~126-146 dB, max err <= 7e-6).
    assert np.max(np.abs(result["img"] - result["img_ref"])) < 1e-4
    assert result["psnr"] > 100


@pytest.mark.parametrize("case", SG3_CASES, ids=case_ids(SG3_CASES))
def test_fast_path_on_cpu_matches_nvidia_too(networks, case):
    """On CPU the fast path stays float32: polyphase/strided resampling must give the same numbers."""
    generator = networks[case["model"]]
    result = run_case_fast(generator, case)
    assert_case_ok(result, case)
    assert np.max(np.abs(result["img"] - result["img_ref"])) < 1e-4


# ------------------------------------------------------------------------------------ structure

def _same(ours, stored) -> bool:
    """Exact for ints, bools, sizes and padding; floats to 1e-12 relative (numpy's vectorised pow may round
    the geometric cutoff progression 1 ulp differently from the numpy that wrote the pickle)."""
    if isinstance(stored, (float, np.floating)) and not isinstance(stored, bool):
        return math.isclose(float(ours), float(stored), rel_tol=1e-12)
    return np.array_equal(np.asarray(ours), np.asarray(stored))


@pytest.mark.parametrize("model", SG3_MODELS)
def test_derived_geometry_equals_the_attributes_nvidia_pickled(model):
    """Every derived number NVIDIA stored (sizes, rates, cutoffs, factors, taps, padding...) is ours exactly."""
    record = read_snapshot(STYLEGAN_FIXTURES / f"{model}.pkl")["G_ema"].modules["synthesis"]
    net = SynthesisNetwork(**record.init_kwargs)
    for key in ("num_ws", "img_resolution", "img_channels", "num_layers", "num_critical", "margin_size",
                "output_scale", "num_fp16_res", "layer_names"):
        assert getattr(net, key) == record.attrs[key], key
    for key, value in record.modules["input"].attrs.items():
        assert _same(getattr(net.input, key), value), f"input.{key}"
    compared = 0
    for name in record.attrs["layer_names"]:
        layer, stored = getattr(net, name), record.modules[name].attrs
        for key, value in stored.items():
            ours = getattr(layer, key)
            assert _same(ours, value), f"{name}.{key}: {ours} != {value}"
            compared += 1
    assert compared >= 15 * 20  # the stored attribute set really was walked


@pytest.mark.parametrize("model", SG3_MODELS)
def test_from_config_gives_the_pickles_tensor_names_and_shapes_in_order(model):
    generator = Generator.from_config(_config(model), seed=1)
    ours = [[n, "param", list(t.shape)] for n, t in generator.named_parameters()]
    ours += [[n, "buffer", list(t.shape)] for n, t in generator.named_buffers()]
    table = [row[:3] for row in MANIFEST["models"][model]["tensors"]]
    assert ours == table
    assert generator.num_ws == MANIFEST["models"][model]["num_ws"]
    # and the pickle loads into it strictly (load_network would fail otherwise, but say it directly)
    state = read_snapshot(STYLEGAN_FIXTURES / f"{model}.pkl")["G_ema"].state_dict()
    generator.load_state_dict(state, strict=True)


def test_full_size_sg3r_1024_matches_nvidias_published_layer_table():
    """NVIDIA's training log of stylegan3-r at 1024 (cbase 65536, cmax 1024) lists, per layer: name, own
    parameters, buffers, output shape and dtype (fp16 from L5 on). Ours must agree row by row."""
    torch.manual_seed(0)
    net = SynthesisNetwork(w_dim=512, img_resolution=1024, img_channels=3, channel_base=65536, channel_max=1024,
                           conv_kernel=1, use_radial_filters=True)
    table = [  # name, params (excluding affine), buffers, output (C, size), fp16
        ("L0_36_1024", 1049600, 157, 1024, 36, False), ("L1_36_1024", 1049600, 157, 1024, 36, False),
        ("L2_52_1024", 1049600, 169, 1024, 52, False), ("L3_52_1024", 1049600, 157, 1024, 52, False),
        ("L4_84_1024", 1049600, 169, 1024, 84, False), ("L5_148_1024", 1049600, 169, 1024, 148, True),
        ("L6_148_1024", 1049600, 157, 1024, 148, True), ("L7_276_645", 661125, 169, 645, 276, True),
        ("L8_276_406", 262276, 157, 406, 276, True), ("L9_532_256", 104192, 169, 256, 532, True),
        ("L10_1044_161", 41377, 169, 161, 1044, True), ("L11_1044_102", 16524, 157, 102, 1044, True),
        ("L12_1044_64", 6592, 25, 64, 1044, True), ("L13_1024_64", 4160, 25, 64, 1024, True),
        ("L14_1024_3", 195, 1, 3, 1024, True),
    ]
    assert net.layer_names == [row[0] for row in table]
    for name, params, buffers, channels, size, fp16 in table:
        layer = getattr(net, name)
        assert sum(p.numel() for p in layer.parameters(recurse=False)) == params, name
        assert sum(b.numel() for b in layer.buffers(recurse=False)) == buffers, name
        assert (layer.out_channels, layer.out_size) == (channels, (size, size)), name
        assert layer.use_fp16 == fp16, name
    assert sum(p.numel() for p in net.input.parameters(recurse=False)) == 1048576
    assert sum(b.numel() for b in net.input.buffers()) == 3081
    assert net.num_ws == 16


def test_sg3t_1024_layout_names():
    """stylegan3-t at 1024 (cbase 32768, cmax 512): layer names seen in public checkpoints."""
    _, specs = synthesis_layout(1024, 3)
    names = [s.name for s in specs]
    assert names[0] == "L0_36_512" and names[-1] == "L14_1024_3"
    assert {"L9_532_128", "L10_1044_81", "L11_1044_51", "L13_1024_32"} <= set(names)


def test_random_init_designs_the_filters_from_the_layer_geometry():
    """from_config filters are the Kaiser designs (the fixtures' are perturbed: a loaded net keeps those)."""
    from bridge.stylegan.filters import design_lowpass_filter

    generator = Generator.from_config(_config("sg3r_tiny"), seed=3)
    loaded = load_network(STYLEGAN_FIXTURES / "sg3r_tiny.pkl")
    for layer, pickled in zip(generator.synthesis.layers(), loaded.synthesis.layers()):
        if layer.is_torgb:
            assert layer.up_filter is None and layer.down_filter is None
            continue
        up = design_lowpass_filter(layer.up_taps, layer.in_cutoff, layer.in_half_width * 2, layer.tmp_sampling_rate)
        down = design_lowpass_filter(layer.down_taps, layer.out_cutoff, layer.out_half_width * 2,
                                     layer.tmp_sampling_rate, radial=layer.down_radial)
        assert torch.allclose(layer.up_filter, torch.as_tensor(up, dtype=torch.float32), atol=1e-7)
        assert torch.allclose(layer.down_filter, torch.as_tensor(down, dtype=torch.float32), atol=1e-7)
        assert layer.down_filter.ndim == (2 if layer.down_radial else 1)
        assert not torch.allclose(pickled.down_filter, layer.down_filter, atol=1e-4)  # stored values win


# --------------------------------------------------------------------------------- the transform

def _user_matrix(angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[math.cos(a), math.sin(a), tx], [-math.sin(a), math.cos(a), ty], [0, 0, 1]])


@pytest.mark.parametrize("model", SG3_MODELS)
def test_set_user_transform_writes_the_inverse_the_fixture_expects(networks, model):
    net = networks[model].synthesis.input
    saved = net.transform.clone()
    try:
        net.set_user_transform(_user_matrix(-20, -0.07, 0.12))
        expected = np.load(STYLEGAN_FIXTURES / "inputs" / f"{model}_transform.npy")
        np.testing.assert_allclose(net.transform.numpy(), expected, atol=1e-7)
    finally:
        net.transform.copy_(saved)


def test_bad_user_transform_is_refused_and_changes_nothing(networks):
    net = networks["sg3t_tiny"].synthesis.input
    before = net.transform.clone()
    for bad in (np.zeros((3, 3)), np.eye(2), np.full((3, 3), np.nan)):
        with pytest.raises(ValueError):
            net.set_user_transform(bad)
        assert torch.equal(net.transform, before)


@pytest.mark.parametrize("model", SG3_MODELS)
def test_rotation_changes_the_image_and_identity_is_stable(networks, model):
    generator = networks[model]
    ws = _ws(generator, 7)
    with torch.no_grad():
        eye = generator.synthesis(ws, transform=torch.eye(3))
        again = generator.synthesis(ws, transform=torch.eye(3))
        rotated = generator.synthesis(ws, transform=torch.as_tensor(np.linalg.inv(_user_matrix(30, 0, 0)),
                                                                    dtype=torch.float32))
    assert torch.equal(eye, again)
    assert psnr(rotated.numpy(), eye.numpy()) < 30  # a real change, far beyond float noise


def test_per_sample_transform_equals_separate_calls(networks):
    generator = networks["sg3t_tiny"]
    ws = _ws(generator, 8, n=2)
    transforms = torch.stack([torch.eye(3), torch.as_tensor(np.linalg.inv(_user_matrix(15, 0.1, 0)),
                                                            dtype=torch.float32)])
    with torch.no_grad():
        both = generator.synthesis(ws, transform=transforms)
        first = generator.synthesis(ws[:1], transform=transforms[0])
        second = generator.synthesis(ws[1:], transform=transforms[1])
    # the batch shares one style RMS in modulated_conv2d (as NVIDIA's), so allow float noise
    torch.testing.assert_close(both, torch.cat([first, second]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dx, dy", [(4, 0), (0, -3)])
def test_translating_the_input_shifts_sg3t_content(dx, dy):
    """Translation equivariance (the point of StyleGAN3-T): a user translation of k / img_resolution image
    units moves the picture by k pixels (x right, y down). Checked in the interior (borders see new content).
    Measured: the shifted comparison is ~70x closer than the unshifted one; the wrong direction is worse."""
    generator = Generator.from_config(_config("sg3t_tiny"), seed=5)
    ws = _ws(generator, 9)
    res = generator.img_resolution
    shift = torch.as_tensor(np.linalg.inv(_user_matrix(0, dx / res, dy / res)), dtype=torch.float32)
    with torch.no_grad():
        base = generator.synthesis(ws, transform=torch.eye(3))[0].numpy()
        moved = generator.synthesis(ws, transform=shift)[0].numpy()
    m = 6
    inner = moved[:, m:res - m, m:res - m]
    expected = base[:, m - dy:res - m - dy, m - dx:res - m - dx]  # the content that was (dx, dy) pixels back
    err_shifted = np.sqrt(np.mean((inner - expected) ** 2))
    err_unshifted = np.sqrt(np.mean((inner - base[:, m:res - m, m:res - m]) ** 2))
    assert err_shifted < 0.05 * err_unshifted, (err_shifted, err_unshifted)


# ----------------------------------------------------------------------------------- bad input

def test_bad_inputs_give_clear_errors(networks):
    synthesis = networks["sg3t_tiny"].synthesis
    with pytest.raises(ValueError, match="ws must have shape"):
        synthesis(torch.zeros(1, synthesis.num_ws - 1, synthesis.w_dim))
    with pytest.raises(ValueError, match="noise_mode"):
        synthesis(torch.zeros(1, synthesis.num_ws, synthesis.w_dim), noise_mode="loud")
    with pytest.raises(ValueError, match="transform must have shape"):
        synthesis(torch.zeros(2, synthesis.num_ws, synthesis.w_dim), transform=torch.eye(3).repeat(3, 1, 1))
    layer = synthesis.layers()[0]
    with pytest.raises(ValueError, match="expected x"):
        layer(torch.zeros(1, layer.in_channels + 1, 36, 36), torch.zeros(1, synthesis.w_dim))


def test_unknown_training_kwargs_are_ignored_but_layer_kwargs_are_used():
    net = SynthesisNetwork(w_dim=16, img_resolution=16, img_channels=3, channel_base=64, channel_max=8,
                           fused_modconv_default="inference_only", conv_kernel=1, conv_clamp=None)
    assert all(layer.conv_kernel == 1 and layer.conv_clamp is None for layer in net.layers())


# ------------------------------------------------------------------------------------ fast path

@pytest.mark.parametrize("band_rows", [1, 3, 1000])
def test_filtered_lrelu_fast_equals_reference_on_odd_geometries(monkeypatch, band_rows):
    """Negative and positive padding, up 1/2/4, down 1/2, 1-D and 2-D down filters, no filters at all; on the
    CPU in bands of 1 and 3 output rows (halos, bands that lie in the padding) and in one band."""
    monkeypatch.setattr(sg3, "BAND_BYTES", 0)
    monkeypatch.setattr(sg3, "GEMM_BAND_BYTES", 0)
    monkeypatch.setattr(sg3, "MIN_BAND_ROWS", band_rows)
    gen = torch.Generator().manual_seed(0)
    layer = SynthesisLayer(w_dim=4, is_torgb=False, is_critically_sampled=False, use_fp16=False, in_channels=3,
                           out_channels=3, in_size=20, out_size=20, in_sampling_rate=16, out_sampling_rate=16,
                           in_cutoff=4, out_cutoff=4, in_half_width=4, out_half_width=4)
    for up, down, padding, radial, none in [(2, 2, [9, 8, 9, 8], False, False), (4, 2, [-6, -9, -2, -5], True, False),
                                            (2, 2, [-11, -12, 3, 1], False, False), (1, 1, [0, 0, 0, 0], False, True),
                                            (2, 1, [5, 6, 7, 4], True, False)]:
        fu = None if none else torch.randn(6 * up, generator=gen)
        fd = None if none or down == 1 and not radial else (
            torch.randn(12, 12, generator=gen) if radial else torch.randn(12, generator=gen))
        layer.up_filter, layer.down_filter, layer.up_factor, layer.out_channels = fu, fd, up, 3
        x = torch.randn(2, 3, 24, 26, generator=gen)
        b = None if none else torch.randn(3, generator=gen)
        given = x.clone()
        ref = filtered_lrelu_reference(x, fu, fd, b, up=up, down=down, padding=padding, clamp=1.5)
        filters = layer._fast_filters(x.device, torch.float32)
        fast = filtered_lrelu_fast(x, filters, b, up=up, down=down, padding=padding, gain=math.sqrt(2),
                                   slope=0.2, clamp=1.5)
        assert torch.equal(x, given)  # in-place work only ever touches its own intermediates
        assert fast.shape == ref.shape, (up, down, padding)
        scale = float(ref.abs().max())  # random, unnormalised filters: values reach ~10, compare relatively
        torch.testing.assert_close(fast, ref, atol=2e-6 * scale, rtol=0)


@pytest.mark.parametrize("case", SG3_CASES, ids=case_ids(SG3_CASES))
def test_fast_path_with_winograd_and_small_bands_matches_nvidia(monkeypatch, networks, case):
    """The CPU fast path's Winograd convolution (normally only on layers >= 256 channels wide) and its
    banded filtered lrelu (normally bands of several MB) forced onto the tiny fixtures."""
    monkeypatch.setattr(sg3, "WINOGRAD_MIN_CHANNELS", 0)
    monkeypatch.setattr(sg3, "BAND_BYTES", 0)
    monkeypatch.setattr(sg3, "GEMM_BAND_BYTES", 0)
    monkeypatch.setattr(sg3, "MIN_BAND_ROWS", 3)
    generator = networks[case["model"]]
    result = run_case_fast(generator, case)
    assert_case_ok(result, case)
    assert np.max(np.abs(result["img"] - result["img_ref"])) < 1e-4


@pytest.mark.parametrize("model", SG3_MODELS)
def test_half_precision_fast_path_runs_on_cpu_within_fp16_tolerance(networks, model):
    """The fp16 code path (normally CUDA only) forced on CPU: same picture within fp16 rounding."""
    generator = networks[model]
    ws = _ws(generator, 10, n=2)
    with torch.no_grad():
        plain = generator.synthesis(ws)
        generator.synthesis.set_fast(True, dtype=torch.float16)
        try:
            half = generator.synthesis(ws)
            forced = generator.synthesis(ws, force_fp32=True)
        finally:
            generator.set_fast(False)
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    assert psnr(half.numpy(), plain.numpy()) > 50
    assert not torch.equal(half, plain)  # fp16 really ran
    torch.testing.assert_close(forced, plain, atol=1e-5, rtol=1e-5)


def test_fast_path_sees_parameter_edits_on_the_next_frame(networks):
    """Cached (hoisted) tensors must not hide a manipulation: edit a weight and a filter in place."""
    generator = networks["sg3t_tiny"]
    layer = generator.synthesis.layers()[3]
    ws = _ws(generator, 11)
    saved = (layer.weight.detach().clone(), layer.down_filter.clone())
    generator.set_fast(True)
    try:
        with torch.no_grad():
            generator.synthesis(ws)  # fill the caches
            layer.weight.mul_(-1.0)
            layer.down_filter.mul_(0.5)
            fast = generator.synthesis(ws)
            generator.set_fast(False)
            plain = generator.synthesis(ws)
    finally:
        generator.set_fast(False)
        with torch.no_grad():
            layer.weight.copy_(saved[0])
            layer.down_filter.copy_(saved[1])
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


def test_switching_the_fast_path_on_keeps_its_derived_weights_and_off_frees_them(networks):
    """Why SG3's first fast frame after plain frames was slow (issue 16): set_fast cleared the derived weights
    (Winograd kernels, filters) both ways. Switching on must keep them; switching off frees them."""
    generator = networks["sg3t_tiny"]
    layer = generator.synthesis.layers()[3]
    ws = _ws(generator, 12)
    try:
        generator.set_fast(True)
        with torch.no_grad():
            generator.synthesis(ws)
        derived = dict(layer._cache._entries)
        assert derived
        generator.set_fast(True)
        assert layer._cache._entries == derived  # the very same tensors, not rebuilt
        generator.set_fast(False)
        assert not layer._cache._entries and not generator.synthesis.input._cache._entries
    finally:
        generator.set_fast(False)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("model", SG3_MODELS)
def test_cuda_fast_path_equals_plain_within_fp16_tolerance(model):
    generator = load_network(STYLEGAN_FIXTURES / f"{model}.pkl", device="cuda")
    ws = _ws(generator, 12, n=2)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # TF32 convolutions would round like fp16 and hide the comparison
    try:
        with torch.no_grad():
            plain = generator.synthesis(ws)
            generator.set_fast(True)
            fast = generator.synthesis(ws)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    cpu = load_network(STYLEGAN_FIXTURES / f"{model}.pkl")
    with torch.no_grad():
        reference = cpu.synthesis(ws.cpu())
    assert fast.dtype == torch.float32
    assert psnr(plain.cpu().numpy(), reference.numpy()) > 90  # CUDA fp32 == CPU fp32 up to rounding
    assert psnr(fast.cpu().numpy(), plain.cpu().numpy()) > 50  # fp16 rounding only


def test_fir_outer_writes_into_a_strided_destination_and_needs_no_padding_when_given_it():
    """The CPU bands hand _fir_outer their own buffers: rows of a wider tensor as `out`, and an input with the
    zero rows _fir_padding asks for already in place (lo shifted by up * front)."""
    gen = torch.Generator().manual_seed(9)
    x, taps = torch.randn(11, 6, generator=gen, dtype=torch.float64), torch.randn(12, generator=gen, dtype=torch.float64)
    up, lo, out_len = 2, 9, 30
    want = sg3._fir_outer(x, taps, up, 1, lo, out_len)
    front, back = sg3._fir_padding(11, 12, up, 1, lo, out_len)
    assert front > 0 and back > 0
    padded = torch.cat([torch.zeros(front, 6, dtype=x.dtype), x, torch.zeros(back, 6, dtype=x.dtype)])
    wide = torch.full((out_len, 10), float("nan"), dtype=x.dtype)
    got = sg3._fir_outer(padded, taps, up, 1, lo - up * front, out_len, out=wide[:, 2:8])
    assert got.data_ptr() == wide[:, 2:8].data_ptr()
    torch.testing.assert_close(wide[:, 2:8], want, atol=1e-12, rtol=0)
    assert torch.isnan(wide[:, :2]).all() and torch.isnan(wide[:, 8:]).all()


def test_fir_outer_equals_zero_insertion_and_correlation(monkeypatch):
    """The block-banded products of the CPU bands against the definition, over random geometries (crop and
    padding, partial last blocks, column chunks)."""
    monkeypatch.setattr(sg3, "GEMM_COLUMNS", 2)
    gen = torch.Generator().manual_seed(4)
    for trial in range(120):
        up, down = [(1, 2), (2, 1), (4, 1), (1, 1)][trial % 4]
        k = [1, 6, 12, 24][trial // 4 % 4]
        length, lo = 1 + trial % 17, trial % 19 - 8
        out_len = 1 + (trial * 7) % 37
        x = torch.randn(length, 5, generator=gen, dtype=torch.float64)
        taps = torch.randn(k, generator=gen, dtype=torch.float64)
        z = torch.zeros(max(0, lo) + length * up + down * out_len + k + 8, 5, dtype=torch.float64)
        z[max(0, lo):max(0, lo) + length * up:up] = x
        z = z[max(0, -lo):]
        want = torch.stack([(taps[:, None] * z[down * i:down * i + k]).sum(0) for i in range(out_len)])
        got = sg3._fir_outer(x, taps, up, down, lo, out_len)
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0, msg=f"{(length, up, down, k, lo, out_len)}")
