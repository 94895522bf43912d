"""Network bending: each transform on constructed feature maps, neutral = bit-identical, SG2 and SG3, both paths."""
from __future__ import annotations

import logging

import pytest
import torch

from bridge.bending import (BEND_SLOTS, KINDS, Bend, BendError, Bender, bend_features, bend_points, parse_channels,
                            region_mask, resolve_layer)
from levers_cases import fixture, render


def _ramp(n=1, c=2, h=8, w=8) -> torch.Tensor:
    """Distinct values everywhere: x = 100 * channel + 10 * row + column (+ 1000 per sample)."""
    y = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
    x = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
    ch = torch.arange(c, dtype=torch.float32).view(1, c, 1, 1)
    s = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)
    return 1000 * s + 100 * ch + 10 * y + x


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_the_identity_at_amount_zero(kind):
    x = torch.randn(2, 3, 9, 9)
    assert torch.equal(bend_features(x, kind, 0.0), x)
    assert torch.allclose(bend_features(x, kind, 1e-4), x, atol=0.05)  # and continuous around it


def test_translate_shifts_by_whole_pixels_with_zeros_in():
    x = _ramp()
    out = bend_features(x, "translate_x", 0.25)  # 2 of 8 pixels to the right
    assert torch.equal(out[..., 2:], x[..., :-2]) and torch.all(out[..., :2] == 0)
    out = bend_features(x, "translate_y", -0.5)  # 4 pixels up
    assert torch.equal(out[..., :4, :], x[..., 4:, :]) and torch.all(out[..., 4:, :] == 0)
    assert torch.all(bend_features(x, "translate_x", 1.0) == 0)


def test_rotate_by_half_turn_and_quarter_turn():
    x = _ramp(c=1)
    torch.testing.assert_close(bend_features(x, "rotate", 1.0), x.flip(2, 3), atol=1e-3, rtol=0)
    quarter = bend_features(x, "rotate", 0.5)  # +90 degrees, counter-clockwise on screen (numpy's rot90)
    torch.testing.assert_close(quarter, torch.rot90(x, k=1, dims=(2, 3)), atol=1e-3, rtol=0)


def test_scale_zooms_about_the_centre():
    x = torch.zeros(1, 1, 16, 16)
    x[..., 6:10, 6:10] = 1.0  # a centred 4x4 square
    big = bend_features(x, "scale", 1.0)  # 2x
    assert torch.all(big[0, 0, 5:11, 5:11] == 1) and big[0, 0, :3].abs().max() == 0
    assert float(big.sum()) == pytest.approx(float(x.sum()) * 4, rel=0.05)  # floats: pytest 9.2's approx iterates tensors
    small = bend_features(x, "scale", -1.0)
    assert float(small.sum()) == pytest.approx(float(x.sum()) / 4, rel=0.05)


def test_flips_blend_toward_the_mirror_image():
    x = _ramp()
    assert torch.equal(bend_features(x, "flip_x", 1.0), x.flip(3))
    assert torch.equal(bend_features(x, "flip_y", -1.0), x.flip(2))
    torch.testing.assert_close(bend_features(x, "flip_x", 0.5), (x + x.flip(3)) / 2)


def test_dilate_and_erode_are_max_and_min_filters():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 4, 4] = 1.0
    grown = bend_features(x, "dilate", 0.125)  # radius round(0.125 * 8 / 4) = ... 0 -> identity
    assert torch.equal(grown, x)
    grown = bend_features(x, "dilate", 0.5)  # radius 1: a 3x3 block
    assert grown.sum() == 9 and torch.all(grown[0, 0, 3:6, 3:6] == 1)
    block = torch.zeros(1, 1, 8, 8)
    block[0, 0, 2:6, 2:6] = 1.0
    shrunk = bend_features(block, "erode", 0.5)
    assert shrunk.sum() == 4 and torch.all(shrunk[0, 0, 3:5, 3:5] == 1)
    x = torch.randn(2, 3, 40, 40)  # the fast filter equals max_pool over the square, for every radius
    for amount in (0.1, 0.2, 0.35, 0.5, 0.8, 1.0):
        r = round(amount * 40 / 4)
        for kind, sign in (("dilate", 1.0), ("erode", -1.0)):
            square = sign * torch.nn.functional.max_pool2d(sign * x, kernel_size=2 * r + 1, stride=1, padding=r)
            assert torch.equal(bend_features(x, kind, amount), square), (kind, r)


