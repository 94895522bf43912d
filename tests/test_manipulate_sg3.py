"""StyleGAN3 input transform on the fixture networks: identity is bit-exact, NVIDIA's inverse convention, the
picture follows the hand (direction of move and turn), and a lost hand eases back exactly."""
from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch

from bridge.frames import HAND_LANDMARK_NAMES, Hand, Keypoints
from bridge.manipulate.sg3_transform import InputTransform, user_matrix
from bridge.params import DEFAULTS
from bridge.stylegan import load_network
from bridge.tracking.features import FEATURE_NAMES, raw_features

from conftest import STYLEGAN_FIXTURES
from hand_rig import HandRig
from test_tracking_features import hand_points

Z = torch.from_numpy(np.load(STYLEGAN_FIXTURES / "inputs" / "z.npy")).float()[:1]
NAME = "synthesis.input.transform"


@pytest.fixture(scope="module")
def sg3t():
    return load_network(STYLEGAN_FIXTURES / "sg3t_tiny.pkl")


@pytest.fixture(scope="module")
def sg3r():
    return load_network(STYLEGAN_FIXTURES / "sg3r_tiny.pkl")


def render(G) -> np.ndarray:
    with torch.no_grad():
        return G.synthesis(G.mapping(Z, None, truncation_psi=1.0), noise_mode="const")[0].mean(0).numpy()


def params(**overrides):
    return {**DEFAULTS, "hand.ease_s": 0.0, **overrides}


def keypoints(points, t=0.0, index=0) -> Keypoints:
    return Keypoints(hands=(Hand(points, "right", 0.95),), active=0, t_capture=t, frame_index=index, aspect=4 / 3)


def centred_upright_hand() -> np.ndarray:
    """Landmarks with the palm centroid exactly at (0.5, 0.5) and the wrist -> middle line exactly vertical."""
    points = hand_points(0.5, 0.5)
    palm = {"wrist": (0.5, 0.625), "thumb_cmc": (0.4375, 0.5625), "index_mcp": (0.4375, 0.4375),
            "middle_mcp": (0.5, 0.375), "ring_mcp": (0.5625, 0.4375), "pinky_mcp": (0.5625, 0.5625)}
    for name, xy in palm.items():
        points[HAND_LANDMARK_NAMES.index(name), :2] = xy
    return points


@pytest.fixture
def transform():
    m = HandRig(InputTransform())
    yield m
    m.restore()


def test_the_fixture_convention_is_the_inverse_of_the_user_matrix():
    """NVIDIA's reference case wrote inv(m) with m = [[cos a, sin a, tx], [-sin a, cos a, ty], [0, 0, 1]]."""
    for model in ("sg3t_tiny", "sg3r_tiny"):
        reference = np.load(STYLEGAN_FIXTURES / "inputs" / f"{model}_transform.npy")
        assert np.allclose(np.linalg.inv(user_matrix(-20.0, -0.07, 0.12)), reference, atol=1e-6)


def test_angle_zero_translation_zero_is_the_untouched_network_bit_for_bit(sg3t, transform):
    base = render(sg3t)
    tensor = dict(sg3t.named_buffers())[NAME]
    original = tensor.clone()
    assert not torch.equal(original, torch.eye(3))  # the fixture's own transform is not the identity
    transform.apply(sg3t, params(**{"hand.transform.scale": 0.0}), keypoints(centred_upright_hand()), now=1.0)
    assert transform.features() == {"transform_angle": 0.0, "transform_tx": 0.0, "transform_ty": 0.0,
                                    "transform_zoom": 1.0}
    assert torch.equal(tensor, original)
    assert np.array_equal(render(sg3t), base)


def test_written_buffer_is_the_networks_own_transform_times_the_inverse(sg3t, transform):
    tensor = dict(sg3t.named_buffers())[NAME]
    original = tensor.clone().double().numpy()
    transform.apply(sg3t, params(), keypoints(hand_points(0.7, 0.4, 30, scale=1.2)), now=1.0)
    f = transform.features()
    assert f["transform_angle"] == pytest.approx(30, abs=1e-3)
    assert f["transform_tx"] == pytest.approx(0.2 * 0.5, abs=1e-5) and f["transform_ty"] == pytest.approx(-0.05, abs=1e-5)
    area = raw_features(hand_points(0.7, 0.4, 30, scale=1.2), 4 / 3)[FEATURE_NAMES.index("area")]
    assert f["transform_zoom"] == pytest.approx((area / DEFAULTS["hand.transform.area_ref"]) ** 0.25, rel=1e-6)
    m = user_matrix(-30, f["transform_tx"], f["transform_ty"], f["transform_zoom"])
    assert np.allclose(tensor.double().numpy(), original @ np.linalg.inv(m), atol=1e-5)


