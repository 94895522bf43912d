"""TensorFlow-era StyleGAN2 pickles and rosinality checkpoints: real files in each layout, loaded as data.

Fixtures (tests/data/stylegan/formats, built by tests/make_format_fixtures.py): NVIDIA's sg2_tiny networks
written in the TF and rosinality layouts, and a seeded conditional resnet network as a 2-ADA TF pickle.
Their reference images come from independent float64 re-implementations of each codebase's forward pass
(tests/foreign_reference.py), which read the files' own tensors; the loaded generators must agree with
them, and the conversions must give back NVIDIA's tensors one by one.
"""
from __future__ import annotations

import argparse
import fractions
import json
import os
import pickle
import sys

import numpy as np
import pytest
import torch

from bridge.stylegan.foreign_writers import rosinality_state, write_tf_pickle
from bridge.stylegan.loader import load_network, sniff_format
from bridge.stylegan.ops import setup_filter
from bridge.stylegan.pickle_reader import NetworkLoadError, UnsafePickleError, read_snapshot
from bridge.stylegan.rosinality import convert_rosinality
from bridge.stylegan.sg2 import fit_channel_layout
from conftest import STYLEGAN_FIXTURES
from foreign_reference import rosinality_forward, rosinality_mean_latent, tf_forward

FORMATS = STYLEGAN_FIXTURES / "formats"
MANIFEST = json.loads((FORMATS / "manifest.json").read_text())
CASES = MANIFEST["cases"]
TF_TINY = FORMATS / "tf_sg2_tiny.pkl"
ROS_TRAIN = FORMATS / "ros_sg2_tiny_train.pt"
ROS_CONVERT = FORMATS / "ros_sg2_tiny_convert.pt"


def _inputs(case):
    z = np.load(FORMATS / case["z"])
    c = torch.from_numpy(np.load(FORMATS / case["c"])) if case["c"] else None
    return z, c


def _nvidia_sg2(key="G_ema"):
    """sg2_tiny (pinned to NVIDIA's outputs elsewhere) with design filters, as the foreign files hold it."""
    generator = load_network(STYLEGAN_FIXTURES / "sg2_tiny.pkl", key=key)
    with torch.no_grad():
        for name, buf in generator.named_buffers():
            if name.endswith("resample_filter"):
                buf.copy_(setup_filter([1, 3, 3, 1]))
    return generator


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, f"not one line: {text!r}"
    return text


# ------------------------------------------------------------------------------- outputs vs references
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_loaded_network_matches_the_independent_reference(case):
    generator = load_network(FORMATS / case["file"])
    z, c = _inputs(case)
    with torch.no_grad():
        ws = generator.mapping(torch.from_numpy(z), c, truncation_psi=case["truncation_psi"])
        img = generator.synthesis(ws)
    tol = MANIFEST["tolerance"]
    w_ref, img_ref = np.load(FORMATS / case["w"]), np.load(FORMATS / case["img"])
    assert img.shape == img_ref.shape and ws.shape == w_ref.shape
    assert np.abs(ws.numpy() - w_ref).max() <= tol["w_max_abs"]
    assert np.abs(img.numpy() - img_ref).max() <= tol["img_max_abs"]
    assert float(img_ref.std()) > 0.1  # a real picture, not a constant a broken path could also match


@pytest.mark.parametrize("case", [c for c in CASES if c["truncation_psi"] != 1],
                         ids=[c["name"] for c in CASES if c["truncation_psi"] != 1])
def test_committed_references_are_what_the_independent_forward_computes(case):
    """The .npy files are not stale: recompute them from each file's own tensors with foreign_reference."""
    z, c = _inputs(case)
    path = FORMATS / case["file"]
    if path.suffix == ".pkl":
        net = read_snapshot(path)["Gs"]
        _, img = tf_forward(net.all_variables(), net.static_kwargs, z, case["truncation_psi"],
                            c=None if c is None else c.numpy())
    else:
        obj = torch.load(path, weights_only=True, map_location="cpu") if "convert" in path.name else None
        if obj is None:
            with torch.serialization.safe_globals([argparse.Namespace]):
                obj = torch.load(path, weights_only=True, map_location="cpu")
        mean = obj.get("latent_avg")
        if mean is None:  # train.py checkpoints: the seeded 4096-sample mean latent
            zs = torch.randn([4096, z.shape[1]], generator=torch.Generator().manual_seed(0))
            mean = rosinality_mean_latent(obj["g_ema"], zs.numpy())
        _, img = rosinality_forward(obj["g_ema"], z, case["truncation_psi"], np.asarray(mean))
    np.testing.assert_allclose(img.numpy(), np.load(FORMATS / case["img"]), atol=2e-6, rtol=0)


