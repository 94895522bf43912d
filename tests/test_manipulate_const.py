"""StyleGAN2 const corruption on the fixture network: exact at a = 0, monotonic in a, eases out, loops."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from bridge.frames import Hand, Keypoints
from bridge.manipulate.const_corruption import ConstCorruption
from bridge.params import DEFAULTS
from bridge.stylegan import load_network

from conftest import STYLEGAN_FIXTURES
from hand_rig import HandRig
from test_tracking_features import hand_points

Z = torch.from_numpy(np.load(STYLEGAN_FIXTURES / "inputs" / "z.npy")).float()[:1]


@pytest.fixture(scope="module")
def sg2():
    return load_network(STYLEGAN_FIXTURES / "sg2_tiny.pkl")


@pytest.fixture(scope="module")
def ws(sg2):
    with torch.no_grad():
        return sg2.mapping(Z, None, truncation_psi=1.0)


def render(G, ws) -> torch.Tensor:
    with torch.no_grad():
        return G.synthesis(ws, noise_mode="const")


def keypoints(cx=0.9, cy=0.85, t=0.0, index=0) -> Keypoints:
    return Keypoints(hands=(Hand(hand_points(cx, cy), "right", 0.95),), active=0, t_capture=t, frame_index=index,
                     aspect=4 / 3)


def no_hand(t, index) -> Keypoints:
    return Keypoints(hands=(), active=None, t_capture=t, frame_index=index, aspect=4 / 3)


def params(**overrides):
    return {**DEFAULTS, "hand.ease_s": 0.0, **overrides}


@pytest.fixture
def const(sg2):
    """A fresh manipulation per test; the network's constant is put back afterwards."""
    m = HandRig(ConstCorruption())
    yield m
    m.restore()


def test_a_zero_leaves_the_output_bit_identical(sg2, ws, const):
    base = render(sg2, ws)
    tensor = dict(sg2.named_parameters())["synthesis.b4.const"]
    original = tensor.detach().clone()
    const.apply(sg2, params(**{"hand.const.amount": 0.0}), keypoints(), now=1.0)
    assert const.features() == {"const_a": 0.0}
    assert torch.equal(tensor, original)
    assert torch.equal(render(sg2, ws), base)
    # a hand exactly at the centre with the linear curve is a = 0 too (a fresh one: features are smoothed)
    centred = HandRig(ConstCorruption())
    centred.apply(sg2, params(), keypoints(0.5, 0.5, t=1.1, index=1), now=1.1)
    assert centred.a == pytest.approx(0.0, abs=1e-6)
    centred.restore()


@pytest.mark.parametrize("mode", ["blend", "additive", "shuffle"])
def test_a_above_zero_changes_the_output_monotonically(sg2, ws, const, mode):
    base = render(sg2, ws)
    tensor = dict(sg2.named_parameters())["synthesis.b4.const"]
    original = tensor.detach().clone()
    const_moves, image_moves, a_values = [], [], []
    for i, amount in enumerate([0.1, 0.25, 0.5, 0.75, 1.0]):
        const.apply(sg2, params(**{"hand.const.amount": amount, "hand.const.mode": mode}), keypoints(t=i, index=i),
                    now=3.0)  # same time: the same noise constant, only a changes
        a_values.append(const.a)
        const_moves.append(float((tensor - original).norm()))
        image_moves.append(float((render(sg2, ws) - base).abs().mean()))
    assert np.all(np.diff(a_values) > 0) and a_values[-1] == pytest.approx(0.766, abs=0.005)  # distance 0.766
    assert np.all(np.diff(const_moves) > 0), const_moves
    assert np.allclose(np.array(const_moves) / np.array(a_values), const_moves[0] / a_values[0], rtol=1e-4)
    assert np.all(np.diff(image_moves) > 0), image_moves
    assert image_moves[0] > 1e-4


def test_curves_shape_the_response(sg2, const):
    got = {}
    for curve in ("linear", "ease_in", "inverse"):
        const.apply(sg2, params(**{"hand.const.curve": curve}), keypoints(0.75, 0.5, t=len(got), index=len(got)), 1.0)
        got[curve] = const.a
    d = got["linear"]
    assert 0.2 < d < 0.5  # a quarter of the width to the right of centre, in pixels over the half-diagonal
    assert got["ease_in"] == pytest.approx(d * d, rel=1e-9)
    assert got["inverse"] == pytest.approx(1 - d, rel=1e-9)


def test_noise_constant_moves_slowly_and_loops(sg2, const):
    const.apply(sg2, params(), keypoints(), now=0.0)
    period = 20.0
    at = lambda t: const.noise_unit(t, period).clone()  # noqa: E731
    start, later, looped, half = at(0.0), at(0.1), at(period), at(period / 2)
    assert torch.allclose(start, looped, atol=1e-5)
    assert (later - start).pow(2).mean().sqrt() < 0.05  # a tenth of a second moves it a little (~2 pi / 200)
    assert torch.allclose(half, -start, atol=1e-5)  # half a loop away it is somewhere else entirely
    samples = torch.stack([at(t) for t in np.linspace(0, period, 16)])
    assert samples.std().item() == pytest.approx(1.0, abs=0.15)


