"""Model mixing: mix 0 / 1 reproduce each network bit for bit, layer swapping, mismatches named."""
from __future__ import annotations

import copy

import pytest
import torch

from bridge.model_mix import ModelMixer, compatibility_problem, tensor_slots
from levers_cases import fixture, perturbed, render, wide


@pytest.mark.parametrize("name", ["sg2", "sg3t"])
@pytest.mark.parametrize("fast", [False, True])
def test_mix_zero_and_one_reproduce_each_model_bit_exactly(name, fast):
    a = fixture(name).set_fast(fast)
    b = perturbed(a, seed=7).set_fast(fast)
    img_a, img_b = render(a, psi=0.7), render(b, psi=0.7)
    assert (img_a - img_b).abs().max() > 1e-3  # really two different networks
    mixer = ModelMixer(a, b)
    for mix, expected in ((1.0, img_b), (0.0, img_a), (1.0, img_b)):
        mixer.apply(a, {"model.mix": mix, "model.swap": (0, 0)})
        assert torch.equal(render(a, psi=0.7), expected)
    mixer.apply(a, {"model.mix": 0.5, "model.swap": (0, 0)})
    half = render(a, psi=0.7)
    assert (half - img_a).abs().max() > 1e-4 and (half - img_b).abs().max() > 1e-4
    mixer.restore()
    assert torch.equal(render(a, psi=0.7), img_a)


def test_mix_is_a_weight_interpolation():
    a = fixture("sg2")
    b = perturbed(a, seed=8)
    originals = {n: t.clone() for n, t in a.state_dict().items()}
    mixer = ModelMixer(a, b)
    mixer.apply(a, {"model.mix": 0.25, "model.swap": (0, 0)})
    for name, tensor in a.state_dict().items():
        if tensor.is_floating_point():
            expected = torch.lerp(originals[name], b.state_dict()[name], 0.25)
            torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-6)


def test_layer_swap_takes_whole_layers_from_b():
    a = fixture("sg2")
    b = perturbed(a, seed=9)
    slots = tensor_slots(a)
    assert slots["synthesis.b4.const"] == 0 and slots["synthesis.b8.conv0.weight"] == 1
    assert slots["synthesis.b8.torgb.weight"] == 3 and slots["synthesis.b32.torgb.weight"] == a.num_ws - 1
    assert slots["mapping.fc0.weight"] is None
    mixer = ModelMixer(a, b)
    mixer.apply(a, {"model.mix": 0.0, "model.swap": (3, 8)})  # fine layers (b16 up) from B
    state, sb = a.state_dict(), b.state_dict()
    for name, slot in slots.items():
        if not state[name].is_floating_point():
            continue
        source = sb if slot is not None and 3 <= slot < 8 else fixture("sg2").state_dict()
        assert torch.equal(state[name], source[name]), name
    img = render(a)
    assert not torch.equal(img, render(fixture("sg2"))) and not torch.equal(img, render(b))
    sg3 = tensor_slots(fixture("sg3t"))
    assert sg3["synthesis.input.affine.weight"] == 0 and sg3["synthesis.L0_36_32.weight"] == 1
    assert sg3["synthesis.L14_32_3.weight"] == 15


def test_a_manipulated_tensor_gets_the_mix_back_next_frame():
    a = fixture("sg2")
    b = perturbed(a, seed=10)
    mixer = ModelMixer(a, b)
    snap = {"model.mix": 1.0, "model.swap": (0, 0)}
    mixer.apply(a, snap)
    with torch.no_grad():
        a.synthesis.b4.const.zero_()  # e.g. a hand manipulation restoring A's constant
    mixer.apply(a, snap)
    assert torch.equal(a.synthesis.b4.const, b.synthesis.b4.const)


def test_mismatches_are_named():
    sg2, sg3 = fixture("sg2"), fixture("sg3t")
    assert compatibility_problem(sg2, sg3) == "arch 'stylegan3' differs from the network's 'stylegan2'"
    assert compatibility_problem(sg2, wide("stylegan2")) == "img_resolution 16 differs from the network's 32"
    from bridge.stylegan import Generator

    config = copy.deepcopy(sg2.config)
    config["z_dim"] = 32
    assert compatibility_problem(sg2, Generator(config)) == "z_dim 32 differs from the network's 64"

    config = copy.deepcopy(sg2.config)
    config["img_resolution"] = 64
    assert compatibility_problem(sg2, Generator(config)) == "img_resolution 64 differs from the network's 32"
    config = copy.deepcopy(sg2.config)
    config["synthesis_kwargs"]["channel_max"] = 16
    problem = compatibility_problem(sg2, Generator(config))
    assert problem.startswith("synthesis_kwargs.channel_max 16 differs")
    with pytest.raises(ValueError, match="arch"):
        ModelMixer(sg2, sg3)
    # Training-only settings may differ.
    config = copy.deepcopy(sg2.config)
    config["mapping_kwargs"]["w_avg_beta"] = 0.5
    other = Generator(config)
    other.load_state_dict(sg2.state_dict())
    assert compatibility_problem(sg2, other) == ""
