"""NVIDIA's reference outputs, reproduced through load_network, and the layouts real pickles come in.

The 12 cases of tests/data/stylegan (README there) run on generators loaded from the fixture pickles;
variants of those pickles (numpy-2 global names, 2-ADA's nested synthesis_kwargs, a full snapshot with an
augment_pipe) must load to bit-identical outputs.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from bridge.stylegan.loader import build_generator, config_from_record, load_network
from bridge.stylegan.pickle_reader import NetworkLoadError, NetworkRecord, read_snapshot
from conftest import STYLEGAN_FIXTURES
from stylegan_cases import (
    assert_case_ok, case_ids, dumps_snapshot, load_cases, load_manifest, rewrite_strings, run_case,
)

CASES = load_cases()
MODELS = ["sg2_tiny", "sg3t_tiny", "sg3r_tiny"]


@functools.lru_cache(maxsize=None)
def _generator(pickle_name: str, key: str = "G_ema"):
    return load_network(STYLEGAN_FIXTURES / pickle_name, key=key)


def _outputs(generator, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, generator.z_dim))
    with torch.no_grad():
        ws = generator.mapping(z, None, truncation_psi=0.7)
        return ws, generator.synthesis(ws, noise_mode="const")


def _assert_identical(a, b, forward: bool | None = None, same_config: bool = True) -> None:
    """Same config and bit-identical tensors (hence identical outputs); also run both when ``forward``
    (default: only for the cheap SG2 model, SG3's CPU forward being slow on shared test machines)."""
    assert a.config == b.config or not same_config
    sd_a, sd_b = a.state_dict(), b.state_dict()
    assert list(sd_a) == list(sd_b)
    for name in sd_a:
        assert torch.equal(sd_a[name], sd_b[name]), name
    if forward or (forward is None and a.arch == "stylegan2"):
        for x, y in zip(_outputs(a), _outputs(b)):
            assert torch.equal(x, y), float((x - y).abs().max())


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_reference_case(case):
    generator = _generator(case["pickle"], case["network_key"])
    assert generator.arch == case["arch"] and generator.num_ws == case["num_ws"]
    result = run_case(generator, case)
    assert_case_ok(result, case)
    # a faithful float32 implementation lands at float noise (measured: w <= 1e-6, images 125-146 dB)
    assert result["w_err"] <= 1e-5 and result["psnr"] >= 100, (result["w_err"], result["psnr"])


def test_twelve_cases_cover_three_models():
    assert len(CASES) == 12 and {c["model"] for c in CASES} == set(MODELS)


@pytest.mark.parametrize("model", MODELS)
def test_loaded_tensors_match_the_manifest_table(model):
    """Every tensor the manifest lists is in the loaded generator under the same name, kind and shape."""
    info = load_manifest()["models"][model]
    generator = _generator(f"{model}.pkl")
    params, buffers = dict(generator.named_parameters()), dict(generator.named_buffers())
    for name, kind, shape, dtype in info["tensors"]:
        table = params if kind == "param" else buffers
        assert name in table, f"{model}: {kind} {name} missing"
        assert list(table[name].shape) == shape and str(table[name].dtype) == f"torch.{dtype}"
    assert len(params) + len(buffers) == len(info["tensors"])
    snapshot_sd = read_snapshot(STYLEGAN_FIXTURES / f"{model}.pkl")["G_ema"].state_dict()
    for name, tensor in generator.state_dict().items():
        assert torch.equal(tensor, snapshot_sd[name]), name


@pytest.mark.parametrize("model", MODELS)
def test_config_from_record_matches_the_init_kwargs(model):
    info = load_manifest()["models"][model]
    config = config_from_record(read_snapshot(STYLEGAN_FIXTURES / f"{model}.pkl")["G_ema"])
    kwargs = dict(info["G_ema_init_kwargs"])
    assert config["arch"] == info["arch"]
    assert config["mapping_kwargs"] == kwargs.pop("mapping_kwargs")
    for name in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):
        assert config[name] == kwargs.pop(name)
    assert config["synthesis_kwargs"] == kwargs


def test_g_is_not_g_ema():
    """`G` (the training copy) loads too, and renders differently: the loader honours `key`."""
    g, g_ema = _generator("sg2_tiny.pkl", "G"), _generator("sg2_tiny.pkl")
    assert not torch.equal(_outputs(g)[1], _outputs(g_ema)[1])


@pytest.mark.parametrize("model", MODELS)
def test_numpy2_global_names_load(tmp_path, model):
    """Pickles written under numpy 2 name numpy._core.multiarray; rewrite a fixture's opcodes to check."""
    data = (STYLEGAN_FIXTURES / f"{model}.pkl").read_bytes()
    assert b"numpy.core.multiarray" in data
    rewritten = rewrite_strings(data, {"numpy.core.multiarray": "numpy._core.multiarray"})
    assert b"numpy.core.multiarray" not in rewritten and b"numpy._core.multiarray" in rewritten
    path = tmp_path / "numpy2.pkl"
    path.write_bytes(rewritten)
    record = read_snapshot(path)["G_ema"]
    attrs = record.submodule("mapping.fc0").attrs
    assert isinstance(attrs["weight_gain"], np.floating)
    _assert_identical(load_network(path), _generator(f"{model}.pkl"))


