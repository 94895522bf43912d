"""Depth-Anything-V2-Small: the official checkpoint's names and shapes load strictly; output shape and range;
weights found like the encoder's (file, hub cache, refused unchecked download) with one clear line; the
signals read the right geometry. No download: the checkpoint is a random state dict built from the published
layout, written here independently of the module (so a renamed layer fails)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bridge.scene.depth import DepthAnalysis, DepthError, depth_signals, find_depth_weights, load_depth_model
from bridge.scene.depth_model import DepthAnythingV2Small

D, F = 384, 64
OUT = (48, 96, 192, 384)


def official_shapes() -> dict[str, tuple[int, ...]]:
    """depth_anything_v2_vits.pth: every key and shape, from the published architecture."""
    shapes = {"pretrained.cls_token": (1, 1, D), "pretrained.pos_embed": (1, 37 * 37 + 1, D),
              "pretrained.mask_token": (1, D), "pretrained.patch_embed.proj.weight": (D, 3, 14, 14),
              "pretrained.patch_embed.proj.bias": (D,), "pretrained.norm.weight": (D,), "pretrained.norm.bias": (D,)}
    for n in range(12):
        b = f"pretrained.blocks.{n}."
        shapes.update({b + "norm1.weight": (D,), b + "norm1.bias": (D,), b + "attn.qkv.weight": (3 * D, D),
                       b + "attn.qkv.bias": (3 * D,), b + "attn.proj.weight": (D, D), b + "attn.proj.bias": (D,),
                       b + "ls1.gamma": (D,), b + "norm2.weight": (D,), b + "norm2.bias": (D,),
                       b + "mlp.fc1.weight": (4 * D, D), b + "mlp.fc1.bias": (4 * D,),
                       b + "mlp.fc2.weight": (D, 4 * D), b + "mlp.fc2.bias": (D,), b + "ls2.gamma": (D,)})
    h = "depth_head."
    for i, c in enumerate(OUT):
        shapes[f"{h}projects.{i}.weight"], shapes[f"{h}projects.{i}.bias"] = (c, D, 1, 1), (c,)
        shapes[f"{h}scratch.layer{i + 1}_rn.weight"] = (F, c, 3, 3)
    for i, k in ((0, 4), (1, 2)):
        shapes[f"{h}resize_layers.{i}.weight"], shapes[f"{h}resize_layers.{i}.bias"] = (OUT[i], OUT[i], k, k), (OUT[i],)
    shapes[f"{h}resize_layers.3.weight"], shapes[f"{h}resize_layers.3.bias"] = (D, D, 3, 3), (D,)
    for r in range(1, 5):
        p = f"{h}scratch.refinenet{r}."
        shapes[p + "out_conv.weight"], shapes[p + "out_conv.bias"] = (F, F, 1, 1), (F,)
        for unit in ("resConfUnit1", "resConfUnit2"):
            for conv in ("conv1", "conv2"):
                shapes[f"{p}{unit}.{conv}.weight"], shapes[f"{p}{unit}.{conv}.bias"] = (F, F, 3, 3), (F,)
    shapes[f"{h}scratch.output_conv1.weight"], shapes[f"{h}scratch.output_conv1.bias"] = (F // 2, F, 3, 3), (F // 2,)
    shapes[f"{h}scratch.output_conv2.0.weight"], shapes[f"{h}scratch.output_conv2.0.bias"] = (32, F // 2, 3, 3), (32,)
    shapes[f"{h}scratch.output_conv2.2.weight"], shapes[f"{h}scratch.output_conv2.2.bias"] = (1, 32, 1, 1), (1,)
    return shapes


def random_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(s, generator=gen) * 0.02 for k, s in official_shapes().items()}
    state["depth_head.scratch.output_conv2.2.bias"] = torch.ones(1)  # keep the last ReLU open
    return state


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("depth") / "depth_anything_v2_vits.pth"
    torch.save(random_checkpoint(), path)
    return str(path)


def test_the_official_layout_is_exactly_the_module(checkpoint):
    ours = {k: tuple(v.shape) for k, v in DepthAnythingV2Small().state_dict().items()}
    assert ours == official_shapes()
    assert sum(np.prod(s) for s in ours.values()) == 24_785_089  # the model card's 24.8M


def test_checkpoint_loads_strictly_and_gives_a_depth_map(checkpoint):
    model, description, demo = load_depth_model(checkpoint)
    assert not demo and checkpoint in description
    state = random_checkpoint()
    assert torch.equal(model.state_dict()["pretrained.blocks.11.mlp.fc2.weight"],
                       state["pretrained.blocks.11.mlp.fc2.weight"])
    rgb = (np.random.RandomState(0).rand(120, 160, 3) * 255).astype(np.uint8)
    disparity = DepthAnalysis(model, side=126).infer(rgb)
    assert disparity.shape == (126, 168)  # shorter side 126, aspect kept, multiples of 14
    assert np.isfinite(disparity).all() and disparity.min() >= 0 and disparity.std() > 0
    values = DepthAnalysis(model, side=126)(rgb)
    assert set(values) == {"scene.depth.mean", "scene.depth.near", "scene.depth.cx", "scene.depth.cy"}
    assert all(0.0 <= v <= 1.0 for v in values.values())


def test_a_checkpoint_with_a_wrong_layer_is_one_clear_line(tmp_path):
    state = random_checkpoint()
    state["depth_head.projects.0.weight"] = torch.zeros(32, D, 1, 1)  # the Base model's widths differ like this
    del state["pretrained.mask_token"]
    path = tmp_path / "other.pth"
    torch.save(state, path)
    with pytest.raises(DepthError, match="is not a Depth-Anything-V2-Small") as info:
        load_depth_model(str(path))
    assert "\n" not in str(info.value)


def test_weights_are_found_like_the_encoders(tmp_path, monkeypatch, checkpoint):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(DepthError, match="not found: .*missing.pth"):
        find_depth_weights(str(tmp_path / "missing.pth"))
    with pytest.raises(DepthError, match="no Depth-Anything-V2-Small weights found.*--depth-weights FILE"):
        find_depth_weights(None)
    with pytest.raises(DepthError, match="no SHA-256 is pinned"):  # never fetched unchecked, never touches the net
        find_depth_weights(None, allow_download=True)
    cached = tmp_path / "hub" / "checkpoints" / "depth_anything_v2_vits.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(open(checkpoint, "rb").read())
    state, origin = find_depth_weights(None)
    assert origin.startswith("hub cache") and "pretrained.pos_embed" in state
    cached.write_bytes(b"garbage")
    with pytest.raises(DepthError, match="cannot read depth weights.*delete that cached file"):
        find_depth_weights(None)


def test_demo_network_says_so_and_a_named_file_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    model, description, demo = load_depth_model(None, demo=True)
    assert demo and "NOT pretrained" in description
    rgb = np.zeros((112, 112, 3), np.uint8)
    rgb[:, 56:] = 220
    assert DepthAnalysis(model, side=112).infer(rgb).std() > 0  # the demo's map follows the picture
    with pytest.raises(DepthError, match="not found"):
        load_depth_model(str(tmp_path / "typo.pth"), demo=True)


def test_signals_read_a_near_object_on_the_right():
    disparity = np.full((100, 200), 1.0, np.float32)
    disparity[30:70, 140:180] = 5.0  # a near box: 8 % of the frame, right of centre
    disparity += np.linspace(0, 0.1, 200, dtype=np.float32)  # a slight slope in the background
    values = depth_signals(disparity, near_threshold=0.6)
    assert values["scene.depth.near"] == pytest.approx(0.08, abs=0.01)
    assert values["scene.depth.cx"] == pytest.approx(0.8, abs=0.02)
    assert values["scene.depth.cy"] == pytest.approx(0.5, abs=0.02)
    assert values["scene.depth.mean"] > 0.8  # mostly far
    flat = depth_signals(np.ones((10, 10), np.float32), 0.6)
    assert flat["scene.depth.near"] == 0.0 and flat["scene.depth.mean"] == 0.5