def test_invert_threshold_ablate():
    x = _ramp()
    inv = bend_features(x, "invert", 1.0)
    lo, hi = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(inv, lo + hi - x)
    th = bend_features(x, "threshold", 1.0)
    mean = x.mean(dim=(2, 3), keepdim=True)
    assert torch.equal(th, torch.where(x > mean, hi.expand_as(x), lo.expand_as(x)))
    assert torch.all(bend_features(x, "ablate", 1.0) == 0)
    torch.testing.assert_close(bend_features(x, "ablate", -0.25), 0.75 * x)


def test_channels_and_regions_limit_the_bend():
    x = _ramp(c=4)
    bend = Bend("ablate", 1.0, channels="1,3")
    out = bend(x)
    assert torch.equal(out[:, [0, 2]], x[:, [0, 2]]) and torch.all(out[:, [1, 3]] == 0)
    left = Bend("ablate", 1.0, mask="left")(x)
    assert torch.all(left[..., :4] == 0) and torch.equal(left[..., 4:], x[..., 4:])
    circle = region_mask("circle", 8, 8)
    assert circle[0, 0, 4, 4] == 1 and circle[0, 0, 0, 0] == 0
    assert torch.equal(region_mask("outside_circle", 8, 8), 1 - circle)
    assert parse_channels("0-2,5,99", 8).tolist() == [0, 1, 2, 5]
    half = parse_channels("random:0.5", 32, seed=1)
    assert len(half) == 16 and torch.equal(half, parse_channels("random:0.5", 32, seed=1))
    assert not torch.equal(half, parse_channels("random:0.5", 32, seed=2))
    for bad in ("x", "5-2", "random:2", "100-200"):
        with pytest.raises(BendError):
            parse_channels(bad, 8)


def test_layer_names():
    sg2, sg3 = bend_points(fixture("sg2")), bend_points(fixture("sg3t"))
    assert list(sg2) == ["b4", "b8", "b16", "b32"]
    assert list(sg3)[:2] == ["input", "L0_36_32"] and resolve_layer("L5", sg3) == "L5_52_13"
    with pytest.raises(BendError, match="not in this network"):
        resolve_layer("b64", sg2)


def _snapshot(**values):
    snap = {}
    for i in range(BEND_SLOTS):
        snap.update({f"bend.{i}.enable": False, f"bend.{i}.amount": 0.0, f"bend.{i}.kind": "rotate",
                     f"bend.{i}.layer": "", f"bend.{i}.channels": "", f"bend.{i}.mask": "all"})
    snap.update(values)
    return snap


@pytest.mark.parametrize("name, layer", [("sg2", "b8"), ("sg3t", "L3"), ("sg3r", "input")])
@pytest.mark.parametrize("fast", [False, True])
def test_neutral_bends_are_bit_identical_and_active_ones_change_the_picture(name, layer, fast):
    g = fixture(name).set_fast(fast)
    before = render(g)
    bender = Bender()
    # Configured but neutral in every way: disabled, amount 0, or no layer.
    for snap in (_snapshot(**{"bend.0.layer": layer, "bend.0.amount": 0.5}),
                 _snapshot(**{"bend.0.layer": layer, "bend.0.enable": True}),
                 _snapshot(**{"bend.0.enable": True, "bend.0.amount": 0.5})):
        bender.apply(g, snap)
        assert bender.active == 0 and torch.equal(render(g), before)
    bender.apply(g, _snapshot(**{"bend.0.layer": layer, "bend.0.enable": True, "bend.0.amount": 0.5,
                                 "bend.1.layer": layer, "bend.1.enable": True, "bend.1.amount": 1.0,
                                 "bend.1.kind": "ablate", "bend.1.channels": "0-3", "bend.1.mask": "circle"}))
    assert bender.active == 2
    bent = render(g)
    assert torch.isfinite(bent).all() and (bent - before).abs().max() > 1e-3
    bender.apply(g, _snapshot())
    assert bender.active == 0 and torch.equal(render(g), before)


def test_a_bad_setting_is_reported_once_and_stays_off(caplog):
    g = fixture("sg2")
    before = render(g)
    bender = Bender()
    snap = _snapshot(**{"bend.2.layer": "L5", "bend.2.enable": True, "bend.2.amount": 0.3})
    with caplog.at_level(logging.WARNING):
        bender.apply(g, snap)
        bender.apply(g, dict(snap, **{"bend.2.amount": 0.4}))
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "bend.2" in caplog.records[0].message and "not in this network" in caplog.records[0].message
    assert bender.active == 0 and torch.equal(render(g), before)
    bender.apply(g, _snapshot(**{"bend.0.layer": "b16", "bend.0.enable": True, "bend.0.amount": 1.0,
                                 "bend.0.channels": "7-5"}))
    assert bender.active == 0 and torch.equal(render(g), before)
