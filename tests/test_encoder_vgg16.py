"""VGG16 backbone: the paper's Table 1 shapes, tap semantics, truncation, strict torchvision-format loading."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bridge.encoder import EncoderError
from bridge.encoder.vgg16 import VGG16, check_state_dict, expected_state_shapes, random_state_dict
from bridge.encoder.weights import read_state_dict


@pytest.fixture(scope="module")
def state():
    return random_state_dict(seed=3)


def test_state_dict_format_is_torchvisions():
    shapes = expected_state_shapes()
    assert len(shapes) == 32  # 13 convs + 3 linears, weight and bias each
    assert shapes["features.0.weight"] == (64, 3, 3, 3)
    assert shapes["features.28.weight"] == (512, 512, 3, 3)  # conv5_3
    assert shapes["classifier.0.weight"] == (4096, 25088)
    assert shapes["classifier.6.bias"] == (1000,)
    assert sum(torch.Size(s).numel() for s in shapes.values()) == 138_357_544  # VGG16's published size


def test_table1_shapes_at_256(state):
    taps = ["conv1_1", "conv3_3", "conv4_1", "conv4_2", "conv4_3", "pool4", "conv5_1", "conv5_2", "conv5_3",
            "pool5", "avgpool", "fc1", "fc2", "fc3"]
    model = VGG16(taps)
    model.load_weights(state, "test")
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)))
    assert set(out) == set(taps)
    shape = {k: tuple(v.shape[1:]) for k, v in out.items()}
    for tap in ("conv4_1", "conv4_2", "conv4_3"):
        assert shape[tap] == (512, 32, 32)
    for tap in ("conv5_1", "conv5_2", "conv5_3"):
        assert shape[tap] == (512, 16, 16)
    assert shape["avgpool"] == (512, 7, 7)
    assert shape["conv1_1"] == (64, 256, 256) and shape["conv3_3"] == (256, 64, 64)
    assert shape["pool4"] == (512, 16, 16) and shape["pool5"] == (512, 8, 8)
    assert shape["fc1"] == (4096,) and shape["fc2"] == (4096,) and shape["fc3"] == (1000,)
    for tap in taps:
        assert model.tap_channels(tap) == shape[tap][0]


def test_pre_and_post_relu_taps(state):
    model = VGG16(["conv1_1_pre", "conv1_1", "conv4_1_pre", "conv4_1"])
    model.load_weights(state, "test")
    x = torch.randn(1, 3, 64, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
        # conv1_1_pre is features.0 applied to the input, computed here independently of the module
        expected = F.conv2d(x, state["features.0.weight"], state["features.0.bias"], padding=1)
    torch.testing.assert_close(out["conv1_1_pre"], expected, rtol=1e-4, atol=1e-5)
    assert (out["conv4_1_pre"] < 0).any(), "a pre-ReLU tap keeps negative values"
    assert (out["conv4_1"] >= 0).all()
    torch.testing.assert_close(out["conv4_1"], out["conv4_1_pre"].clamp_min(0))


def test_network_is_truncated_after_deepest_tap():
    model = VGG16(["conv1_2", "conv4_1"])
    assert len(model.features) == 19  # conv1_1 .. conv4_1's ReLU (features.0 .. features.18)
    assert len(model.classifier) == 0
    assert not any(k.startswith("classifier") for k in model.state_dict())
    assert VGG16(["avgpool"]).use_avgpool and len(VGG16(["avgpool"]).classifier) == 0
    assert len(VGG16(["fc1"]).classifier) == 2  # Linear + ReLU, nothing beyond
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.training


def test_unknown_or_repeated_tap_is_a_clear_error():
    with pytest.raises(EncoderError, match="unknown tap 'conv6_1'.*conv4_1"):
        VGG16(["conv6_1"])
    with pytest.raises(EncoderError, match="twice"):
        VGG16(["conv4_1", "conv4_1"])


def test_strict_load_from_a_torchvision_format_file(tmp_path, state):
    path = tmp_path / "vgg16-test.pth"
    torch.save(state, path)
    loaded = read_state_dict(path)
    model = VGG16(["conv5_3"])
    model.load_weights(loaded, str(path))
    torch.testing.assert_close(model.features[28].weight, state["features.28.weight"])  # conv5_3
    torch.testing.assert_close(model.features[0].bias, state["features.0.bias"])


def test_safetensors_file_is_read_and_checked_strictly(tmp_path, state):
    """safetensors cannot hold the compact (stride-0) classifier, so this file has the conv layers only:
    read_state_dict must return them exactly, and the strict check must then name the first missing key."""
    from safetensors.torch import save_file

    path = tmp_path / "vgg16-features.safetensors"
    save_file({k: v for k, v in state.items() if k.startswith("features.")}, str(path))
    loaded = read_state_dict(path)
    torch.testing.assert_close(loaded["features.28.weight"], state["features.28.weight"])
    with pytest.raises(EncoderError, match=r"missing key classifier\.0\.weight \(and 5 more\)"):
        VGG16(["conv1_1"]).load_weights(loaded, str(path))


def test_missing_key_is_named(state):
    broken = dict(state)
    del broken["features.17.bias"]
    with pytest.raises(EncoderError, match=r"missing key features\.17\.bias"):
        check_state_dict(broken, "file.pth")


def test_mis_shaped_key_is_named(state):
    broken = dict(state)
    broken["features.17.weight"] = torch.zeros(512, 128, 3, 3)
    with pytest.raises(EncoderError, match=r"features\.17\.weight has shape \(512, 128, 3, 3\), expected \(512, 256, 3, 3\)"):
        VGG16(["conv4_1"]).load_weights(broken, "file.pth")


def test_unexpected_key_and_wrong_dtype_are_refused(state):
    extra = dict(state, **{"features.1.running_mean": torch.zeros(64)})
    with pytest.raises(EncoderError, match=r"unexpected key features\.1\.running_mean"):
        check_state_dict(extra, "bn.pth")
    ints = dict(state, **{"features.0.bias": torch.zeros(64, dtype=torch.int64)})
    with pytest.raises(EncoderError, match=r"features\.0\.bias is not a floating-point tensor"):
        check_state_dict(ints, "int.pth")
    with pytest.raises(EncoderError, match="not a state dict"):
        check_state_dict([1, 2], "list.pth")


def test_non_finite_weights_are_refused(state):
    bad = dict(state)
    bad["features.2.weight"] = state["features.2.weight"].clone()
    bad["features.2.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(EncoderError, match=r"features\.2\.weight holds NaN"):
        VGG16(["conv1_2"]).load_weights(bad, "nan.pth")


def test_random_init_is_seeded():
    a, b, c = VGG16(["conv2_1"]), VGG16(["conv2_1"]), VGG16(["conv2_1"])
    a.init_random(7), b.init_random(7), c.init_random(8)
    torch.testing.assert_close(a.features[5].weight, b.features[5].weight)
    assert not torch.equal(a.features[5].weight, c.features[5].weight)
    assert torch.isfinite(a.features[5].weight).all()
