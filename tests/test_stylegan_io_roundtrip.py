"""Saving and reloading: pickle -> safetensors + JSON -> load gives the same generator, bit for bit;
plain torch state dicts with a config; conditional models; clear errors for weights that do not fit."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from bridge.stylegan import Generator
from bridge.stylegan.loader import (
    CONFIG_METADATA_KEY, config_from_record, load_network, save_network, sniff_format,
)
from bridge.stylegan.pickle_reader import NetworkLoadError, read_snapshot
from conftest import STYLEGAN_FIXTURES
from stylegan_cases import dumps_snapshot, nvidia_globals, persistent_from_record, record_from_module

MODELS = ["sg2_tiny", "sg3t_tiny", "sg3r_tiny"]
SG2 = STYLEGAN_FIXTURES / "sg2_tiny.pkl"

TINY_SG2 = {"arch": "stylegan2", "z_dim": 16, "w_dim": 16, "c_dim": 0, "img_resolution": 16,
            "img_channels": 3, "mapping_kwargs": {"num_layers": 2},
            "synthesis_kwargs": {"channel_base": 128, "channel_max": 16}}
TINY_SG3 = {"arch": "stylegan3", "z_dim": 16, "w_dim": 16, "c_dim": 0, "img_resolution": 16,
            "img_channels": 3, "mapping_kwargs": {"num_layers": 2},
            "synthesis_kwargs": {"channel_base": 64, "channel_max": 8, "num_layers": 4}}


def _render(generator, c_dim: int = 0, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, generator.z_dim))  # batch 1: SG3 on CPU is slow
    c = torch.nn.functional.one_hot(torch.tensor([c_dim - 2]), c_dim).float() if c_dim else None
    with torch.no_grad():
        ws = generator.mapping(z, c, truncation_psi=0.7)
        return ws, generator.synthesis(ws, noise_mode="const")


def _assert_same(a, b, c_dim: int = 0, forward: bool = True) -> None:
    """Same config, bit-identical tensors and (when ``forward``) bit-identical w and image."""
    assert a.config == b.config
    sd_a, sd_b = a.state_dict(), b.state_dict()
    assert list(sd_a) == list(sd_b) and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    if not forward:
        return
    for x, y in zip(_render(a, c_dim), _render(b, c_dim)):
        assert torch.equal(x, y), float((x - y).abs().max())


@pytest.mark.parametrize("model", MODELS)
def test_pickle_to_safetensors_round_trip_is_bit_exact(tmp_path, model):
    original = load_network(STYLEGAN_FIXTURES / f"{model}.pkl")
    weights, sidecar = save_network(original, tmp_path / "model.safetensors")
    assert weights.exists() and sidecar == tmp_path / "model.json"
    assert json.loads(sidecar.read_text()) == original.config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]  # no temp files
    assert sniff_format(weights) == "safetensors"
    # SG3-R's CPU forward is the slowest; identical config + tensors already imply identical outputs
    _assert_same(load_network(weights), original, forward=model != "sg3r_tiny")


def test_safetensors_metadata_carries_the_config(tmp_path):
    from safetensors import safe_open

    original = load_network(SG2)
    weights, sidecar = save_network(original, tmp_path / "m.safetensors")
    with safe_open(str(weights), framework="pt") as fh:
        assert json.loads(fh.metadata()[CONFIG_METADATA_KEY]) == original.config
    sidecar.unlink()  # the metadata alone is enough
    _assert_same(load_network(weights), original)


def test_safetensors_without_metadata_uses_the_sidecar(tmp_path):
    from safetensors.torch import save_file

    original = load_network(SG2)
    save_file({k: v.contiguous() for k, v in original.state_dict().items()}, str(tmp_path / "bare.safetensors"))
    with pytest.raises(NetworkLoadError, match="no generator config"):
        load_network(tmp_path / "bare.safetensors")
    (tmp_path / "bare.json").write_text(json.dumps(original.config))
    _assert_same(load_network(tmp_path / "bare.safetensors"), original)
    _assert_same(load_network(tmp_path / "bare.safetensors", config=original.config), original)


@pytest.mark.parametrize("layout", ["plain", "keyed", "prefixed"])
def test_torch_state_dict_with_config(tmp_path, layout):
    original = load_network(SG2)
    sd = original.state_dict()
    obj = {"plain": sd, "keyed": {"G_ema": sd}, "prefixed": {f"G_ema.{k}": v for k, v in sd.items()}}[layout]
    path = tmp_path / "weights.pt"
    torch.save(obj, path)
    assert sniff_format(path) == "torch"
    with pytest.raises(NetworkLoadError, match="no generator config"):
        load_network(path)
    _assert_same(load_network(path, config=original.config), original)


def test_legacy_torch_save_format(tmp_path):
    original = load_network(SG2)
    path = tmp_path / "legacy.pth"
    torch.save(original.state_dict(), path, _use_new_zipfile_serialization=False)
    assert sniff_format(path) == "torch"
    _assert_same(load_network(path, config=original.config), original)


def test_malicious_torch_file_is_refused(tmp_path):
    import os

    marker = tmp_path / "marker"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(NetworkLoadError, match=r"refused global posix\.system"):
        load_network(path, config=TINY_SG2)
    assert not marker.exists()


def test_renamed_pickle_is_sniffed_as_pickle(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(SG2.read_bytes())
    assert sniff_format(path) == "pickle"
    _assert_same(load_network(path), load_network(SG2))


def test_weights_that_do_not_fit_the_config(tmp_path):
    original = load_network(SG2)
    sd = dict(original.state_dict())
    path = tmp_path / "w.pt"

    narrower = json.loads(json.dumps(original.config))
    narrower["synthesis_kwargs"]["channel_max"] = 16
    torch.save(sd, path)
    with pytest.raises(NetworkLoadError, match=r"wrong shape: synthesis\.b4\.const \(32, 4, 4\) != \(16, 4, 4\)"):
        load_network(path, config=narrower)

    del sd["synthesis.b8.conv0.weight"]
    sd["synthesis.b64.extra"] = torch.zeros(1)
    torch.save(sd, path)
    with pytest.raises(NetworkLoadError) as info:
        load_network(path, config=original.config)
    assert "missing: synthesis.b8.conv0.weight" in str(info.value)
    assert "unexpected: synthesis.b64.extra" in str(info.value)

    with pytest.raises(NetworkLoadError, match="arch"):
        load_network(path, config={"arch": "stylegan9"})
    with pytest.raises(NetworkLoadError, match="valid generator"):
        load_network(path, config={**original.config, "z_dim": -1})


def test_corrupt_safetensors(tmp_path):
    original = load_network(SG2)
    weights, _ = save_network(original, tmp_path / "m.safetensors")
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(NetworkLoadError, match="unreadable safetensors"):
        load_network(weights)


@pytest.mark.parametrize("base", [TINY_SG2, TINY_SG3], ids=["sg2", "sg3"])
def test_conditional_model_round_trips(tmp_path, base):
    """c_dim > 0: from_config -> safetensors -> load, and -> NVIDIA-format pickle -> load; same outputs."""
    config = {**base, "c_dim": 5}
    original = Generator.from_config(config, seed=3)
    assert original.c_dim == 5 and "mapping.embed.weight" in original.state_dict()

    weights, _ = save_network(original, tmp_path / "cond.safetensors")
    _assert_same(load_network(weights), original, c_dim=5)

    arch_children = {"stylegan2": "SynthesisBlock", "stylegan3": "SynthesisLayer"}

    def nvidia_class(path, module):
        if path == "synthesis.input":
            return "SynthesisInput"
        if path.count(".") == 1 and path.startswith("synthesis."):
            return arch_children[config["arch"]]
        return type(module).__name__

    kwargs = {k: config[k] for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")}
    record = record_from_module(original, "Generator", {**kwargs, "mapping_kwargs": config["mapping_kwargs"],
                                                        **config["synthesis_kwargs"]}, nvidia_class)
    assert config_from_record(record) == config
    path = tmp_path / "cond.pkl"
    path.write_bytes(dumps_snapshot({"G_ema": record, "training_set_kwargs": {"use_labels": True}}))
    reread = read_snapshot(path)["G_ema"]
    assert reread.init_kwargs["c_dim"] == 5
    _assert_same(load_network(path), original, c_dim=5)


def test_save_refuses_a_json_path(tmp_path):
    with pytest.raises(ValueError):
        save_network(Generator.from_config(TINY_SG2), tmp_path / "x.json")


def test_bare_network_pickle_without_snapshot_dict(tmp_path):
    """Some tools pickle G_ema alone (not a snapshot dict): it is read as the G_ema entry."""
    record = read_snapshot(SG2)["G_ema"]
    with nvidia_globals():
        data = pickle.dumps(persistent_from_record(record), protocol=4)
    path = tmp_path / "bare.pkl"
    path.write_bytes(data)
    assert set(read_snapshot(path)) == {"G_ema"}
    _assert_same(load_network(path), load_network(SG2))


def test_safetensors_whose_header_length_starts_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    """The first byte of a safetensors file is its header length's low byte: 0x80 looks like a pickle's PROTO."""
    from safetensors.torch import save_file

    original = Generator.from_config(TINY_SG2)
    tensors = {k: v.contiguous() for k, v in original.state_dict().items()}
    path = tmp_path / "m.safetensors"
    for pad in range(0, 300):  # grow the metadata until the (8-byte padded) header length ends in 0x80
        save_file(tensors, str(path), metadata={CONFIG_METADATA_KEY: json.dumps(original.config), "pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert sniff_format(path) == "safetensors"
    _assert_same(load_network(path), original, forward=False)


def test_pickle_sniff_needs_a_protocol_byte(tmp_path):
    path = tmp_path / "junk.pkl"
    path.write_bytes(b"\x80\xff" + bytes(64))
    with pytest.raises(NetworkLoadError, match="unrecognised file format"):
        sniff_format(path)
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    assert sniff_format(path) == "pickle"