def test_the_reference_would_catch_an_unflipped_up_sampling_kernel():
    """The check has teeth: our generator with conv0 kernels not flipped (the classic TF conversion slip)
    disagrees with the independent TF forward by far more than the tolerance."""
    net = read_snapshot(TF_TINY)["Gs"]
    z = np.load(STYLEGAN_FIXTURES / "inputs" / "z.npy")
    _, ref = tf_forward(net.all_variables(), net.static_kwargs, z)
    generator = load_network(TF_TINY)
    with torch.no_grad():
        good = generator(torch.from_numpy(z))
        for block in generator.synthesis.blocks()[1:]:
            block.conv0.weight.copy_(block.conv0.weight.flip([2, 3]))
        bad = generator(torch.from_numpy(z))
    assert (good.double() - ref).abs().max() < 1e-4
    assert (bad.double() - ref).abs().max() > 0.05


# ------------------------------------------------------------------------------- tensor-by-tensor
@pytest.mark.parametrize("path, key", [(TF_TINY, "G_ema"), (TF_TINY, "G"), (ROS_TRAIN, "G_ema"),
                                       (ROS_TRAIN, "G"), (ROS_CONVERT, "G_ema")])
def test_conversion_gives_back_nvidias_tensors(path, key):
    """Each foreign file was written from NVIDIA's sg2_tiny: reading it back must give the same tensors
    (filters at design value; a rosinality train.py file stores no w_avg, so that one is computed)."""
    original = _nvidia_sg2(key).state_dict()
    loaded = load_network(path, key=key).state_dict()
    assert loaded.keys() == original.keys()
    for name, tensor in original.items():
        if name == "mapping.w_avg" and path == ROS_TRAIN:
            continue
        assert torch.equal(loaded[name], tensor), name


def test_gs_is_not_the_training_copy():
    gs, g = load_network(TF_TINY, key="G_ema"), load_network(TF_TINY, key="G")
    assert not torch.equal(gs.mapping.fc0.weight, g.mapping.fc0.weight)
    assert torch.equal(load_network(TF_TINY, key="Gs").mapping.fc0.weight, gs.mapping.fc0.weight)


def test_rosinality_mean_latent_without_latent_avg_is_seeded_and_close_to_the_stored_one():
    a, b = load_network(ROS_TRAIN), load_network(ROS_TRAIN)
    assert torch.equal(a.mapping.w_avg, b.mapping.w_avg)  # the same on every load
    stored = load_network(ROS_CONVERT).mapping.w_avg  # NVIDIA's tracked average of the same network
    assert not torch.equal(a.mapping.w_avg, stored)


def test_conditional_tf_pickle_keeps_its_labels():
    generator = load_network(FORMATS / "tf_cond_resnet.pkl")
    assert generator.c_dim == 3 and generator.config["synthesis_kwargs"]["architecture"] == "resnet"
    assert generator.config["synthesis_kwargs"]["resample_filter"] == [1.0, 2.0, 1.0]
    z = torch.zeros([1, generator.z_dim])
    with torch.no_grad():
        a, b = (generator(z, torch.eye(3)[[i]]) for i in (0, 1))
    assert (a - b).abs().max() > 1e-3


