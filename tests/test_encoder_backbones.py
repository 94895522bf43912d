"""MobileNetV3-Large, EfficientNet-B0 and DINOv2 ViT-S/14: the published state-dict formats, strict loading, tap
shapes, truncation, hand-computed blocks, and the whole encoder on real photographs with each of them.

The weights are seeded random state dicts with the published keys and shapes (no download here); they go
through the same file -> strict check -> load path as the real files. The expected key shapes and parameter
counts below are read off the published model definitions (torchvision's ``mobilenet_v3_large`` and
``efficientnet_b0``, whose weight entries list 5,483,032 and 5,288,548 parameters; Meta's ``dinov2_vits14``),
not off our own modules.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from bridge.encoder import EncoderError, build_encoder
from bridge.encoder.backbone import backbone_class, random_state_dict
from bridge.encoder.weights import read_state_dict

IMAGES = Path(__file__).parent / "data" / "images"
NEW = ("mobilenet_v3_large", "efficientnet_b0", "dinov2_vits14")
VECTOR = {"encoder.standardize": "vector"}
RAW = {"encoder.standardize": "none"}

PUBLISHED = {
    "mobilenet_v3_large": {
        "params": 5_483_032,
        "shapes": {
            "features.0.0.weight": (16, 3, 3, 3),
            "features.1.block.0.0.weight": (16, 1, 3, 3),  # no expansion in the first block: depthwise first
            "features.4.block.1.0.weight": (72, 1, 5, 5),
            "features.4.block.2.fc1.weight": (24, 72, 1, 1),  # SE squeezes 72 // 4 = 18, rounded up to 24
            "features.4.block.2.fc2.bias": (72,),
            "features.13.block.2.fc1.weight": (168, 672, 1, 1),
            "features.15.block.3.1.running_var": (160,),
            "features.16.0.weight": (960, 160, 1, 1),
            "classifier.0.weight": (1280, 960),
            "classifier.3.weight": (1000, 1280),
        },
        "absent": ("features.1.block.3.0.weight", "features.7.block.2.fc1.weight", "classifier.1.weight"),
    },
    "efficientnet_b0": {
        "params": 5_288_548,
        "shapes": {
            "features.0.0.weight": (32, 3, 3, 3),
            "features.1.0.block.0.0.weight": (32, 1, 3, 3),
            "features.1.0.block.1.fc1.weight": (8, 32, 1, 1),  # SE squeezes the block's INPUT channels / 4
            "features.2.0.block.2.fc1.weight": (4, 96, 1, 1),
            "features.2.1.block.2.fc1.weight": (6, 144, 1, 1),
            "features.6.3.block.1.0.weight": (1152, 1, 5, 5),
            "features.6.3.block.3.0.weight": (192, 1152, 1, 1),
            "features.7.0.block.3.1.weight": (320,),
            "features.8.0.weight": (1280, 320, 1, 1),
            "classifier.1.weight": (1000, 1280),
        },
        "absent": ("features.1.1.block.0.0.weight", "features.6.4.block.0.0.weight", "classifier.0.weight"),
    },
    "dinov2_vits14": {
        "params": 22_056_576,
        "shapes": {
            "cls_token": (1, 1, 384), "pos_embed": (1, 1 + 37 * 37, 384), "mask_token": (1, 384),
            "patch_embed.proj.weight": (384, 3, 14, 14), "blocks.0.attn.qkv.weight": (1152, 384),
            "blocks.0.ls1.gamma": (384,), "blocks.11.mlp.fc1.weight": (1536, 384), "blocks.11.mlp.fc2.weight": (384, 1536),
            "blocks.11.ls2.gamma": (384,), "norm.bias": (384,),
        },
        "absent": ("blocks.12.norm1.weight", "head.weight", "register_tokens"),
    },
}

# (224x224, 426x320) -> shapes of some taps, as the architectures define them
TAP_SHAPES = {
    "mobilenet_v3_large": {
        "block0": ((16, 112, 112), (16, 160, 213)), "block3": ((24, 56, 56), (24, 80, 107)),
        "block6": ((40, 28, 28), (40, 40, 54)), "block12": ((112, 14, 14), (112, 20, 27)),
        "block15": ((160, 7, 7), (160, 10, 14)), "block16": ((960, 7, 7), (960, 10, 14)),
        "fc1": ((1280,), (1280,)), "logits": ((1000,), (1000,)),
    },
    "efficientnet_b0": {
        "stage0": ((32, 112, 112), (32, 160, 213)), "stage2": ((24, 56, 56), (24, 80, 107)),
        "stage3": ((40, 28, 28), (40, 40, 54)), "stage5": ((112, 14, 14), (112, 20, 27)),
        "stage7": ((320, 7, 7), (320, 10, 14)), "stage8": ((1280, 7, 7), (1280, 10, 14)),
        "logits": ((1000,), (1000,)),
    },
    "dinov2_vits14": {  # 426x320 takes the 420x308 inside it: 30 x 22 patches
        "patch1": ((384, 16, 16), (384, 22, 30)), "patch12": ((384, 16, 16), (384, 22, 30)),
        "cls6": ((384,), (384,)), "cls12": ((384,), (384,)),
    },
}

# encode sizes for the whole-encoder tests: small, 4:3, whole patches for the ViT
ENCODE_SIZE = {"mobilenet_v3_large": (64, 48), "efficientnet_b0": (64, 48), "dinov2_vits14": (84, 56)}


@pytest.fixture(scope="module")
def states() -> dict[str, dict[str, torch.Tensor]]:
    return {name: random_state_dict(backbone_class(name), seed=7) for name in NEW}


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory, states) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for name, state in states.items():
        paths[name] = str(folder / f"{name}.pth")
        torch.save(state, paths[name])
    return paths


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    names = ["handDst.jpg", "handSrc.jpg", "Histogram_Comparison_Source_0.jpg", "basketball1.png"]
    return {n: np.asarray(Image.open(IMAGES / n).convert("RGB")) for n in names}


@pytest.mark.parametrize("name", NEW)
def test_state_dict_format_is_the_published_one(name):
    shapes = backbone_class(name).expected_state_shapes()
    published = PUBLISHED[name]
    counted = sum(torch.Size(s).numel() for k, s in shapes.items() if not k.endswith(("running_mean", "running_var")))
    assert counted == published["params"]
    for key, shape in published["shapes"].items():
        assert shapes[key] == shape, key
    for key in published["absent"]:
        assert key not in shapes


def test_norm_layers_are_the_published_ones():
    from torch import nn

    mobilenet = backbone_class("mobilenet_v3_large")(["block16"])
    assert {m.eps for m in mobilenet.modules() if isinstance(m, nn.BatchNorm2d)} == {0.001}
    assert sum(isinstance(m, nn.Hardswish) for m in mobilenet.modules()) > 0
    effnet = backbone_class("efficientnet_b0")(["stage8"])
    assert {m.eps for m in effnet.modules() if isinstance(m, nn.BatchNorm2d)} == {1e-5}
    vit = backbone_class("dinov2_vits14")(["patch12"])
    assert {m.eps for m in vit.modules() if isinstance(m, nn.LayerNorm)} == {1e-6}


@pytest.mark.parametrize("name", NEW)
def test_strict_load_from_a_file(name, weight_files, states):
    cls = backbone_class(name)
    loaded = read_state_dict(Path(weight_files[name]))
    model = cls(cls.TAPS)
    model.load_weights(loaded, weight_files[name])
    own = model.state_dict()
    assert own, "the full network holds weights"
    for key, tensor in own.items():
        if not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(tensor, states[name][key], rtol=0, atol=0)


@pytest.mark.parametrize("name", NEW)
def test_missing_extra_and_mis_shaped_keys_are_named(name, states):
    cls = backbone_class(name)
    state = states[name]
    key = next(k for k in state if k.endswith("weight") and state[k].ndim >= 2)
    missing = {k: v for k, v in state.items() if k != key}
    with pytest.raises(EncoderError, match=f"file.pth: missing key {key}; expected .*{name}"):
        cls(cls.DEFAULT_TAPS).load_weights(missing, "file.pth")
    with pytest.raises(EncoderError, match=r"unexpected key head\.weight"):
        cls(cls.DEFAULT_TAPS).load_weights(dict(state, **{"head.weight": torch.zeros(3)}), "file.pth")
    wrong = dict(state, **{key: torch.zeros(3, 3)})
    expected = re.escape(f"{key} has shape (3, 3), expected {tuple(state[key].shape)}")
    with pytest.raises(EncoderError, match=expected):
        cls(cls.DEFAULT_TAPS).load_weights(wrong, "file.pth")
    nan = dict(state, **{key: torch.full_like(state[key], float("nan"))})
    model = cls(cls.TAPS)
    with pytest.raises(EncoderError, match="holds NaN"):
        model.load_weights(nan, "file.pth")


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "efficientnet_b0"])
def test_batchnorm_step_counters_may_be_in_the_file_or_not(name, states):
    """torchvision files saved from training carry <bn>.num_batches_tracked; converted ones may not."""
    cls = backbone_class(name)
    with_counters = dict(states[name])
    for key in [k for k in with_counters if k.endswith("running_mean")]:
        with_counters[key.replace("running_mean", "num_batches_tracked")] = torch.tensor(1000, dtype=torch.long)
    cls(cls.DEFAULT_TAPS).load_weights(with_counters, "bn.pth")
    cls(cls.DEFAULT_TAPS).load_weights(states[name], "bn.pth")
    bad = dict(with_counters, **{"features.0.1.num_batches_tracked": torch.zeros(4)})
    with pytest.raises(EncoderError, match=r"features\.0\.1\.num_batches_tracked is not a single integer"):
        cls(cls.DEFAULT_TAPS).load_weights(bad, "bn.pth")


@pytest.mark.parametrize("name", NEW)
def test_tap_shapes_at_224_and_426x320(name, states):
    cls = backbone_class(name)
    expected = TAP_SHAPES[name]
    model = cls(list(expected))
    model.load_weights(states[name], "test")
    gen = torch.Generator().manual_seed(0)
    for index, (height, width) in enumerate(((224, 224), (320, 426))):
        with torch.no_grad():
            out = model(torch.randn(1, 3, height, width, generator=gen))
        assert set(out) == set(expected)
        for tap, shapes in expected.items():
            assert tuple(out[tap].shape[1:]) == shapes[index], (tap, height, width)
            assert model.tap_channels(tap) == shapes[index][0]
            assert torch.isfinite(out[tap]).all()


def test_networks_are_truncated_after_the_deepest_tap():
    mobilenet = backbone_class("mobilenet_v3_large")(["block2", "block6"])
    assert len(mobilenet.features) == 7 and len(mobilenet.classifier) == 0
    assert not any(k.startswith(("features.7.", "classifier")) for k in mobilenet.state_dict())
    assert len(backbone_class("mobilenet_v3_large")(["fc1"]).classifier) == 2  # Linear + Hardswish only
    effnet = backbone_class("efficientnet_b0")(["stage3"])
    assert len(effnet.features) == 4 and len(effnet.classifier) == 0
    vit = backbone_class("dinov2_vits14")(["cls2", "patch4"])
    assert len(vit.blocks) == 4 and not any(k.startswith("blocks.4.") for k in vit.state_dict())
    for model in (mobilenet, effnet, vit):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    with pytest.raises(EncoderError, match="unknown tap 'conv4_1'.*block12"):
        backbone_class("mobilenet_v3_large")(["conv4_1"])
    with pytest.raises(EncoderError, match="unknown tap 'patch13'"):
        backbone_class("dinov2_vits14")(["patch13"])


@pytest.mark.parametrize("name, taps", [("mobilenet_v3_large", ("block3", "block12", "fc1")),
                                        ("efficientnet_b0", ("stage2", "stage6", "logits"))])
def test_batchnorm_folded_for_inference_gives_the_same_features(name, taps, states):
    cls = backbone_class(name)
    plain, folded = cls(taps), cls(taps)
    plain.load_weights(states[name], "test")
    folded.load_weights(states[name], "test")
    folded.prepare_for_inference()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        a, b = plain(x), folded(x)
    for tap in taps:
        torch.testing.assert_close(b[tap], a[tap], rtol=1e-4, atol=1e-4 * float(a[tap].abs().max()))
    with pytest.raises(EncoderError, match="already prepared for inference"):
        folded.load_weights(states[name], "again.pth")


def _bn(x, state, prefix, eps):
    return F.batch_norm(x, state[prefix + ".running_mean"], state[prefix + ".running_var"], state[prefix + ".weight"],
                        state[prefix + ".bias"], False, 0.0, eps)


def test_mobilenet_se_block_by_hand(states):
    """features.4 (24 -> 72 -> 40, 5x5 depthwise stride 2, ReLU, SE with a hardsigmoid gate), written out."""
    state = states["mobilenet_v3_large"]
    model = backbone_class("mobilenet_v3_large")(["block3", "block4"])
    model.load_weights(state, "test")
    with torch.no_grad():
        out = model(torch.randn(1, 3, 96, 64, generator=torch.Generator().manual_seed(2)))
        x, p, eps = out["block3"], "features.4.block.", 0.001
        h = F.relu(_bn(F.conv2d(x, state[p + "0.0.weight"]), state, p + "0.1", eps))
        h = F.relu(_bn(F.conv2d(h, state[p + "1.0.weight"], stride=2, padding=2, groups=72), state, p + "1.1", eps))
        s = F.relu(F.conv2d(h.mean(dim=(2, 3), keepdim=True), state[p + "2.fc1.weight"], state[p + "2.fc1.bias"]))
        h = h * F.hardsigmoid(F.conv2d(s, state[p + "2.fc2.weight"], state[p + "2.fc2.bias"]))
        expected = _bn(F.conv2d(h, state[p + "3.0.weight"]), state, p + "3.1", eps)  # no residual: stride 2
    torch.testing.assert_close(out["block4"], expected, rtol=1e-4, atol=1e-4)


def test_efficientnet_mbconv_by_hand(states):
    """features.2.1 (24 -> 144 -> 24, 3x3 depthwise, SiLU, SE to 6 with a sigmoid gate, residual), written out."""
    state = states["efficientnet_b0"]
    model = backbone_class("efficientnet_b0")(["stage2"])
    model.load_weights(state, "test")
    with torch.no_grad():
        x = model.features[:2](torch.randn(1, 3, 64, 48, generator=torch.Generator().manual_seed(3)))
        x = model.features[2][0](x)
        p, eps = "features.2.1.block.", 1e-5
        h = F.silu(_bn(F.conv2d(x, state[p + "0.0.weight"]), state, p + "0.1", eps))
        h = F.silu(_bn(F.conv2d(h, state[p + "1.0.weight"], padding=1, groups=144), state, p + "1.1", eps))
        s = F.silu(F.conv2d(h.mean(dim=(2, 3), keepdim=True), state[p + "2.fc1.weight"], state[p + "2.fc1.bias"]))
        h = h * torch.sigmoid(F.conv2d(s, state[p + "2.fc2.weight"], state[p + "2.fc2.bias"]))
        expected = x + _bn(F.conv2d(h, state[p + "3.0.weight"]), state, p + "3.1", eps)
        got = model.features[2][1](x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_dinov2_first_block_by_hand(states):
    """Patch embedding, CLS + position, one pre-norm block with 6-head attention and LayerScale, final norm."""
    state = states["dinov2_vits14"]
    model = backbone_class("dinov2_vits14")(["patch1", "cls1"])
    model.load_weights(state, "test")
    image = torch.randn(1, 3, 518, 518, generator=torch.Generator().manual_seed(4))  # 37x37: no resize
    with torch.no_grad():
        out = model(image)
        x = F.conv2d(image, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=14)
        x = torch.cat([state["cls_token"], x.flatten(2).transpose(1, 2)], dim=1) + state["pos_embed"]
        b = "blocks.0."

        def ln(t, name):
            return F.layer_norm(t, (384,), state[name + ".weight"], state[name + ".bias"], 1e-6)

        qkv = F.linear(ln(x, b + "norm1"), state[b + "attn.qkv.weight"], state[b + "attn.qkv.bias"])
        heads = []
        for h in range(6):  # qkv's 1152 outputs are [q heads 0-5 | k heads 0-5 | v heads 0-5], 64 each
            q, k, v = (qkv[0, :, part * 384 + h * 64: part * 384 + (h + 1) * 64] for part in range(3))
            heads.append(torch.softmax(q @ k.T / 8.0, dim=-1) @ v)
        attn = F.linear(torch.cat(heads, dim=-1)[None], state[b + "attn.proj.weight"], state[b + "attn.proj.bias"])
        x = x + state[b + "ls1.gamma"] * attn
        mlp = F.linear(F.gelu(F.linear(ln(x, b + "norm2"), state[b + "mlp.fc1.weight"], state[b + "mlp.fc1.bias"])),
                       state[b + "mlp.fc2.weight"], state[b + "mlp.fc2.bias"])
        x = ln(x + state[b + "ls2.gamma"] * mlp, "norm")
    torch.testing.assert_close(out["cls1"], x[:, 0], rtol=1e-4, atol=1e-4)
    patches = x[0, 1:].reshape(37, 37, 384).permute(2, 0, 1)  # row-major patch order -> (C, rows, columns)
    torch.testing.assert_close(out["patch1"][0], patches, rtol=1e-4, atol=1e-4)


def test_dinov2_position_embeddings_follow_the_grid(states):
    from bridge.encoder.dinov2 import interpolate_pos_embed

    pos = states["dinov2_vits14"]["pos_embed"]
    assert torch.equal(interpolate_pos_embed(pos, 37, 37), pos)
    resized = interpolate_pos_embed(pos, 22, 30)
    assert resized.shape == (1, 1 + 22 * 30, 384)
    assert torch.equal(resized[:, 0], pos[:, 0])  # the CLS position is kept
    # a field that varies linearly down the 37x37 grid still does after the resize (bicubic keeps ramps)
    ramp = torch.arange(37.0).repeat_interleave(37).reshape(1, 37 * 37, 1).expand(1, -1, 2)
    field = interpolate_pos_embed(torch.cat([torch.zeros(1, 1, 2), ramp], dim=1), 22, 30)[0, 1:, 0].reshape(22, 30)
    assert (field[:, 0].diff() > 0).all() and torch.allclose(field[:, 0], field[:, -1])
    assert field[0, 0] < 1.0 and field[-1, 0] > 35.0  # the resized grid spans the same picture


@pytest.mark.parametrize("name", NEW)
def test_whole_encoder_same_image_same_z_different_images_different_z(name, weight_files, images):
    def make(**kwargs):
        return build_encoder(backbone=name, weights=weight_files[name], encode_size=ENCODE_SIZE[name], **kwargs)

    enc = make()
    assert not enc.is_demo and name.upper() in enc.describe()
    assert enc.taps[0].name == backbone_class(name).DEFAULT_TAPS[0]
    rgb = images["handSrc.jpg"]
    for params in (VECTOR, RAW):
        torch.testing.assert_close(make().encode(rgb, params)["coarse"], enc.encode(rgb, params)["coarse"], rtol=0, atol=0)
    rng = np.random.default_rng(0)
    base = images["handDst.jpg"]
    noisy = np.clip(base.astype(np.int16) + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8)
    for params in (VECTOR, RAW):
        zs = {n: enc.encode(img, params)["coarse"] for n, img in images.items()}
        noise = (enc.encode(noisy, params)["coarse"] - zs["handDst.jpg"]).norm().item()
        names = list(zs)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                assert (zs[a] - zs[b]).norm().item() > 10 * noise, (name, params, a, b)


@pytest.mark.parametrize("name, vector_tap", [("mobilenet_v3_large", "logits"), ("efficientnet_b0", "logits"),
                                              ("dinov2_vits14", "cls12")])
def test_regions_work_on_the_feature_map_or_patch_grid(name, vector_tap, weight_files, images):
    enc = build_encoder(backbone=name, weights=weight_files[name], encode_size=ENCODE_SIZE[name], z_dim=64)
    z = enc.encode(images["Histogram_Comparison_Source_0.jpg"], dict(VECTOR, **{"encoder.layout": "paper"}))
    assert z["coarse"].shape == (64,)  # 112 or 384 channels projected to a 64-d z
    assert not torch.equal(z["coarse"], z["middle"]) and not torch.equal(z["middle"], z["fine"])
    vector = build_encoder(backbone=name, weights=weight_files[name], encode_size=ENCODE_SIZE[name], taps=(vector_tap,))
    zv = vector.encode(images["Histogram_Comparison_Source_0.jpg"], dict(VECTOR, **{"encoder.layout": "paper"}))
    assert torch.equal(zv["coarse"], zv["middle"]) and torch.equal(zv["middle"], zv["fine"])  # no layout in a vector


def test_dinov2_encode_size_is_whole_patches(weight_files):
    enc = build_encoder(backbone="dinov2_vits14", weights=weight_files["dinov2_vits14"], encode_size=(426, 320))
    assert enc.encode_size == (420, 308)
    with pytest.raises(EncoderError, match="each side must be 14..4096"):
        build_encoder(backbone="dinov2_vits14", weights=weight_files["dinov2_vits14"], encode_size=(13, 40))


@pytest.mark.parametrize("name", NEW)
def test_random_init_demo_encoder_is_seeded_and_answers_to_the_picture(name, images, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    a = build_encoder(backbone=name, demo=True, encode_size=ENCODE_SIZE[name])
    b = build_encoder(backbone=name, demo=True, encode_size=ENCODE_SIZE[name])
    assert a.is_demo and "random-init demo encoder" in a.describe()
    za = [a.encode(img, VECTOR)["coarse"] for img in images.values()]
    zb = [b.encode(img, VECTOR)["coarse"] for img in images.values()]
    for x, y in zip(za, zb):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert min((za[i] - za[j]).norm() for i in range(4) for j in range(i + 1, 4)) > 0.1


def test_a_file_for_another_backbone_says_which_flag_is_missing(weight_files):
    with pytest.raises(EncoderError, match="missing key features.0.weight.*these look like mobilenet_v3_large "
                                           "weights: add --encoder-backbone mobilenet_v3_large"):
        build_encoder(weights=weight_files["mobilenet_v3_large"])  # auto = the paper's VGG16
    with pytest.raises(EncoderError, match="add --encoder-backbone dinov2_vits14"):
        build_encoder(backbone="efficientnet_b0", weights=weight_files["dinov2_vits14"], demo=True)
