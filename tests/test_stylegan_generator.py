"""Generator, mapping network, seeded random init, style-layer groups and the embedded demo network."""
from __future__ import annotations

import pytest
import torch

from bridge.stylegan.generator import Generator, default_layer_groups, demo_config, validate_config
from bridge.stylegan.loader import load_network
from stylegan_cases import ROOT


def tiny_config(**overrides) -> dict:
    config = {"arch": "stylegan2", "z_dim": 16, "w_dim": 16, "c_dim": 0, "img_resolution": 16, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 3}, "synthesis_kwargs": {"channel_base": 128, "channel_max": 16}}
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def sg2_tiny() -> Generator:
    return load_network(ROOT / "sg2_tiny.pkl")


# ----------------------------------------------------------------------------------------- public surface

def test_public_attributes_and_forward(sg2_tiny):
    g = sg2_tiny
    assert (g.arch, g.z_dim, g.w_dim, g.c_dim, g.num_ws, g.img_resolution, g.img_channels) == \
        ("stylegan2", 64, 64, 0, 8, 32, 3)
    z = torch.randn(2, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ws = g.mapping(z, None, truncation_psi=0.5)
        assert ws.shape == (2, 8, 64)
        torch.testing.assert_close(g(z, None, truncation_psi=0.5), g.synthesis(ws), rtol=0, atol=0)


def test_mapping_default_depth_follows_arch():
    assert Generator(tiny_config(mapping_kwargs={})).mapping.num_layers == 8
    sg3 = {"arch": "stylegan3", "z_dim": 16, "w_dim": 16, "c_dim": 0, "img_resolution": 16, "img_channels": 3}
    try:
        generator = Generator(sg3)
    except ImportError:
        pytest.skip("StyleGAN3 synthesis not available")
    assert generator.mapping.num_layers == 2 and [n for n, _ in generator.named_parameters()][-1] == "mapping.fc1.bias"


# -------------------------------------------------------------------------------------------- truncation

def test_truncation_psi_and_cutoff(sg2_tiny):
    z = torch.randn(3, 64, generator=torch.Generator().manual_seed(1))
    w_avg = sg2_tiny.mapping.w_avg
    with torch.no_grad():
        full = sg2_tiny.mapping(z, None)
        assert torch.equal(full[:, 0], full[:, -1])                         # one w broadcast to num_ws slots
        half = sg2_tiny.mapping(z, None, truncation_psi=0.5)
        torch.testing.assert_close(half, w_avg + 0.5 * (full - w_avg))
        cut = sg2_tiny.mapping(z, None, truncation_psi=0.5, truncation_cutoff=3)
        torch.testing.assert_close(cut[:, :3], half[:, :3], rtol=0, atol=0)  # below the cutoff: truncated
        torch.testing.assert_close(cut[:, 3:], full[:, 3:], rtol=0, atol=0)  # from the cutoff on: untouched
        zero = sg2_tiny.mapping(z, None, truncation_psi=0.0)
        torch.testing.assert_close(zero, w_avg.expand_as(zero), rtol=0, atol=0)


def test_mapping_normalises_z_scale(sg2_tiny):
    z = torch.randn(2, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(sg2_tiny.mapping(z, None), sg2_tiny.mapping(z * 10, None), rtol=1e-5, atol=1e-5)


def test_conditional_mapping():
    generator = Generator.from_config(tiny_config(c_dim=4), seed=0)
    names = [n for n, _ in generator.named_parameters()]
    assert "mapping.embed.weight" in names and "mapping.embed.bias" in names
    assert generator.mapping.fc0.weight.shape == (16, 32)  # z (16) + embedded c (16)
    z = torch.randn(2, 16)
    c0, c1 = torch.eye(4)[[0, 0]], torch.eye(4)[[1, 1]]
    with torch.no_grad():
        assert not torch.allclose(generator.mapping(z, c0), generator.mapping(z, c1))
        assert generator(z, c0).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"conditional: c must have shape \(2, 4\)"):
        generator.mapping(z, None)
    with pytest.raises(ValueError, match="c must have shape"):
        generator.mapping(z, torch.zeros(2, 3))


def test_bad_z_is_refused_with_a_clear_error(sg2_tiny):
    with pytest.raises(ValueError, match=r"z must have shape \(N, 64\), got \(2, 63\)"):
        sg2_tiny.mapping(torch.zeros(2, 63), None)
    with pytest.raises(ValueError, match="z must have shape"):
        sg2_tiny(torch.zeros(64), None)


# --------------------------------------------------------------------------------------------- from_config

def _state(generator: Generator) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in generator.state_dict().items()}


