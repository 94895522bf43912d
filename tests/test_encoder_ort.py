"""The encoder backbone in ONNX Runtime (bridge/encoder/ort_runtime.py): the same taps and latents as torch,
exported once into the cache, and torch kept (with one line) whenever ONNX Runtime cannot be trusted."""
from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from bridge.encoder import EncoderError, build_encoder  # noqa: E402
from bridge.encoder.ort_runtime import OrtBackboneRunner, choose_runner  # noqa: E402
from bridge.params import ParamStore  # noqa: E402
from bridge.sources.pattern import render_pattern  # noqa: E402

SIZE = (64, 48)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VRBRIDGE_CACHE", str(tmp_path))
    return tmp_path / "encoders"


def _pair(backbone: str, **kwargs):
    """The same random-init encoder twice: in ONNX Runtime and in torch."""
    common = dict(z_dim=64, demo=True, backbone=backbone, encode_size=SIZE, **kwargs)
    return build_encoder(runtime="onnxruntime", **common), build_encoder(runtime="torch", **common)


@pytest.mark.parametrize("backbone, taps", [("efficientnet_b0", ("stage3", "stage6")),
                                            ("mobilenet_v3_large", ("block12",))])
def test_every_tap_and_the_latents_match_torch(cache, backbone, taps):
    ort_enc, torch_enc = _pair(backbone, taps=taps)
    assert isinstance(ort_enc.runner, OrtBackboneRunner) and ort_enc.runner is not ort_enc.backbone
    assert "onnxruntime" in ort_enc.describe() and ort_enc.stats()["runtime"].startswith("onnxruntime")
    x = torch.randn(1, 3, SIZE[1], SIZE[0]).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        got, want = ort_enc.runner(x), torch_enc.backbone(x)
    assert set(got) == set(taps)
    for tap in taps:
        assert got[tap].shape == want[tap].shape
        assert float((got[tap] - want[tap]).abs().max()) <= 1e-4 * max(1.0, float(want[tap].abs().max()))
    params = ParamStore().snapshot()
    for i in range(5):  # the whole encode: preprocessing, reduction, running standardisation, smoothing
        frame = render_pattern(i * 7, (160, 120))
        a, b = ort_enc.encode(frame, params, t=i / 30), torch_enc.encode(frame, params, t=i / 30)
    for group in a:
        np.testing.assert_allclose(a[group].numpy(), b[group].numpy(), atol=1e-3)


def test_exported_once_then_read_from_the_cache(cache, monkeypatch):
    build_encoder(z_dim=64, demo=True, encode_size=SIZE, runtime="onnxruntime")
    files = list(cache.glob("efficientnet_b0-*.onnx"))
    assert len(files) == 1 and not list(cache.glob("*.part"))

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds the file")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    enc = build_encoder(z_dim=64, demo=True, encode_size=SIZE, runtime="onnxruntime")
    assert isinstance(enc.runner, OrtBackboneRunner) and enc.runner.path == files[0]


def test_a_broken_or_foreign_cache_file_is_replaced(cache):
    build_encoder(z_dim=64, demo=True, encode_size=SIZE, runtime="onnxruntime")
    cached = next(cache.glob("efficientnet_b0-*.onnx"))
    good = cached.read_bytes()
    cached.write_bytes(b"\x08\x07 not a model")  # a truncated or damaged file: exported again
    assert isinstance(build_encoder(z_dim=64, demo=True, encode_size=SIZE).runner, OrtBackboneRunner)
    assert cached.read_bytes() == good
    other = build_encoder(z_dim=64, demo=True, encode_size=SIZE, backbone="efficientnet_b0", taps=("stage2",),
                          runtime="onnxruntime").runner.path
    cached.write_bytes(other.read_bytes())  # a valid model with other outputs under this name: not trusted
    enc = build_encoder(z_dim=64, demo=True, encode_size=SIZE, runtime="onnxruntime")
    assert isinstance(enc.runner, OrtBackboneRunner) and cached.read_bytes() == good


def test_auto_keeps_torch_for_vgg16_and_off_the_cpu(cache):
    vgg = build_encoder(z_dim=64, demo=True, backbone="vgg16", taps=("conv1_2",), encode_size=SIZE)
    assert vgg.runner is vgg.backbone and vgg.runs_on == "torch" and "onnxruntime" not in vgg.describe()
    assert not cache.exists()  # nothing exported for it
    runner, runs_on = choose_runner(vgg.backbone, SIZE, torch.device("meta"), "auto")
    assert runner is vgg.backbone and runs_on == "torch"


def test_without_onnxruntime_auto_says_so_and_onnxruntime_is_one_line(cache, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with caplog.at_level(logging.INFO, logger="bridge.encoder.ort_runtime"):
        enc = build_encoder(z_dim=64, demo=True, encode_size=SIZE)
    assert enc.runner is enc.backbone and "pip install onnxruntime" in enc.runs_on
    assert any("pip install onnxruntime" in r.message for r in caplog.records)
    with pytest.raises(EncoderError) as info:
        build_encoder(z_dim=64, demo=True, encode_size=SIZE, runtime="onnxruntime")
    assert "onnxruntime is not installed" in str(info.value) and "\n" not in str(info.value)


def test_overlapping_stages_give_onnxruntime_half_the_cpu(cache):
    enc = build_encoder(z_dim=64, demo=True, encode_size=SIZE, runtime="onnxruntime")
    enc.set_runtime_threads(1)
    assert enc.runner.threads == 1
    x = torch.zeros(1, 3, SIZE[1], SIZE[0])
    assert set(enc.runner(x)) == {"stage6"}  # the rebuilt session runs


def test_an_unusable_cache_folder_keeps_torch_in_one_line(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("VRBRIDGE_CACHE", str(blocker))
    enc = build_encoder(z_dim=64, demo=True, encode_size=SIZE)  # auto: the engine still starts, on torch
    assert enc.runner is enc.backbone and "no cache folder" in enc.runs_on
    with pytest.raises(EncoderError, match="no cache folder") as info:
        build_encoder(z_dim=64, demo=True, encode_size=SIZE, runtime="onnxruntime")
    assert "\n" not in str(info.value)
