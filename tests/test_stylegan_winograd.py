"""Winograd F(4x4, 3x3) convolution of the CPU fast path (bridge.stylegan.winograd) against F.conv2d."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from bridge.stylegan import winograd


def test_matrices_reproduce_the_correlation_exactly():
    bt, g, at = winograd._matrices()
    m, n = len(at), len(bt)
    assert (m, n, len(g[0])) == (4, 6, 3)
    for i in range(m):
        for k in range(3):
            for l in range(n):
                value = sum(at[i][j] * g[j][k] * bt[j][l] for j in range(n))
                assert value == Fraction(int(l == i + k)), (i, k, l)


def test_other_points_work_and_bad_points_are_refused():
    bt, g, at = winograd._matrices(4, (0, 1, -1, 2, -2))  # Lavin's classic set: B^T has its integer rows
    assert [float(v) for v in bt[0]] == [4, 0, -5, 0, 1, 0]
    with pytest.raises(ValueError):
        winograd._matrices(4, (0, 1, 1, 2, -2))


@pytest.mark.parametrize("n, c_in, c_out, h, w, padding", [(1, 16, 8, 13, 17, 2), (2, 5, 7, 4, 4, 1),
                                                          (3, 8, 8, 1, 6, 2), (1, 32, 24, 30, 9, 0)])
def test_conv3x3_equals_conv2d_with_scales_and_bias(n, c_in, c_out, h, w, padding):
    gen = torch.Generator().manual_seed(n * 100 + h)
    x = torch.randn(n, c_in, h, w, generator=gen)
    weight = torch.randn(c_out, c_in, 3, 3, generator=gen) / math.sqrt(9 * c_in)
    s_in, s_out = torch.rand(n, c_in, generator=gen) + 0.5, torch.rand(n, c_out, generator=gen) + 0.5
    bias = torch.randn(c_out, generator=gen)
    want = (F.conv2d(x.double() * s_in.double()[:, :, None, None], weight.double(), padding=padding)
            * s_out.double()[:, :, None, None] + bias.double()[:, None, None])
    got = winograd.conv3x3(x, winograd.transform_weight(weight), padding, in_scale=s_in, out_scale=s_out, bias=bias)
    assert got.shape == want.shape
    assert got.stride(1) == 1  # channels innermost (channels_last), maybe a view into whole tiles
    torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=0)
    plain = winograd.conv3x3(x.contiguous(memory_format=torch.channels_last), winograd.transform_weight(weight),
                             padding)
    torch.testing.assert_close(plain.double(), F.conv2d(x.double(), weight.double(), padding=padding),
                               atol=2e-5, rtol=0)


def test_wide_kernels_are_padded_to_whole_column_blocks_and_cropped_on_output():
    """181 output channels (SG3's 256 px layers) run as 192 columns in the products (MKL's fast shape); the
    padding is zeros and never reaches the output."""
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(1, 16, 10, 9, generator=gen)
    weight = torch.randn(181, 16, 3, 3, generator=gen) / 12
    kernel = winograd.transform_weight(weight)
    assert kernel.out_channels == 181 and kernel.u.shape == (36, 16, 192)
    assert not kernel.u[:, :, 181:].any()
    bias, s_out = torch.randn(181, generator=gen), torch.rand(1, 181, generator=gen) + 0.5
    got = winograd.conv3x3(x, kernel, 2, out_scale=s_out, bias=bias)
    want = F.conv2d(x.double(), weight.double(), padding=2) * s_out.double()[:, :, None, None] + bias.double()[:, None, None]
    assert got.shape == want.shape
    torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=0)
    assert winograd.transform_weight(weight[:8]).u.shape[2] == 8  # narrow layers are not padded


def test_strips_of_tile_rows_give_the_same_result(monkeypatch):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 23, 21, generator=gen)
    u = winograd.transform_weight(torch.randn(4, 8, 3, 3, generator=gen))
    whole = winograd.conv3x3(x, u, 2)
    monkeypatch.setattr(winograd, "STRIP_TILES", 1)  # one row of tiles per strip
    torch.testing.assert_close(winograd.conv3x3(x, u, 2), whole, atol=1e-6, rtol=0)


def test_rounding_stays_near_the_direct_convolution():
    """On a wide layer the float32 error is within a few times the direct convolution's (the point set)."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(1, 256, 24, 24, generator=gen)
    weight = torch.randn(256, 256, 3, 3, generator=gen) / math.sqrt(9 * 256)
    exact = F.conv2d(x.double(), weight.double(), padding=2)
    direct = (F.conv2d(x, weight, padding=2).double() - exact).pow(2).mean().sqrt()
    wino = (winograd.conv3x3(x, winograd.transform_weight(weight), 2).double() - exact).pow(2).mean().sqrt()
    assert wino < 4 * direct, (float(wino), float(direct))


def test_scratch_buffers_serve_inference_mode_and_no_grad_alike():
    """A buffer made under inference_mode cannot be written outside it: each mode gets its own."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(1, 8, 9, 9, generator=gen)
    u = winograd.transform_weight(torch.randn(8, 8, 3, 3, generator=gen))
    winograd.release_workspace()
    with torch.inference_mode():
        a = winograd.conv3x3(x, u, 2, scratch_output=True).clone()
    with torch.no_grad():
        b = winograd.conv3x3(x, u, 2, scratch_output=True).clone()
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    c = winograd.conv3x3(x.requires_grad_(), u, 2, scratch_output=True)  # autograd: fresh buffers
    c.sum().backward()
    assert x.grad is not None
