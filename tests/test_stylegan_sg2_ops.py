"""bridge.stylegan.ops against slow, obviously-correct reference loops and against each other.

The fixture cases (test_stylegan_sg2.py) prove the ops match NVIDIA end to end; these pin each op's
semantics on its own, including paths the tiny fixture never takes (down-sampling, negative padding,
separable filters, non-fused modulation), which the StyleGAN3 synthesis also uses.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bridge.stylegan import ops


def naive_upfirdn2d(x: np.ndarray, f: np.ndarray, up=(1, 1), down=(1, 1), pad=(0, 0, 0, 0), flip_filter=False,
                    gain=1.0) -> np.ndarray:
    """Per-pixel loops of the definition: zero-insert, pad/crop, true convolution with f, decimate."""
    upx, upy = up
    downx, downy = down
    x0, x1, y0, y1 = pad
    if f.ndim == 1:
        f = np.outer(f, f)
    f = f * gain
    n, c, h, w = x.shape
    z = np.zeros([n, c, h * upy, w * upx])
    z[:, :, ::upy, ::upx] = x
    big = np.zeros([n, c, z.shape[2] + max(y0, 0) + max(y1, 0), z.shape[3] + max(x0, 0) + max(x1, 0)])
    big[:, :, max(y0, 0): max(y0, 0) + z.shape[2], max(x0, 0): max(x0, 0) + z.shape[3]] = z
    big = big[:, :, max(-y0, 0): big.shape[2] - max(-y1, 0), max(-x0, 0): big.shape[3] - max(-x1, 0)]
    fh, fw = f.shape
    kernel = f if flip_filter else f[::-1, ::-1]  # correlation with the flipped filter = convolution
    oh, ow = big.shape[2] - fh + 1, big.shape[3] - fw + 1
    out = np.zeros([n, c, oh, ow])
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = (big[:, :, i:i + fh, j:j + fw] * kernel).sum(axis=(2, 3))
    return out[:, :, ::downy, ::downx]


def _rand(*shape, seed=0):
    return torch.from_numpy(np.random.RandomState(seed).randn(*shape).astype(np.float64))


UPFIRDN_CASES = [
    # (up, down, padding, filter shape, flip)
    ((1, 1), (1, 1), (0, 0, 0, 0), (3, 3), False),
    ((2, 2), (1, 1), (2, 1, 2, 1), (4, 4), False),
    ((1, 1), (2, 2), (1, 1, 1, 1), (4, 4), True),
    ((2, 1), (1, 2), (1, 2, 0, 3), (4, 3), False),
    ((4, 4), (2, 2), (-1, 3, 2, -2), (6,), False),    # separable, negative padding crops
    ((1, 1), (1, 1), (-1, 1, 2, -1), (5,), True),
]


@pytest.mark.parametrize("up,down,pad,fshape,flip", UPFIRDN_CASES)
def test_upfirdn2d_matches_definition(up, down, pad, fshape, flip):
    x = _rand(2, 3, 7, 6, seed=1)
    f = _rand(*fshape, seed=2)
    got = ops.upfirdn2d(x, f, up=list(up), down=list(down), padding=list(pad), flip_filter=flip, gain=1.7)
    ref = naive_upfirdn2d(x.numpy(), f.numpy(), up, down, pad, flip, 1.7)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-10)


def test_separable_filter_equals_its_outer_product():
    x = _rand(1, 2, 9, 9).float()
    f1 = ops.setup_filter([1, 3, 3, 1], separable=True)
    f2 = ops.setup_filter([1, 3, 3, 1])
    assert f1.ndim == 1 and f2.ndim == 2 and torch.allclose(f2, torch.outer(f1, f1))
    for fn in (ops.upsample2d, ops.downsample2d, ops.filter2d):
        torch.testing.assert_close(fn(x, f1), fn(x, f2), rtol=0, atol=1e-6)


def test_resampling_helpers_keep_size_and_level():
    f = ops.setup_filter([1, 3, 3, 1])
    flat = torch.full([1, 2, 8, 8], 0.5)
    up, down, same = ops.upsample2d(flat, f), ops.downsample2d(flat, f), ops.filter2d(flat, f)
    assert up.shape[-2:] == (16, 16) and down.shape[-2:] == (4, 4) and same.shape[-2:] == (8, 8)
    # Away from the zero-padded border a constant image stays constant (filters are normalised).
    torch.testing.assert_close(up[..., 3:-3, 3:-3], torch.full_like(up[..., 3:-3, 3:-3], 0.5))
    torch.testing.assert_close(same[..., 2:-2, 2:-2], torch.full_like(same[..., 2:-2, 2:-2], 0.5))


def test_setup_filter_designs_like_nvidia():
    f = ops.setup_filter([1, 3, 3, 1])
    expected = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0
    np.testing.assert_allclose(f.numpy(), expected, rtol=1e-7)
    assert ops.setup_filter(list(range(1, 9))).ndim == 1   # 8+ taps stay separable by default
    with pytest.raises(ValueError):
        ops.setup_filter(np.zeros([2, 2, 2]))


@pytest.mark.parametrize("up,down,kernel,padding", [(2, 1, 3, 1), (1, 2, 3, 1), (1, 1, 3, 1), (2, 1, 1, 0),
                                                    (1, 2, 1, 0), (1, 1, 3, (0, 2, 1, 1))])
def test_conv2d_resample_equals_filter_then_conv(up, down, kernel, padding):
    """Every fast branch equals the generic recipe: FIR-upsample, pad, convolve, FIR-downsample."""
    x = _rand(2, 4, 8, 8, seed=3)
    w = _rand(5, 4, kernel, kernel, seed=4)
    f = ops.setup_filter([1, 3, 3, 1]).double()
    got = ops.conv2d_resample(x, w, f=f, up=up, down=down, padding=padding)
    px0, px1, py0, py1 = ops.parse_padding(padding)
    if up > 1:  # same padding arithmetic as NVIDIA's generic path
        px0, px1, py0, py1 = px0 + (4 + up - 1) // 2, px1 + (4 - up) // 2, py0 + (4 + up - 1) // 2, py1 + (4 - up) // 2
    if down > 1:
        px0, px1 = px0 + (4 - down + 1) // 2, px1 + (4 - down) // 2
        py0, py1 = py0 + (4 - down + 1) // 2, py1 + (4 - down) // 2
    ref = ops.upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up ** 2)
    ref = torch.nn.functional.conv2d(ref, w)
    if down > 1:
        ref = ops.upfirdn2d(ref, f, down=down)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)


def test_conv2d_resample_flip_weight_means_true_convolution():
    x, w = _rand(1, 2, 6, 6, seed=5), _rand(3, 2, 3, 3, seed=6)
    a = ops.conv2d_resample(x, w, padding=1, flip_weight=False)
    b = ops.conv2d_resample(x, w.flip([2, 3]), padding=1, flip_weight=True)
    torch.testing.assert_close(a, b)


def _modconv_reference(x, weight, styles, demodulate):
    """Per-sample loop: scale the kernel by the styles, optionally demodulate, convolve."""
    outs = []
    for i in range(x.shape[0]):
        w = weight * styles[i].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / torch.sqrt(w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        outs.append(torch.nn.functional.conv2d(x[i:i + 1], w, padding=weight.shape[-1] // 2))
    return torch.cat(outs)


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv2d(demodulate, fused):
    x, weight, styles = _rand(3, 4, 6, 6, seed=7), _rand(5, 4, 3, 3, seed=8), _rand(3, 4, seed=9)
    noise = _rand(6, 6, seed=10)
    got = ops.modulated_conv2d(x, weight, styles, noise=noise, padding=1, demodulate=demodulate,
                               fused_modconv=fused)
    ref = _modconv_reference(x, weight, styles, demodulate) + noise
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)


def test_modulated_conv2d_upsampling_fused_equals_unfused():
    x, weight, styles = _rand(2, 4, 5, 5, seed=11), _rand(6, 4, 3, 3, seed=12), _rand(2, 4, seed=13)
    f = ops.setup_filter([1, 3, 3, 1]).double()
    a = ops.modulated_conv2d(x, weight, styles, up=2, padding=1, resample_filter=f, flip_weight=False)
    b = ops.modulated_conv2d(x, weight, styles, up=2, padding=1, resample_filter=f, flip_weight=False,
                             fused_modconv=False)
    assert a.shape == (2, 6, 10, 10)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_modulated_conv2d_rejects_wrong_styles():
    with pytest.raises(ValueError, match="styles"):
        ops.modulated_conv2d(torch.zeros(2, 4, 5, 5), torch.zeros(3, 4, 3, 3), torch.zeros(2, 3))


def test_bias_act_defaults_gain_and_clamp():
    x = torch.tensor([[-2.0, 0.5], [3.0, -0.25]])
    b = torch.tensor([1.0, -1.0])
    y = ops.bias_act(x, b, act="lrelu")
    pre = x + b.reshape(1, -1)
    expected = torch.where(pre >= 0, pre, 0.2 * pre) * math.sqrt(2)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(ops.bias_act(x, act="relu"), x.clamp(min=0) * math.sqrt(2))
    torch.testing.assert_close(ops.bias_act(x, b, act="linear"), pre)
    assert ops.bias_act(x * 100, act="linear", clamp=2.5).abs().max() == 2.5
    torch.testing.assert_close(ops.bias_act(x, clamp=-1), x)  # NVIDIA's "no clamp"
    with pytest.raises(ValueError, match="unknown activation"):
        ops.bias_act(x, act="gelu-ish")


def test_fully_connected_equalised_lr():
    torch.manual_seed(0)
    layer = ops.FullyConnectedLayer(16, 4, lr_multiplier=0.01, bias_init=[1, 0, 0, 0])
    # Stored values are 1/lr_multiplier larger than their effect.
    torch.testing.assert_close(layer.bias * 0.01, torch.tensor([1.0, 0, 0, 0]))
    assert 50 < float(layer.weight.detach().std()) < 200
    x = torch.randn(3, 16)
    expected = x @ (layer.weight * 0.01 / 4).t() + layer.bias * 0.01
    torch.testing.assert_close(layer(x), expected)
    act = ops.FullyConnectedLayer(16, 4, activation="lrelu")
    torch.testing.assert_close(act(x), ops.bias_act(x @ (act.weight / 4).t(), act.bias, act="lrelu"))
    assert ops.FullyConnectedLayer(16, 4, weight_init=0).weight.abs().max() == 0


def test_normalize_2nd_moment():
    x = _rand(4, 10, seed=14) * 7
    y = ops.normalize_2nd_moment(x)
    torch.testing.assert_close(y.square().mean(dim=1), torch.ones(4, dtype=y.dtype))


def test_bias_act_inplace_matches_and_respects_autograd():
    x = _rand(2, 3, 4, 4, seed=15).float()
    b = torch.tensor([0.5, -1.0, 2.0])
    expected = ops.bias_act(x, b, act="lrelu", clamp=1.5)
    work = x.clone()
    got = ops.bias_act(work, b, act="lrelu", clamp=1.5, inplace=True)
    assert torch.equal(got, expected) and got.data_ptr() == work.data_ptr()
    tracked = x.clone().requires_grad_(True)
    out = ops.bias_act(tracked, b, act="lrelu", inplace=True)   # autograd-tracked input: left untouched
    assert torch.equal(tracked.detach(), x) and out.requires_grad