# ------------------------------------------------------------------------------- configuration
@pytest.mark.parametrize("size", [256, 512, 1024])
@pytest.mark.parametrize("channel_multiplier", [1, 2])
def test_rosinality_channel_table_fits_our_width_rule(size, channel_multiplier):
    """rosinality's channels: 512 up to 32 px, then 256*cm, 128*cm, 64*cm, 32*cm, 16*cm."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier, 128: 128 * channel_multiplier,
             256: 64 * channel_multiplier, 512: 32 * channel_multiplier, 1024: 16 * channel_multiplier}
    channels = {r: c for r, c in table.items() if r <= size}
    base, cmax = fit_channel_layout(channels)
    assert (base, cmax) == (16384 * channel_multiplier, 512)
    assert fit_channel_layout({4: 512, 8: 300, 16: 512}) is None


def _shapes_only_rosinality(size: int, n_mlp: int, cm: int, style_dim: int = 512) -> dict:
    """A rosinality g_ema state dict with the right names and shapes (zeros): config inference only."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm}
    sd = {f"style.{i}.{p}": torch.zeros([style_dim, style_dim] if p == "weight" else [style_dim])
          for i in range(1, n_mlp + 1) for p in ("weight", "bias")}
    kernel = torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1])) / 16 * 4

    def conv(name, cin, cout, k, styled=True):
        sd[f"{name}.conv.weight"] = torch.zeros([1, cout, cin, k, k])
        sd[f"{name}.conv.modulation.weight"] = torch.zeros([cin, style_dim])
        sd[f"{name}.conv.modulation.bias"] = torch.ones([cin])
        if styled:
            sd[f"{name}.noise.weight"] = torch.zeros([1])
            sd[f"{name}.activate.bias"] = torch.zeros([cout])
        else:
            sd[f"{name}.bias"] = torch.zeros([1, cout, 1, 1])

    sd["input.input"] = torch.zeros([1, 512, 4, 4])
    conv("conv1", 512, 512, 3)
    conv("to_rgb1", 512, 3, 1, styled=False)
    sd["noises.noise_0"] = torch.zeros([1, 1, 4, 4])
    res = [2 ** i for i in range(3, int(np.log2(size)) + 1)]
    for k, r in enumerate(res):
        conv(f"convs.{2 * k}", table[r // 2], table[r], 3)
        sd[f"convs.{2 * k}.conv.blur.kernel"] = kernel.clone()
        conv(f"convs.{2 * k + 1}", table[r], table[r], 3)
        conv(f"to_rgbs.{k}", table[r], 3, 1, styled=False)
        sd[f"to_rgbs.{k}.upsample.kernel"] = kernel.clone()
        sd[f"noises.noise_{2 * k + 1}"] = torch.zeros([1, 1, r, r])
        sd[f"noises.noise_{2 * k + 2}"] = torch.zeros([1, 1, r, r])
    return sd


def test_rosinality_config_is_inferred_from_shapes():
    sd = _shapes_only_rosinality(size=128, n_mlp=4, cm=1)
    args = argparse.Namespace(size=999, n_mlp=8, channel_multiplier=2)  # train.py's args can be wrong
    config, state = convert_rosinality({"g_ema": sd, "args": args, "latent_avg": torch.zeros(512)})
    assert config["img_resolution"] == 128 and config["mapping_kwargs"]["num_layers"] == 4
    assert config["synthesis_kwargs"]["channel_base"] == 16384 and config["synthesis_kwargs"]["channel_max"] == 512
    assert config["synthesis_kwargs"]["resample_filter"] == [1.0, 3.0, 3.0, 1.0]
    assert state["synthesis.b64.conv0.weight"].shape == (256, 512, 3, 3)


# ------------------------------------------------------------------------------- fork kwargs
@pytest.fixture(scope="module")
def tiny_gs():
    return load_network(TF_TINY)


@pytest.mark.parametrize("kwargs", [
    {"truncation_psi": 0.5, "truncation_cutoff": 8, "style_mixing_prob": 0.9, "dlatent_avg_beta": 0.995},
    {"impl": "ref", "dtype": "float32", "fused_modconv": False, "randomize_noise": True, "num_fp16_res": 0},
    {"latent_size": 64, "dlatent_size": 64, "normalize_latents": True, "mapping_func": "G_mapping",
     "synthesis_func": "G_synthesis_stylegan2", "use_noise": True, "nonlinearity": "lrelu"},
], ids=["training-and-runtime", "implementation", "explicit-defaults"])
def test_harmless_fork_kwargs_are_accepted(tmp_path, tiny_gs, kwargs):
    path = write_tf_pickle(tmp_path / "fork.pkl", tiny_gs, static_kwargs=kwargs)
    z = torch.from_numpy(np.load(STYLEGAN_FIXTURES / "inputs" / "z.npy"))
    with torch.no_grad():
        assert torch.equal(load_network(path)(z), tiny_gs(z))


@pytest.mark.parametrize("kwargs, named", [
    ({"normalize_latents": False}, "normalize_latents=False"),
    ({"synthesis_func": "G_synthesis_stylegan_revised"}, "synthesis_func="),
    ({"mapping_func": "G_mapping_with_attention"}, "mapping_func="),
    ({"my_fork_style_blend": 0.3}, "my_fork_style_blend=0.3"),
    ({"architecture": "sparse"}, "architecture="),
    ({"latent_size": 512}, "latent_size=512"),
    ({"mapping_layers": 8}, "mapping_layers=8"),
])
def test_forward_changing_fork_kwargs_are_refused_in_one_line(tmp_path, tiny_gs, kwargs, named):
    path = write_tf_pickle(tmp_path / "fork.pkl", tiny_gs, static_kwargs=kwargs)
    with pytest.raises(NetworkLoadError) as info:
        load_network(path)
    assert named in _one_line(info.value)


def test_stylegan1_and_labelconcat_networks_are_refused(tmp_path, tiny_gs):
    old = write_tf_pickle(tmp_path / "v1.pkl", tiny_gs, version=3)
    with pytest.raises(NetworkLoadError, match="too old") as info:
        load_network(old)
    _one_line(info.value)
    concat = write_tf_pickle(tmp_path / "concat.pkl", tiny_gs,
                             extra_variables={"mapping/LabelConcat/weight": np.ones([4, 64])})
    with pytest.raises(NetworkLoadError, match="LabelConcat") as info:
        load_network(concat)
    _one_line(info.value)


# ------------------------------------------------------------------------------- safety
def test_build_module_src_is_never_run(tmp_path, tiny_gs):
    """The armed source really writes the marker when run; loading the pickle must not run it."""
    control, marker = tmp_path / "control", tmp_path / "marker"
    src = "open({!r}, 'w').close()\n"
    exec(compile(src.format(str(control)), "control", "exec"), {})
    assert control.exists(), "control: the source does write its marker"
    path = write_tf_pickle(tmp_path / "armed.pkl", tiny_gs, build_module_src=src.format(str(marker)))
    assert read_snapshot(path)["Gs"].source_sha256  # the source is there (hashed, not run)
    load_network(path)
    assert not marker.exists()


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"{sys.executable} -c \"open({str(self.marker)!r}, 'w').close()\"",)


def test_payload_inside_a_tf_network_state_is_refused(tmp_path, tiny_gs):
    marker = tmp_path / "marker"
    path = write_tf_pickle(tmp_path / "evil.pkl", tiny_gs, static_kwargs={"architecture": _Evil(marker)})
    with pytest.raises(UnsafePickleError, match=r"system") as info:
        load_network(path)
    _one_line(info.value)
    assert not marker.exists()


def test_payload_in_rosinality_args_is_refused(tmp_path):
    marker = tmp_path / "marker"
    generator = load_network(ROS_CONVERT)
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": rosinality_state(generator), "args": argparse.Namespace(size=32, evil=_Evil(marker))},
               path)
    with pytest.raises(UnsafePickleError, match=r"refused global posix\.system") as info:
        load_network(path)
    _one_line(info.value)
    assert not marker.exists()


