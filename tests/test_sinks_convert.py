"""The one conversion per frame (RGB -> RGBA/BGRA/UYVY with alpha), and the missing-platform path as a user sees it."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from bridge.params import ParamStore
from bridge.sinks.convert import (
    AlphaSettings, FrameConverter, as_host_rgb, luma_key_table, rgb_to_uyvy, uyvy_to_rgb,
)
from conftest import vrbridge_cmd


def picture(width=64, height=32):
    rng = np.random.RandomState(1)
    return cv2.GaussianBlur(rng.randint(0, 256, (height, width, 3), np.uint8), (9, 9), 3)


def test_rgba_and_bgra_keep_every_pixel_and_are_opaque_by_default():
    rgb = picture()
    rgba = FrameConverter("rgba").convert(rgb)
    bgra = FrameConverter("bgra", ParamStore()).convert(rgb)
    assert rgba.shape == (32, 64, 4) and rgba.flags.c_contiguous
    assert np.array_equal(rgba[..., :3], rgb) and np.array_equal(bgra[..., :3], rgb[..., ::-1])
    assert (rgba[..., 3] == 255).all() and (bgra[..., 3] == 255).all()


def test_luma_key_follows_live_parameters():
    params = ParamStore({"alpha.mode": "luma", "alpha.luma_low": 0.25, "alpha.luma_high": 0.75})
    converter = FrameConverter("rgba", params)
    grey = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)  # one row of every level
    alpha = converter.convert(grey)[0, :, 3].astype(int)
    assert alpha[:64].max() == 0 and alpha[192:].min() == 255  # below low: clear, above high: solid
    assert np.all(np.diff(alpha) >= 0) and abs(alpha[128] - 128) <= 2  # a linear ramp between
    params.set("alpha.invert", True)  # a change over OSC shows on the next frame
    assert converter.convert(grey)[0, 0, 3] == 255
    params.set("alpha.mode", "opaque")
    assert (converter.convert(grey)[..., 3] == 255).all()


def test_hard_key_when_low_equals_high():
    table = luma_key_table(0.5, 0.5)
    assert table[127] == 0 and table[128] == 255


def test_mask_is_scaled_to_the_output_and_a_bad_file_keeps_the_previous_mask(tmp_path):
    mask = np.zeros((10, 20), np.uint8)
    mask[:, 10:] = 255
    path = tmp_path / "mask.png"
    cv2.imwrite(str(path), mask)
    params = ParamStore({"alpha.mode": "mask", "alpha.mask": str(path)})
    converter = FrameConverter("bgra", params)
    alpha = converter.convert(picture(64, 32))[..., 3]
    assert alpha.shape == (32, 64) and alpha[:, :30].max() == 0 and alpha[:, 34:].min() == 255
    params.set("alpha.mask", str(tmp_path / "missing.png"))  # a typo over OSC
    again = converter.convert(picture(64, 32))[..., 3]
    assert np.array_equal(again, alpha)  # changes nothing
    assert "missing.png" in converter.warning
    (tmp_path / "junk.png").write_bytes(b"not an image")
    params.set("alpha.mask", str(tmp_path / "junk.png"))
    assert np.array_equal(converter.convert(picture(64, 32))[..., 3], alpha)
    assert "not an image" in converter.warning
    params.set("alpha.mask", str(path))
    converter.convert(picture(64, 32))
    assert converter.warning == ""


def test_mask_from_a_cutout_png_uses_its_alpha_channel(tmp_path):
    cutout = np.zeros((8, 8, 4), np.uint8)
    cutout[..., :3] = 255  # white everywhere: brightness would say opaque
    cutout[:4, :, 3] = 255
    cv2.imwrite(str(tmp_path / "cut.png"), cutout)
    alpha = FrameConverter("rgba", {"alpha.mode": "mask", "alpha.mask": str(tmp_path / "cut.png")}) \
        .convert(picture(8, 8))[..., 3]
    assert (alpha[:4] == 255).all() and (alpha[4:] == 0).all()


def test_uyvy_round_trip_is_within_chroma_subsampling_loss():
    rgb = picture(128, 72)
    uyvy = rgb_to_uyvy(rgb)
    assert uyvy.shape == (72, 256)
    y = uyvy.reshape(72, 64, 4)[..., 1]
    assert 16 <= y.min() and y.max() <= 235  # limited ("video") range
    assert np.abs(uyvy_to_rgb(uyvy).astype(int) - rgb).mean() < 2.0
    with pytest.raises(ValueError, match="even width"):
        rgb_to_uyvy(picture(63, 8))


def test_bad_frames_are_refused_with_what_is_wrong():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 RGB, got \(4, 4\) uint8"):
        as_host_rgb(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        as_host_rgb(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="numpy array or torch tensor"):
        as_host_rgb([[1, 2, 3]])
    with pytest.raises(ValueError, match="layout 'rgb'"):
        FrameConverter("rgb")


def test_a_torch_tensor_frame_is_brought_to_the_host():
    torch = pytest.importorskip("torch")
    rgb = picture(16, 8)
    assert np.array_equal(FrameConverter("rgba").convert(torch.from_numpy(rgb))[..., :3], rgb)


def test_alpha_settings_from_a_snapshot_or_nothing():
    assert AlphaSettings.from_params(None) == AlphaSettings()
    assert AlphaSettings.from_params(ParamStore().snapshot()).mode == "opaque"


@pytest.mark.slow
def test_missing_platform_sinks_fail_at_start_up_with_one_line():
    """What a user sees from ``vrbridge run --sink spout:x`` on Linux: one line, exit 2, no traceback."""
    expected = {"spout": 'Spout needs Windows and `pip install -e ".[spout]"` in the clone',
                "syphon": 'Syphon needs macOS 12+ and `pip install -e ".[syphon]"` in the clone'}
    if sys.platform == "win32":
        expected.pop("spout")
    if sys.platform == "darwin":
        expected.pop("syphon")
    runs = {kind: subprocess.Popen(vrbridge_cmd() + ["run", "--sink", f"{kind}:x", "--frames", "1", "--preview", "off",
                                                     "--osc-in", "off"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for kind in expected}
    for kind, proc in runs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, (out, err)
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1] == f"vrbridge run: error: {expected[kind]}"
