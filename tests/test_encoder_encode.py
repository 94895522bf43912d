"""The whole encoder on real photographs (tests/data/images): determinism, sensitivity, layouts, live settings,
and bad input refused without side effects.

The weights are a seeded random state dict in torchvision's exact format (real pretrained weights cannot be
downloaded here); it goes through the same file -> strict check -> load path as the real file would.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bridge.encoder import EncoderInputError, build_encoder
from bridge.encoder.vgg16 import random_state_dict
from bridge.params import ParamStore

IMAGES = Path(__file__).parent / "data" / "images"
SIZE = (64, 48)  # small 4:3 encode size: the same code path as 426x320, a fraction of the time
VECTOR = {"encoder.standardize": "vector"}
RAW = {"encoder.standardize": "none"}


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("vgg") / "vgg16-random.pth"
    torch.save(random_state_dict(seed=11), path)
    return str(path)


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    names = ["handDst.jpg", "handSrc.jpg", "Histogram_Comparison_Source_0.jpg", "basketball1.png"]
    return {n: np.asarray(Image.open(IMAGES / n).convert("RGB")) for n in names}


@pytest.fixture
def make(weights_file):
    def build(**kwargs):
        kwargs.setdefault("encode_size", SIZE)
        return build_encoder(weights=weights_file, **kwargs)

    return build


def test_output_contract(make, images):
    enc = make(z_dim=512)
    z = enc.encode(images["handDst.jpg"], ParamStore().snapshot())
    assert set(z) == {"coarse", "middle", "fine"}
    for value in z.values():
        assert value.shape == (512,) and value.dtype == torch.float32 and value.device.type == "cpu"
        assert torch.isfinite(value).all()
    small = make(z_dim=64).encode(images["handDst.jpg"], VECTOR)  # 512 channels projected to a 64-d z
    assert small["coarse"].shape == (64,)
    assert not enc.is_demo and "file " in enc.describe() and "conv4_1" in enc.describe()
    assert enc.stats()["frames"] == 1 and enc.stats()["ms"] > 0


def test_same_image_same_z_across_encoders(make, images):
    for params in (VECTOR, RAW):
        a = make().encode(images["handSrc.jpg"], params)["coarse"]
        b = make().encode(images["handSrc.jpg"], params)["coarse"]
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_different_images_give_different_z(make, images):
    """Each pair of different photos lies much further apart than one photo from itself under pixel noise."""
    enc = make()
    rng = np.random.default_rng(0)
    base = images["handDst.jpg"]
    noisy = np.clip(base.astype(np.int16) + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8)
    for params in (VECTOR, RAW):
        zs = {name: enc.encode(rgb, params)["coarse"] for name, rgb in images.items()}
        noise = (enc.encode(noisy, params)["coarse"] - zs["handDst.jpg"]).norm().item()
        names = list(zs)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                distance = (zs[a] - zs[b]).norm().item()
                assert distance > 10 * noise, (params, a, b, distance, noise)


def test_layouts_give_the_right_number_of_distinct_z(make, images):
    enc = make()
    rgb = images["handDst.jpg"]

    def distinct(params):
        z = enc.encode(rgb, dict(VECTOR, **params))
        values = [z["coarse"], z["middle"], z["fine"]]
        unique = []
        for v in values:
            if not any(torch.equal(v, u) for u in unique):
                unique.append(v)
        return len(unique)

    assert distinct({"encoder.layout": "whole"}) == 1
    whole = enc.encode(rgb, VECTOR)
    assert whole["coarse"] is whole["middle"] is whole["fine"]  # one object: consumers map it once
    for name in ("paper", "columns", "rows"):
        assert distinct({"encoder.layout": name}) == 3, name
    assert distinct({"encoder.layout": "grid", "encoder.grid": "2x1"}) == 2
    assert distinct({"encoder.layout": "grid", "encoder.grid": "3x3"}) == 3


def test_bad_grid_keeps_last_layout_and_reports(make, images):
    enc = make()
    rgb = images["handDst.jpg"]
    paper = enc.encode(rgb, dict(VECTOR, **{"encoder.layout": "paper"}))
    bad = enc.encode(rgb, dict(VECTOR, **{"encoder.layout": "grid", "encoder.grid": "2x2:cccc"}))
    for group in paper:
        torch.testing.assert_close(bad[group], paper[group])
    assert enc.stats()["layout"] == "paper"
    assert "no cell is given to the middle group" in enc.stats()["last_error"]


def test_multi_tap_is_the_weighted_sum_of_single_taps(make, images):
    rgb = images["Histogram_Comparison_Source_0.jpg"]
    both = make(taps=("conv4_1:0.7", "conv5_1:0.3")).encode(rgb, RAW)["coarse"]
    z4 = make(taps=("conv4_1",)).encode(rgb, RAW)["coarse"]
    z5 = make(taps=("conv5_1",)).encode(rgb, RAW)["coarse"]
    torch.testing.assert_close(both, 0.7 * z4 + 0.3 * z5, rtol=1e-5, atol=1e-5)
    raw_mean = make(taps=("conv4_1",)).backbone(_prepared(make(taps=("conv4_1",)), rgb))["conv4_1"].mean(dim=(2, 3))[0]
    torch.testing.assert_close(z4, raw_mean, rtol=1e-5, atol=1e-6)  # g = channel-wise spatial mean


def _prepared(enc, rgb):
    with torch.no_grad():
        return enc._prepare(rgb, mirror=False)


def test_mirror(make, images):
    enc = make()
    rgb = images["handDst.jpg"]  # 640x480: the same aspect as the encode size, so no crop
    flipped = np.ascontiguousarray(rgb[:, ::-1])
    a = enc.encode(rgb, VECTOR)["coarse"]
    b = enc.encode(flipped, dict(VECTOR, **{"encoder.mirror": True}))["coarse"]
    torch.testing.assert_close(a, b, rtol=0.02, atol=0.02)  # resize of a flip ~ flip of a resize
    c = enc.encode(rgb, dict(VECTOR, **{"encoder.mirror": True}))["coarse"]
    assert (a - c).norm() > 10 * (a - b).norm()  # a hand photo is not symmetric


def test_running_standardisation_centres_a_static_scene(make, images):
    enc = make()
    params = {"encoder.standardize": "running", "encoder.adapt_s": 5.0}
    for i in range(3):
        z = enc.encode(images["handDst.jpg"], params, t=i / 30)["coarse"]
        assert z.abs().max() < 1e-4  # nothing changes: the centre of Z
    moved = enc.encode(images["handSrc.jpg"], params, t=3 / 30)["coarse"]
    assert moved.abs().mean() > 0.5


def test_smoothing_and_hold(make, images):
    enc = make()
    a_img, b_img = images["handDst.jpg"], images["basketball1.png"]
    za = make().encode(a_img, VECTOR)["coarse"]
    zb = make().encode(b_img, VECTOR)["coarse"]
    ema = dict(VECTOR, **{"encoder.smoothing": 0.5, "encoder.filter": "ema"})
    enc.encode(a_img, ema, t=0.0)
    half = enc.encode(b_img, ema, t=1 / 30)["coarse"]
    torch.testing.assert_close(half, 0.5 * za + 0.5 * zb, rtol=1e-4, atol=1e-4)
    held = enc.encode(a_img, dict(VECTOR, **{"latent.hold": True}), t=2 / 30)
    torch.testing.assert_close(held["coarse"], half)  # a new picture, but the latents are held
    one_euro = enc.encode(a_img, dict(VECTOR, **{"encoder.filter": "one_euro"}), t=3 / 30)["coarse"]
    assert 0 < (one_euro - half).norm() < (za - half).norm()  # moving towards a, smoothly


def test_any_frame_size_and_channel_layout(make, images):
    enc = make()
    rgb = images["handSrc.jpg"]
    grey = np.asarray(Image.open(IMAGES / "basketball1.png"))  # an 8-bit greyscale PNG: (H, W)
    assert grey.ndim == 2
    for frame in (grey, rgb[:, :, :1], np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
                  rgb[::3, ::2], np.zeros((1, 1, 3), np.uint8), np.zeros((10, 1000, 3), np.uint8)):
        z = enc.encode(frame, VECTOR)
        assert z["fine"].shape == (512,) and torch.isfinite(z["fine"]).all()
    rgba = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    torch.testing.assert_close(enc.encode(rgba, VECTOR)["coarse"], enc.encode(rgb, VECTOR)["coarse"])


@pytest.mark.parametrize("frame, message", [
    (np.zeros((48, 64, 3), np.float32), "uint8"),
    (np.zeros((48, 64, 2), np.uint8), "shape"),
    (np.zeros((2, 48, 64, 3), np.uint8), "shape"),
    (np.zeros((0, 64, 3), np.uint8), "shape"),
    ([[0, 0, 0]], "numpy array"),
])
def test_bad_frames_are_refused_and_change_nothing(make, images, frame, message):
    enc = make()
    params = {"encoder.standardize": "running", "encoder.smoothing": 0.5}
    first = enc.encode(images["handDst.jpg"], params, t=0.0)
    with pytest.raises(EncoderInputError, match=message):
        enc.encode(frame, params, t=1 / 30)
    assert enc.stats()["frames"] == 1
    again = enc.encode(images["handDst.jpg"], params, t=2 / 30)
    torch.testing.assert_close(again["coarse"], first["coarse"])  # no state was touched by the bad frame


def test_build_errors_are_clear(make):
    from bridge.encoder import EncoderError

    for kwargs, message in (({"taps": ("conv9_9",)}, "unknown tap 'conv9_9'"), ({"z_dim": 0}, "z_dim"),
                            ({"encode_size": (16, 16)}, "each side must be 32..4096"),
                            ({"encode_size": "big"}, "not WIDTHxHEIGHT"), ({"backbone": "resnet"}, "unknown encoder backbone"),
                            ({"device": "cuda:7"} if not torch.cuda.is_available() else {"device": "nope"}, "device")):
        with pytest.raises(EncoderError, match=message):
            make(**kwargs)
    assert make(encode_size="128x96").encode_size == (128, 96)


def test_backbone_registry_and_param_table_agree(make):
    from bridge.encoder import BACKBONES
    from bridge.params import PARAMS_BY_NAME

    assert PARAMS_BY_NAME["encoder_backbone"].choices == ("auto",) + tuple(BACKBONES)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert make(device="auto").device.type == expected