def test_rosinality_namespace_alone_is_the_one_extra_global(tmp_path):
    """argparse.Namespace loads; a harmless-looking but unlisted class does not."""
    generator = load_network(ROS_CONVERT)
    ok = tmp_path / "ok.pt"
    torch.save({"g_ema": rosinality_state(generator), "args": argparse.Namespace(size=32)}, ok)
    load_network(ok)
    bad = tmp_path / "bad.pt"
    torch.save({"g_ema": rosinality_state(generator), "args": fractions.Fraction(1, 3)}, bad)
    with pytest.raises(UnsafePickleError, match=r"refused global fractions\.Fraction") as info:
        load_network(bad)
    _one_line(info.value)


@pytest.mark.parametrize("path", [TF_TINY, ROS_TRAIN, ROS_CONVERT], ids=["tf", "ros-zip", "ros-legacy"])
@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.97])
def test_truncated_files_give_one_line(tmp_path, path, fraction):
    data = path.read_bytes()
    cut = tmp_path / f"cut{path.suffix}"
    cut.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(NetworkLoadError) as info:
        load_network(cut)
    _one_line(info.value)


def test_rosinality_with_missing_tensors_names_one(tmp_path):
    obj = torch.load(ROS_CONVERT, weights_only=True)
    del obj["g_ema"]["noises.noise_3"]
    path = tmp_path / "holes.pt"
    torch.save(obj, path)
    with pytest.raises(NetworkLoadError, match="noises.noise_3") as info:
        load_network(path)
    _one_line(info.value)


