"""Classes: the conditional fixture, c built as NVIDIA's mapping expects, ImageNet names and the class map."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bridge.classes import (ClassMapError, ClassSource, imagenet_id, imagenet_names, one_hot_blend, parse_class_map,
                            signal_names)
from levers_cases import CONDITIONAL_FIXTURE, render, write_conditional_fixture


@pytest.fixture(scope="module")
def cond():
    from bridge.stylegan import load_network

    return load_network(CONDITIONAL_FIXTURE)


def test_the_fixture_is_what_the_writer_makes(tmp_path, cond):
    write_conditional_fixture(tmp_path / "again.safetensors")
    from bridge.stylegan import load_network

    again = load_network(tmp_path / "again.safetensors")
    assert cond.c_dim == 4 and cond.config == again.config
    for (name, a), (_, b) in zip(cond.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def _nvidia_mapping(g, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """NVIDIA's mapping written out from its published definition, on the stored tensors."""
    def rms_norm(x):
        return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()

    def fc(layer, x, act):
        y = x @ (layer.weight * layer.weight_gain).t() + layer.bias * layer.bias_gain
        return torch.nn.functional.leaky_relu(y, 0.2) * math.sqrt(2) if act else y

    x = torch.cat([rms_norm(z), rms_norm(fc(g.mapping.embed, c, act=False))], dim=1)
    for i in range(g.mapping.num_layers):
        x = fc(getattr(g.mapping, f"fc{i}"), x, act=True)
    return x


def test_c_is_nvidias_one_hot_and_the_mapping_embeds_it_their_way(cond):
    source = ClassSource(cond.c_dim)
    snap = {"class.a": 2, "class.b": 0, "class.blend": 0.0, "class.source": "manual"}
    c = source.vector(snap)
    assert c.dtype == np.float32 and c.tolist() == [0, 0, 1, 0]
    z = torch.from_numpy(np.random.RandomState(3).randn(1, cond.z_dim)).float()
    ct = torch.from_numpy(c)[None]
    with torch.no_grad():
        ws = cond.mapping(z, ct)
        torch.testing.assert_close(ws[:, 0], _nvidia_mapping(cond, z, ct), rtol=1e-5, atol=1e-5)
    blended = source.vector(dict(snap, **{"class.b": 1, "class.blend": 0.25}))
    np.testing.assert_allclose(blended, [0, 0.25, 0.75, 0])
    assert source.vector(dict(snap, **{"class.a": 99})).tolist() == [0, 0, 0, 1]  # clipped to the last class
    assert ClassSource(0).vector(snap) is None


def test_different_classes_render_differently(cond):
    images = [render(cond, seed=5, c=torch.from_numpy(one_hot_blend(4, k, k, 0))[None]) for k in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert (images[i] - images[j]).abs().mean() > 1e-3
    again = render(cond, seed=5, c=torch.from_numpy(one_hot_blend(4, 1, 1, 0))[None])
    assert torch.equal(again, images[1])
    with pytest.raises(ValueError, match="conditional"):
        render(cond, seed=5, c=None)


def test_imagenet_names_and_the_class_map():
    names = imagenet_names()
    assert len(names) == 1000 and names[0] == "tench" and names[207] == "golden_retriever"
    assert names[999] == "toilet_tissue"
    safe = signal_names()
    assert len(set(safe)) == 1000 and all(n.replace("_", "").isalnum() and n == n.lower() for n in safe)
    assert safe[134] == "crane_134" and safe[517] == "crane_517" and safe[281] == "tabby"
    assert imagenet_id("281") == 281 and imagenet_id("Golden_Retriever") == 207 and imagenet_id("crane_517") == 517
    assert parse_class_map(["207:3", "tabby:1"], c_dim=4) == {207: 3, 281: 1}
    for bad, message in ((["207"], "use IMAGENET:MODEL_CLASS"), (["207:9"], "out of range 0..3"),
                         (["unicorn:1"], "unknown ImageNet class"), (["1000:1"], "out of range 0..999")):
        with pytest.raises(ClassMapError, match=message):
            parse_class_map(bad, c_dim=4)


def test_camera_classes_build_c_from_the_mapped_probabilities():
    source = ClassSource(4, class_map={207: 3, 208: 3, 281: 1})
    logits = torch.full((1000,), -10.0)
    logits[207], logits[281], logits[5] = 2.0, 1.0, 3.0  # 5 (electric ray) is unmapped
    source.observe_logits(logits[None])
    p = torch.softmax(logits, 0).double().numpy()
    c = source.vector({"class.source": "camera", "class.a": 0, "class.b": 0, "class.blend": 0.0})
    expected = np.zeros(4)
    expected[3], expected[1] = p[207] + p[208], p[281]
    np.testing.assert_allclose(c, expected / expected.sum(), rtol=1e-6)
    assert [i for i, _ in source.top[:3]] == [5, 207, 281]
    # Manual mode ignores the scene.
    assert source.vector({"class.source": "manual", "class.a": 2, "class.b": 0, "class.blend": 0.0}).tolist() == [0, 0, 1, 0]