def best_shift(a: np.ndarray, b: np.ndarray, r: int = 8) -> tuple[int, int]:
    """(dx, dy) such that b looks like a moved by (dx, dy) pixels."""
    n = a.shape[0]
    errors = {}
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            aa = a[max(0, -dy):n - max(0, dy), max(0, -dx):n - max(0, dx)]
            bb = b[max(0, dy):n - max(0, -dy), max(0, dx):n - max(0, -dx)]
            errors[(dx, dy)] = float(np.mean((aa - bb) ** 2))
    return min(errors, key=errors.get)


@pytest.mark.parametrize("centre, direction", [((0.8, 0.5), (1, 0)), ((0.2, 0.5), (-1, 0)), ((0.5, 0.8), (0, 1))])
def test_the_picture_moves_the_way_the_hand_moves(sg3t, transform, centre, direction):
    base = render(sg3t)
    p = params(**{"hand.transform.scale": 0.0, "hand.transform.rotate": 0.0, "hand.transform.translate": 0.5})
    transform.apply(sg3t, p, keypoints(hand_points(*centre)), now=1.0)
    dx, dy = best_shift(base, render(sg3t))
    assert np.sign(dx) == direction[0] and np.sign(dy) == direction[1], (dx, dy)
    assert abs(dx) + abs(dy) >= 3  # 0.15 input units on a 32 px picture: several pixels


def rotation_score(base: np.ndarray, turned: np.ndarray, clockwise_deg: float) -> float:
    size = base.shape[0]
    rot = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), -clockwise_deg, 1.0)
    expected = cv2.warpAffine(base, rot, (size, size))
    core = slice(size // 4, 3 * size // 4)
    return float(np.corrcoef(expected[core, core].ravel(), turned[core, core].ravel())[0, 1])


def test_a_hand_leaning_clockwise_turns_the_picture_clockwise(sg3r, transform):
    base = render(sg3r)
    p = params(**{"hand.transform.scale": 0.0, "hand.transform.translate": 0.0})
    transform.apply(sg3r, p, keypoints(hand_points(0.5, 0.5, 20)), now=1.0)
    turned = render(sg3r)
    assert rotation_score(base, turned, 20) > 0.9
    assert rotation_score(base, turned, -20) < 0.5


def test_lost_hand_eases_back_to_the_networks_own_transform(sg3t, transform):
    tensor = dict(sg3t.named_buffers())[NAME]
    original = tensor.clone()
    p = params(**{"hand.ease_s": 0.5})
    for i, t in enumerate(np.arange(0.0, 0.8, 0.1)):
        transform.apply(sg3t, p, keypoints(hand_points(0.8, 0.3, 40), t=t, index=i), now=t)
    engaged = transform.features()["transform_angle"]
    assert engaged == pytest.approx(40, abs=0.5)
    angles = []
    for i, t in enumerate(np.arange(0.8, 1.5, 0.1)):
        transform.apply(sg3t, p, Keypoints(hands=(), active=None, t_capture=t, frame_index=100 + i), now=t)
        angles.append(transform.features()["transform_angle"])
        if i == 1:
            assert not torch.equal(tensor, original)  # part way back: no jump
    assert 0 < angles[0] < engaged and np.all(np.diff(angles[:5]) < 0), angles
    assert angles[-1] == 0.0 and torch.equal(tensor, original)


def test_on_stylegan2_it_says_so_once_and_does_nothing(caplog):
    sg2 = load_network(STYLEGAN_FIXTURES / "sg2_tiny.pkl")
    before = {name: t.clone() for name, t in sg2.state_dict().items()}
    m = HandRig(InputTransform())
    with caplog.at_level(logging.INFO, logger="bridge.manipulate.base"):
        for i in range(3):
            m.apply(sg2, params(), keypoints(hand_points(0.8, 0.3, 40), t=i, index=i), now=float(i))
    notes = [r.message for r in caplog.records if "does not apply" in r.message]
    assert len(notes) == 1 and NAME in notes[0] and "StyleGAN3" in notes[0]
    assert m.features() == {}
    assert all(torch.equal(before[k], v) for k, v in sg2.state_dict().items())