def test_format_is_sniffed_from_content_not_the_name(tmp_path):
    as_pt, as_pkl = tmp_path / "really_tf.pt", tmp_path / "really_rosinality.pkl"
    as_pt.write_bytes(TF_TINY.read_bytes())
    as_pkl.write_bytes(ROS_TRAIN.read_bytes())
    assert sniff_format(as_pt) == "pickle" and sniff_format(as_pkl) == "torch"
    assert load_network(as_pt).source_format == "tensorflow-pickle"
    assert load_network(as_pkl).source_format == "rosinality"


def test_tf_pickle_uses_only_the_listed_globals():
    """The fixture really is in the TF format: its globals are the Network class and numpy's, nothing else."""
    import pickletools

    names = set()
    ops = list(pickletools.genops(TF_TINY.read_bytes()))
    for op, arg, _ in ops:
        if op.name == "GLOBAL":
            names.add(arg)
    assert names == {"dnnlib.tflib.network Network", "numpy.core.multiarray _reconstruct", "numpy ndarray",
                     "numpy dtype", "numpy.core.multiarray scalar"}
    with pytest.raises(Exception):
        pickle.loads(TF_TINY.read_bytes())  # and plain pickle cannot even resolve them here


# ------------------------------------------------------------------------------- CLI
def test_inspect_render_and_convert_each_format(tmp_path, capsys):
    from bridge.cli import main

    for path, label in ((TF_TINY, "TensorFlow StyleGAN2 pickle"), (ROS_TRAIN, "rosinality")):
        assert main(["inspect", str(path)]) == 0
        assert label in capsys.readouterr().out
        out = tmp_path / f"{path.stem}.safetensors"
        assert main(["convert", str(path), str(out)]) == 0
        assert str(out) in capsys.readouterr().out
        z = torch.from_numpy(np.load(STYLEGAN_FIXTURES / "inputs" / "z.npy"))
        with torch.no_grad():
            assert torch.equal(load_network(out)(z), load_network(path)(z))
        assert sniff_format(out) == "safetensors"
        assert main(["render", str(path), "--seeds", "0-1", "--psi", "0.7", "--out", str(tmp_path / path.stem)]) == 0
        assert len(list((tmp_path / path.stem).glob("seed*.png"))) == 2