def _ada_layout(record: NetworkRecord) -> NetworkRecord:
    """The same Generator with its init kwargs as stylegan2-ada-pytorch writes them (nested
    synthesis_kwargs, training_set-first key order does not matter here) and positional dims."""
    kwargs = dict(record.init_kwargs)
    dims = [kwargs.pop(n) for n in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")]
    mapping_kwargs = kwargs.pop("mapping_kwargs")
    kwargs.pop("fused_modconv_default", None)  # not an ADA argument
    record.init_args = tuple(dims)
    record.init_kwargs = {"mapping_kwargs": mapping_kwargs, "synthesis_kwargs": kwargs}
    return record


def test_ada_layout_loads_to_the_same_outputs(tmp_path):
    snapshot = read_snapshot(STYLEGAN_FIXTURES / "sg2_tiny.pkl")
    ada = _ada_layout(snapshot["G_ema"])
    config = config_from_record(ada)
    assert config["synthesis_kwargs"] == {"channel_base": 256, "channel_max": 32}
    assert config["c_dim"] == 0 and config["z_dim"] == 64
    path = tmp_path / "ada.pkl"
    path.write_bytes(dumps_snapshot({"training_set_kwargs": snapshot["training_set_kwargs"], "G_ema": ada}))
    reread = read_snapshot(path)["G_ema"]
    assert "synthesis_kwargs" in reread.init_kwargs and reread.init_args == (64, 0, 64, 32, 3)
    _assert_identical(load_network(path), _generator("sg2_tiny.pkl"), same_config=False)  # no fused_modconv
    for case in (c for c in CASES if c["model"] == "sg2_tiny"):
        assert_case_ok(run_case(load_network(path), case), case)


def _augment_pipe() -> NetworkRecord:
    g = torch.Generator().manual_seed(3)
    return NetworkRecord(
        class_name="AugmentPipe", init_args=(), init_kwargs={"xflip": 1, "rotate90": 1, "xint": 1},
        attrs={"xflip": 1.0, "rotate90": 1.0, "xint_max": 0.125},
        params={}, buffers={"p": torch.tensor(0.25), "Hz_geom": torch.randn(12, generator=g),
                            "Hz_fbank": torch.randn(4, 64, generator=g)},
        modules={}, non_persistent=set())


@pytest.mark.parametrize("model", MODELS)
def test_full_snapshot_with_augment_pipe(tmp_path, model):
    snapshot = read_snapshot(STYLEGAN_FIXTURES / f"{model}.pkl")
    snapshot["augment_pipe"] = _augment_pipe()
    path = tmp_path / "full.pkl"
    path.write_bytes(dumps_snapshot(snapshot))
    reread = read_snapshot(path)
    assert set(reread) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    pipe = reread["augment_pipe"]
    assert pipe.class_name == "AugmentPipe" and set(pipe.buffers) == {"p", "Hz_geom", "Hz_fbank"}
    assert float(pipe.buffers["p"]) == 0.25
    _assert_identical(load_network(path), _generator(f"{model}.pkl"))
    _assert_identical(load_network(path, key="G"), _generator(f"{model}.pkl", "G"))


def test_protocol_3_pickles(tmp_path):
    """Python 3.7 wrote protocol 3 by default (no FRAME, no STACK_GLOBAL; sets are builtins.set calls)."""
    snapshot = read_snapshot(STYLEGAN_FIXTURES / "sg3t_tiny.pkl")
    data = dumps_snapshot({"G_ema": snapshot["G_ema"]}, protocol=3)
    assert data[:2] == b"\x80\x03" and b"cbuiltins\nset\n" in data
    path = tmp_path / "old.pkl"
    path.write_bytes(data)
    _assert_identical(load_network(path), _generator("sg3t_tiny.pkl"))


def test_malformed_init_kwargs_are_load_errors():
    """Corrupt constructor arguments: a NetworkLoadError before any network is built."""
    for patch, message in (({"z_dim": "64"}, "non-negative ints"), ({"c_dim": -1}, "non-negative ints"),
                           ({"mapping_kwargs": 3}, "mapping_kwargs is a int"),
                           ({"img_resolution": 1 << 20}, "implausible img_resolution")):
        record = read_snapshot(STYLEGAN_FIXTURES / "sg2_tiny.pkl")["G_ema"]
        record.init_kwargs.update(patch)
        with pytest.raises(NetworkLoadError, match=message):
            build_generator(config_from_record(record), record.state_dict())