def test_from_config_is_deterministic_per_seed():
    a, b, c = (Generator.from_config(tiny_config(), seed=s) for s in (7, 7, 8))
    sa, sb, sc = _state(a), _state(b), _state(c)
    assert sa.keys() == sb.keys() == sc.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    differing = [k for k in sa if not torch.equal(sa[k], sc[k])]
    assert "synthesis.b4.const" in differing and "mapping.fc0.weight" in differing
    assert not any(p.requires_grad for p in a.parameters())


def test_from_config_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Generator.from_config(tiny_config(), seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_random_init_designs_like_nvidia():
    g = Generator.from_config(tiny_config(), seed=0)
    layer = g.synthesis.b8.conv0
    torch.testing.assert_close(layer.affine.bias, torch.ones_like(layer.affine.bias))  # styles start near 1
    assert float(layer.noise_strength) == 0.0 and torch.count_nonzero(layer.bias) == 0
    expected_filter = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64
    torch.testing.assert_close(layer.resample_filter, expected_filter)
    assert torch.count_nonzero(g.mapping.w_avg) == 0
    assert 50 < float(g.mapping.fc0.weight.std()) < 200  # stored = randn / lr_multiplier (0.01)


def test_config_validation_names_the_problem():
    cases = [
        ("not a dict", "must be a dict"),
        (tiny_config(arch="stylegan4"), "arch"),
        (tiny_config(z_dim="512"), "z_dim"),
        (tiny_config(w_dim=0), "positive"),
        (tiny_config(img_channels=-3), "img_channels"),
        (tiny_config(synthesis_kwargs=[1, 2]), "synthesis_kwargs"),
        (tiny_config(mapping_kwargs={"lr_multiplier": object()}), "JSON"),
    ]
    for config, message in cases:
        with pytest.raises(ValueError, match=message):
            Generator(config)
    with pytest.raises(ValueError, match="unknown random_init"):
        Generator.from_config(tiny_config(random_init={"sparkle": 1}))
    config = tiny_config()
    assert validate_config(config) == config and validate_config(config) is not config


def test_config_is_kept_and_json_round_trips():
    import json

    assert json.loads(json.dumps(demo_config())) == demo_config()
    config = tiny_config(random_init={"torgb_octave_gain": 2.0, "noise_strength": 0.05, "calibrate_std": 0.6})
    g = Generator.from_config(config, seed=0)
    assert g.config == config
    again = Generator(json.loads(json.dumps(g.config)))  # plain construction ignores random_init
    again.load_state_dict(g.state_dict(), strict=True)
    z = torch.randn(1, 16)
    with torch.no_grad():
        torch.testing.assert_close(again(z, None), g(z, None), rtol=0, atol=0)


def test_random_init_tuning_is_applied():
    plain = Generator.from_config(tiny_config(), seed=0)
    tuned = Generator.from_config(tiny_config(random_init={"torgb_octave_gain": 2.0, "noise_strength": 0.05,
                                                           "calibrate_std": 0.6}), seed=0)
    assert float(tuned.synthesis.b8.conv1.noise_strength) == pytest.approx(0.05)
    # Same seed, same draws: ToRGB weights differ only by a per-block scale growing 2x per octave.
    ratios = [float((tuned.synthesis.blocks()[i].torgb.weight / plain.synthesis.blocks()[i].torgb.weight).mean())
              for i in range(3)]
    assert ratios[1] == pytest.approx(2 * ratios[0], rel=1e-5) and ratios[2] == pytest.approx(4 * ratios[0], rel=1e-5)
    torch.testing.assert_close(tuned.synthesis.b4.const, plain.synthesis.b4.const, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------ layer groups

@pytest.mark.parametrize("num_ws,arch,expected", [
    (18, "stylegan2", {"coarse": (0, 4), "middle": (4, 8), "fine": (8, 18)}),   # 1024 px
    (14, "stylegan2", {"coarse": (0, 4), "middle": (4, 8), "fine": (8, 14)}),   # 256 px
    (8, "stylegan2", {"coarse": (0, 3), "middle": (3, 5), "fine": (5, 8)}),     # 32 px: thirds
    (16, "stylegan3", {"coarse": (0, 5), "middle": (5, 11), "fine": (11, 16)}),
])
def test_default_layer_groups(num_ws, arch, expected):
    assert default_layer_groups(num_ws, arch) == expected


def test_default_layer_groups_from_a_generator(sg2_tiny):
    assert default_layer_groups(sg2_tiny) == default_layer_groups(8, "stylegan2")
    assert default_layer_groups(Generator(tiny_config())) == {"coarse": (0, 2), "middle": (2, 4), "fine": (4, 6)}


@pytest.mark.parametrize("arch", ["stylegan2", "stylegan3"])
def test_default_layer_groups_always_partition(arch):
    for num_ws in range(1, 41):
        groups = default_layer_groups(num_ws, arch)
        assert list(groups) == ["coarse", "middle", "fine"]
        (a0, a1), (b0, b1), (c0, c1) = groups.values()
        assert a0 == 0 and a1 == b0 and b1 == c0 and c1 == num_ws and a0 <= a1 <= b1 <= c1
        if num_ws >= 3:
            assert a1 > a0 and b1 > b0 and c1 > c0, (num_ws, groups)


def test_default_layer_groups_rejects_nonsense():
    with pytest.raises(ValueError):
        default_layer_groups(0)
    with pytest.raises(ValueError):
        default_layer_groups(14, "stylegan1")
    with pytest.raises(TypeError):
        default_layer_groups("14")


# ------------------------------------------------------------------------------------------ demo network

@pytest.fixture(scope="module")
def demo() -> Generator:
    return Generator.from_config(demo_config(), seed=0)


def test_demo_network_shape(demo):
    assert (demo.arch, demo.z_dim, demo.w_dim, demo.num_ws, demo.img_resolution) == ("stylegan2", 512, 512, 14, 256)


def test_demo_picture_has_structure_and_colour(demo):
    z = torch.randn(4, 512, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        img = demo(z, None, truncation_psi=0.7)
    rgb = img.clamp(-1, 1)
    assert torch.isfinite(img).all()
    assert 0.2 < float(rgb.std()) < 1.0                       # not flat, not clipped to a binary image
    assert float((img.abs() > 1).float().mean()) < 0.25       # mostly inside the nominal range
    # Colour: the channels are not copies of one another (a grey picture has chroma ~0).
    chroma = (rgb - rgb.mean(dim=1, keepdim=True)).abs().mean()
    assert float(chroma) > 0.05
    # Structure, not noise: neighbouring pixels agree far more than pixels across the frame.
    neighbour = torch.corrcoef(torch.stack([rgb[..., :, 1:].flatten(), rgb[..., :, :-1].flatten()]))[0, 1]
    assert float(neighbour) > 0.8
    # It follows z: different latents, clearly different pictures.
    assert float((img[0] - img[1]).abs().mean()) > 0.1


def test_demo_is_reproducible(demo):
    again = Generator.from_config(demo_config(), seed=0)
    assert all(torch.equal(x, y) for x, y in zip(demo.state_dict().values(), again.state_dict().values()))


def test_set_fast_on_cpu_stays_float32_and_equal(sg2_tiny):
    """On the CPU the fast path rearranges the float32 maths (bridge.stylegan.sg2_cpu): equal up to rounding."""
    z = torch.randn(1, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = sg2_tiny(z, None)
        sg2_tiny.set_fast(True)
        try:
            got = sg2_tiny(z, None)
        finally:
            sg2_tiny.set_fast(False)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-4 * float(ref.abs().max()))
    assert got.dtype == torch.float32


def test_mapping_without_w_avg_like_nvidia():
    generator = Generator.from_config(tiny_config(mapping_kwargs={"num_layers": 2, "w_avg_beta": None}), seed=0)
    assert "mapping.w_avg" not in dict(generator.named_buffers())
    z = torch.randn(1, 16)
    assert generator.mapping(z, None).shape == (1, 6, 16)
    with pytest.raises(ValueError, match="truncation_psi must be 1"):
        generator.mapping(z, None, truncation_psi=0.7)
