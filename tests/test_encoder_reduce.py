"""The reduction g, region layouts and temporal smoothing, against hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from bridge.encoder import EncoderInputError, parse_layout, parse_taps
from bridge.encoder.backbone import EncoderError
from bridge.encoder.reduce import Projection, RunningStandardizer, region_means, standardize_vector, weighted_sum
from bridge.encoder.regions import parse_grid
from bridge.encoder.smoothing import Smoother

# one feature map (1, C=2, h=2, w=3)
FEATURE = torch.tensor([[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
                         [[10.0, 0.0, 0.0], [0.0, 0.0, 20.0]]]])


def test_mean_over_the_whole_map_is_the_channel_mean():
    weights = parse_layout("whole").weights(2, 3)
    assert weights.shape == (1, 6)
    torch.testing.assert_close(region_means(FEATURE, weights), torch.tensor([[3.5, 5.0]]))


def test_region_means_per_column():
    weights = parse_layout("columns").weights(2, 3)
    # column means: channel 0 -> 2.5, 3.5, 4.5; channel 1 -> 5, 0, 10
    torch.testing.assert_close(region_means(FEATURE, weights), torch.tensor([[2.5, 5.0], [3.5, 0.0], [4.5, 10.0]]))


def test_region_means_paper_layout():
    layout = parse_layout("paper")
    means = region_means(FEATURE, layout.weights(2, 3))
    # top row -> coarse; bottom-left (x centre < 1/2: column 0) -> middle; bottom-right (columns 1, 2) -> fine
    torch.testing.assert_close(means, torch.tensor([[2.0, 10.0 / 3.0], [4.0, 0.0], [5.5, 10.0]]))
    assert layout.group_region == {"coarse": 0, "middle": 1, "fine": 2}


def test_vector_tap_gives_every_region_the_same_vector():
    vec = torch.tensor([[1.0, -2.0, 3.0]])
    out = region_means(vec, parse_layout("paper").weights(1, 1))
    torch.testing.assert_close(out, vec.expand(3, -1))


def test_weighted_sum_is_eq2():
    out = weighted_sum([torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 5.0]])], [0.5, 2.0])
    torch.testing.assert_close(out, torch.tensor([[6.5, 11.0]]))


def test_standardize_vector_hand_computed():
    out = standardize_vector(torch.tensor([[1.0, 2.0, 3.0, 4.0], [7.0, 7.0, 7.0, 7.0]]))
    s = math.sqrt(1.25)  # population std of 1, 2, 3, 4
    torch.testing.assert_close(out[0], torch.tensor([-1.5, -0.5, 0.5, 1.5]) / s)
    torch.testing.assert_close(out[1], torch.zeros(4))  # no spread: zeros, not NaN


def test_running_standardizer_hand_computed():
    run = RunningStandardizer(floor=0.1)
    first = run.update(torch.tensor([[1.0, 3.0]]), dt=0.0, adapt_s=1.0)
    torch.testing.assert_close(first, torch.zeros(1, 2))  # the first scene is the centre
    # dt = ln 2 * adapt_s  ->  a = 1 - exp(-ln 2) = 0.5
    out = run.update(torch.tensor([[2.0, 3.0]]), dt=math.log(2.0), adapt_s=1.0)
    # mean = [1.5, 3]; var = 0.5 * ([0, 0] + 0.5 * [1, 0]) = [0.25, 0]; spread = 1 + 0.5 * (0.5 - 1) = 0.75
    floor_sq = (0.1 * 0.75) ** 2
    torch.testing.assert_close(out, torch.tensor([[0.5 / math.sqrt(0.25 + floor_sq), 0.0]]))
    torch.testing.assert_close(run.mean, torch.tensor([[1.5, 3.0]]))
    torch.testing.assert_close(run.var, torch.tensor([[0.25, 0.0]]))


def test_running_standardizer_static_scene_sits_at_centre_without_amplifying_noise():
    gen = torch.Generator().manual_seed(0)
    scene = torch.randn(1, 512, generator=gen) * 3.0 + 5.0
    run = RunningStandardizer()
    for _ in range(60):  # 5 time constants of a static scene with sensor noise 0.1 % of the feature spread
        out = run.update(scene + torch.randn(1, 512, generator=gen) * 0.003, dt=1 / 30, adapt_s=0.4)
    assert out.abs().mean() < 0.05
    moved = run.update(scene * 1.2, dt=1 / 30, adapt_s=0.4)  # then the scene changes
    assert moved.abs().mean() > 1.0


def test_projection_is_fixed_seeded_and_keeps_scale():
    v = torch.randn(2, 4096, generator=torch.Generator().manual_seed(1))
    a, b = Projection("fc1", 4096, 512), Projection("fc1", 4096, 512)
    out = a(v)
    assert out.shape == (2, 512)
    torch.testing.assert_close(out, b(v))  # same tap, same sizes -> the same matrix every time
    assert not torch.allclose(Projection("fc2", 4096, 512)(v), out)
    ratio = out.norm(dim=1) / v.norm(dim=1) / math.sqrt(512 / 4096)
    assert ((ratio > 0.85) & (ratio < 1.15)).all()  # N(0, 1/C) entries keep the per-dimension scale
    identity = Projection("conv4_1", 512, 512)
    x = torch.randn(3, 512)
    assert identity(x) is x


def test_parse_taps():
    taps = parse_taps(["conv4_1:0.7", "conv5_1:0.3"])
    assert [(t.name, t.weight) for t in taps] == [("conv4_1", 0.7), ("conv5_1", 0.3)]
    assert [t.weight for t in parse_taps(["conv4_1", "conv5_1"])] == [0.5, 0.5]
    assert [t.weight for t in parse_taps(("a", "b"), tap_weights=[2, 1])] == [2.0, 1.0]
    for bad, message in ((["a:x"], "not a number"), (["a:1", "b"], "every tap or to none"),
                         (["a:0", "b:0"], "all zero"), ([], "no encoder taps")):
        with pytest.raises(EncoderError, match=message):
            parse_taps(bad)
    with pytest.raises(EncoderError, match="2 tap weights for 1 taps"):
        parse_taps(["a"], tap_weights=[1, 2])


# -- layouts -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, regions", [("whole", 1), ("paper", 3), ("columns", 3), ("rows", 3)])
def test_named_layouts_region_counts(name, regions):
    layout = parse_layout(name)
    assert len(layout.regions) == regions
    assert set(layout.group_region) == {"coarse", "middle", "fine"}


def test_grid_specs():
    assert parse_grid("2x2").regions == parse_layout("paper").regions
    assert parse_grid("3x3").regions == ((0, 1, 2), (3, 4, 5), (6, 7, 8))
    assert parse_grid("1x3").regions == parse_layout("rows").regions
    two = parse_grid("2x1")
    assert two.regions == ((0,), (1,)) and two.group_region == {"coarse": 0, "middle": 0, "fine": 1}
    custom = parse_grid("3x2:cmc.ff")
    assert custom.regions == ((0, 2), (1,), (4, 5))  # coarse = both top corners; cell 3 unused
    assert len(parse_grid("4X4:" + "c" * 5 + "m" * 5 + "f" * 6).regions) == 3


@pytest.mark.parametrize("spec, message", [
    ("abc", "not COLUMNSxROWS"), ("0x2", "must be 1..16"), ("17x1", "must be 1..16"),
    ("2x2:ccm", "4 cells need 4 letters"), ("2x2:cccf", "no cell is given to the middle group"),
    ("2x2:ccxf", "not COLUMNSxROWS"),
])
def test_bad_grid_specs_are_named(spec, message):
    with pytest.raises(EncoderInputError, match=message):
        parse_grid(spec)
    with pytest.raises(EncoderInputError, match="unknown encoder layout"):
        parse_layout("diagonal")


def test_layout_weights_cover_small_maps():
    layout = parse_grid("16x16")  # finer than a 7x7 avgpool map
    weights = layout.weights(7, 7)
    assert weights.shape == (3, 49)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
    paper = parse_layout("paper").weights(4, 4)
    assert (paper[0].reshape(4, 4)[:2] == 1 / 8).all() and (paper[0].reshape(4, 4)[2:] == 0).all()
    assert paper[1].reshape(4, 4)[2:, :2].sum() == pytest.approx(1.0)


# -- smoothing -----------------------------------------------------------------------------------------
def test_ema_hand_computed_and_frame_rate_independent():
    s = Smoother()
    s.ema(torch.tensor([0.0]), dt=0.0, amount=0.5)
    assert s.ema(torch.tensor([1.0]), dt=1 / 30, amount=0.5).item() == pytest.approx(0.5)
    assert s.ema(torch.tensor([1.0]), dt=1 / 30, amount=0.5).item() == pytest.approx(0.75)
    slow = Smoother()
    slow.ema(torch.tensor([0.0]), dt=0.0, amount=0.5)
    # one frame at 15 fps = two at 30 fps: keep 0.5 ** 2
    assert slow.ema(torch.tensor([1.0]), dt=2 / 30, amount=0.5).item() == pytest.approx(0.75)
    assert Smoother().ema(torch.tensor([3.0]), dt=0.1, amount=0.0).item() == 3.0


def test_one_euro_hand_computed():
    s = Smoother()
    s.one_euro(torch.tensor([0.0]), dt=0.0, min_cutoff=1.0, beta=0.0)
    tau = 1 / (2 * math.pi * 1.0)
    alpha = 1 / (1 + tau / 0.1)
    assert s.one_euro(torch.tensor([1.0]), dt=0.1, min_cutoff=1.0, beta=0.0).item() == pytest.approx(alpha)
    fast = Smoother()
    fast.one_euro(torch.tensor([0.0]), dt=0.0, min_cutoff=1.0, beta=0.0)
    moved = fast.one_euro(torch.tensor([1.0]), dt=0.1, min_cutoff=1.0, beta=1.0).item()
    assert alpha < moved < 1.0  # speed raises the cutoff: less lag


def test_switching_filters_continues_from_the_current_value():
    s = Smoother()
    s.ema(torch.tensor([0.0]), dt=0.0, amount=0.9)
    value = s.ema(torch.tensor([1.0]), dt=1 / 30, amount=0.9).item()
    after = s.one_euro(torch.tensor([1.0]), dt=1 / 30, min_cutoff=1.0, beta=0.0).item()
    assert value < after < 1.0  # moves on from where the EMA was, no jump to 1