def test_convert_refuses_bad_input_and_output_in_one_line(tmp_path, capsys):
    from bridge.cli import main

    assert main(["convert", str(TF_TINY), str(tmp_path / "out.pkl")]) == 2
    assert "must be a .safetensors" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    assert main(["convert", str(junk), str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "junk.pt" in err
    assert not (tmp_path / "out.safetensors").exists()


def test_format_benchmark_measures_a_load():
    """`vrbridge bench formats` measures each load with this function (figures: BENCHMARKS.md)."""
    from bridge.bench.formats import measure_load

    row = measure_load(str(TF_TINY))
    assert row["params_M"] > 0 and row["load_s"] >= 0 and row["peak_MB"] > 0
    assert row["output_sum"] == pytest.approx(float(load_network(TF_TINY)(
        torch.randn([1, 64], generator=torch.Generator().manual_seed(1))).double().sum()), abs=1e-9)


@pytest.mark.parametrize("path", [TF_TINY, ROS_TRAIN], ids=["tf", "rosinality"])
def test_the_engine_starts_on_each_format(path):
    """`vrbridge run --network FILE` loads through the same start-up step (warm-up render included)."""
    from bridge.startup import _load_generator

    generator, description, _ = _load_generator({"network": str(path), "allow_download": False}, "cpu", False)
    assert generator.img_resolution == 32 and str(path) in description


def test_the_engine_runs_a_cached_library_model_by_name(tmp_path, monkeypatch):
    from bridge.startup import StartupError, _load_generator
    from bridge.stylegan import library

    entry = library.LibraryModel("tiny-tf", "StyleGAN2", "test", 32, "https://127.0.0.1:9/tiny-tf.pkl", 1)
    monkeypatch.setattr(library, "CATALOG", (entry,))
    monkeypatch.setenv("VRBRIDGE_MODELS_DIR", str(tmp_path))
    with pytest.raises(StartupError, match="vrbridge models get tiny-tf") as info:
        _load_generator({"network": "tiny-tf", "allow_download": False}, "cpu", False)
    _one_line(info.value)
    (tmp_path / "tiny-tf.pkl").write_bytes(TF_TINY.read_bytes())  # as `models get` leaves it
    generator, _, _ = _load_generator({"network": "tiny-tf", "allow_download": False}, "cpu", False)
    assert generator.source_format == "tensorflow-pickle"


def test_psp_e4e_checkpoint_decoder_loads(tmp_path):
    """pSp / encoder4editing keep the rosinality generator as decoder.* and latent_avg once per style slot."""
    reference = load_network(ROS_CONVERT)
    state = {f"decoder.{k}": v for k, v in rosinality_state(reference).items()}
    state["encoder.input_layer.0.weight"] = torch.zeros([4, 3, 3, 3])
    path = tmp_path / "e4e_like.pt"
    torch.save({"state_dict": state, "latent_avg": reference.mapping.w_avg.repeat(reference.num_ws, 1),
                "opts": {"stylegan_size": 32}}, path)
    loaded = load_network(path)
    assert loaded.source_format == "rosinality"
    for name, tensor in reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


@pytest.mark.parametrize("synthesis", [
    {"architecture": "orig"}, {"architecture": "skip", "use_noise": False},
    {"architecture": "resnet", "resample_filter": [1, 3, 3, 1]}, {"architecture": "skip", "channel_max": 8},
], ids=["orig", "skip-no-noise", "resnet", "narrow"])
def test_tf_architecture_options_match_the_independent_forward(tmp_path, synthesis):
    """Each architecture option the TF release has, on seeded random weights: written in the TF layout,
    loaded, and compared with the independent TF forward pass on the file's own variables."""
    from bridge.stylegan.generator import Generator

    config = {"arch": "stylegan2", "z_dim": 16, "w_dim": 16, "c_dim": 0, "img_resolution": 16, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 2},
              "synthesis_kwargs": {"channel_base": 128, "channel_max": 16, "num_fp16_res": 0, **synthesis}}
    source = Generator.from_config(config, seed=3)
    with torch.no_grad():
        for _, p in sorted(source.named_parameters()):
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
        source.mapping.w_avg.normal_(generator=torch.Generator().manual_seed(9))
    path = write_tf_pickle(tmp_path / "arch.pkl", source)
    net = read_snapshot(path)["Gs"]
    z = np.random.RandomState(0).randn(2, 16)
    _, ref = tf_forward(net.all_variables(), net.static_kwargs, z, 0.7)
    with torch.no_grad():
        img = load_network(path)(torch.from_numpy(z), truncation_psi=0.7)
    assert float(ref.std()) > 0.05
    assert (img.double() - ref).abs().max() < 1e-4


@pytest.mark.parametrize("path", [TF_TINY, ROS_CONVERT], ids=["tf", "ros-legacy"])
def test_mutated_files_load_or_fail_in_one_line(tmp_path, path):
    """Random byte flips in the pickle structure (outside the raw tensor bytes): the file loads, or it is
    refused with one NetworkLoadError line; no other exception escapes."""
    import pickletools

    data = path.read_bytes()
    if path.suffix == ".pkl":
        structure = [pos for op, _, pos in pickletools.genops(data) if op.name not in ("BINBYTES", "SHORT_BINBYTES")]
    else:  # legacy torch.save: its leading pickles (magic, header, the tensor tree)
        structure = list(range(min(len(data), 6000)))
    rng = np.random.default_rng(5)
    refused = 0
    for i in range(40):
        mutated = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            pos = min(int(rng.choice(structure)) + int(rng.integers(0, 3)), len(data) - 1)
            mutated[pos] = int(rng.integers(0, 256))
        target = tmp_path / f"m{i}{path.suffix}"
        target.write_bytes(bytes(mutated))
        try:
            load_network(target)
        except NetworkLoadError as exc:
            _one_line(exc)
            refused += 1
    assert refused > 5
