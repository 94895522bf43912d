"""The generator benchmark builds NVIDIA's full-size configs (no timings asserted: figures go in BENCHMARKS.md)."""
from __future__ import annotations

import pytest

from bridge.bench.generator import KINDS, full_config


def test_full_configs_follow_nvidia_train_py():
    sg2, sg3t, sg3r = (full_config(kind, 512) for kind in KINDS)
    assert sg2["mapping_kwargs"] == {"num_layers": 8} and sg3t["mapping_kwargs"] == {"num_layers": 2}
    assert sg2["synthesis_kwargs"]["channel_base"] == 32768 and sg2["synthesis_kwargs"]["channel_max"] == 512
    assert sg3t["synthesis_kwargs"]["channel_base"] == 32768 and "conv_kernel" not in sg3t["synthesis_kwargs"]
    r = sg3r["synthesis_kwargs"]
    assert (r["channel_base"], r["channel_max"], r["conv_kernel"], r["use_radial_filters"]) == (65536, 1024, 1, True)
    assert all(c["z_dim"] == c["w_dim"] == 512 and c["img_resolution"] == 512 for c in (sg2, sg3t, sg3r))
    with pytest.raises(ValueError):
        full_config("stylegan4", 256)


def test_config_f_builds_at_256():
    """Config-f at 256 px: num_ws 14, 512 channels at 4 px, 128 at 256 px (channel_base // res)."""
    from bridge.stylegan import Generator

    generator = Generator.from_config(full_config("stylegan2", 256))
    sd = generator.state_dict()
    assert generator.num_ws == 14
    assert tuple(sd["synthesis.b4.const"].shape) == (512, 4, 4)
    assert tuple(sd["synthesis.b256.conv1.weight"].shape) == (128, 128, 3, 3)
    assert len([k for k in sd if k.startswith("mapping.fc") and k.endswith(".weight")]) == 8