def test_shuffle_uses_the_constants_own_channels(sg2, const):
    tensor = dict(sg2.named_parameters())["synthesis.b4.const"]
    original = tensor.detach().clone()
    const.apply(sg2, params(**{"hand.const.mode": "shuffle", "hand.const.curve": "inverse"}),
                keypoints(0.5, 0.5), now=1.0)  # inverse curve at the centre: a = 1
    assert const.a == pytest.approx(1.0, abs=1e-6)
    assert not torch.equal(tensor, original)
    as_rows = lambda t: sorted(map(tuple, t.reshape(t.shape[0], -1).tolist()))  # noqa: E731
    assert as_rows(tensor) == as_rows(original)


def test_lost_hand_eases_back_to_the_exact_original(sg2, const):
    tensor = dict(sg2.named_parameters())["synthesis.b4.const"]
    original = tensor.detach().clone()
    p = params(**{"hand.ease_s": 1.0})
    for i, t in enumerate(np.arange(0.0, 1.6, 0.1)):  # the hand eases in over 1 s
        const.apply(sg2, p, keypoints(t=t, index=i), now=t)
    full = const.a
    assert full == pytest.approx(0.766, abs=0.005)  # fully eased in: curve(distance) * amount
    strengths = []
    for i, t in enumerate(np.arange(1.6, 2.9, 0.1)):
        const.apply(sg2, p, no_hand(t, 100 + i), now=t)
        strengths.append(const.a)
    assert strengths[0] < full and np.all(np.diff(strengths[:10]) < 0), strengths  # no jump: a glide down
    assert strengths[-1] == 0.0
    assert torch.equal(tensor, original)


def test_disable_eases_out_too(sg2, const):
    p = params(**{"hand.ease_s": 0.5})
    for i, t in enumerate(np.arange(0.0, 1.0, 0.1)):
        const.apply(sg2, p, keypoints(t=t, index=i), now=t)
    off = {**p, "hand.const.enable": False}
    const.apply(sg2, off, keypoints(t=1.0, index=20), now=1.0)
    assert 0 < const.a
    const.apply(sg2, off, keypoints(t=1.6, index=21), now=1.6)
    assert const.a == 0.0


def test_writes_in_place_into_the_networks_own_tensor(sg2, const):
    tensor = dict(sg2.named_parameters())["synthesis.b4.const"]
    pointer = tensor.data_ptr()
    for i in range(5):
        const.apply(sg2, params(), keypoints(t=i, index=i), now=float(i))
    assert dict(sg2.named_parameters())["synthesis.b4.const"] is tensor and tensor.data_ptr() == pointer


def test_on_stylegan3_it_says_so_once_and_does_nothing(caplog):
    sg3 = load_network(STYLEGAN_FIXTURES / "sg3t_tiny.pkl")
    before = {name: t.clone() for name, t in sg3.state_dict().items()}
    m = HandRig(ConstCorruption())
    with caplog.at_level(logging.INFO, logger="bridge.manipulate.base"):
        for i in range(3):
            m.apply(sg3, params(), keypoints(t=i, index=i), now=float(i))
    notes = [r.message for r in caplog.records if "does not apply" in r.message]
    assert len(notes) == 1 and "synthesis.b4.const" in notes[0] and "StyleGAN2" in notes[0]
    assert m.features() == {}
    assert all(torch.equal(before[k], v) for k, v in sg3.state_dict().items())


def test_settling_says_when_the_output_moves_with_time_alone(sg2, const):
    p = params(**{"hand.ease_s": 1.0})
    assert not const.settling
    const.apply(sg2, p, keypoints(t=0.0, index=0), now=0.0)
    const.apply(sg2, p, keypoints(t=0.5, index=1), now=0.5)
    assert const.settling  # half eased in
    for i, t in enumerate(np.arange(0.6, 1.8, 0.1)):
        const.apply(sg2, {**p, "hand.const.mode": "shuffle"}, keypoints(t=t, index=2 + i), now=t)
    assert const.a > 0 and not const.settling  # fully in, and shuffle does not move with time
    const.apply(sg2, p, keypoints(t=2.0, index=50), now=2.0)
    assert const.settling  # the blend's noise constant moves every frame


def test_the_tables_curve_choices_are_the_curves_that_exist():
    from bridge.curves import CURVE_NAMES, SHAPE_NAMES, apply_curve
    from bridge.params import get_param

    assert get_param("hand.const.curve").choices == SHAPE_NAMES
    for name in CURVE_NAMES:
        assert apply_curve(name, 0.0) in (0.0, 1.0) and apply_curve(name, 1.0) in (0.0, 1.0)
        assert 0.0 <= apply_curve(name, 0.3) <= 1.0 and apply_curve(name, -5) == apply_curve(name, 0.0)
