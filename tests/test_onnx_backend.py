"""ONNX export and the ONNX Runtime backend, on the CPU provider, against the torch generator.

The exported graphs must pass ONNX's checker, carry the contract's input/output names and shapes, and match
torch on the NVIDIA-written fixtures (w max error <= 1e-4, images >= 60 dB PSNR), at batch 1 and 3, with the
optional lever input left at its default and fed an edited value.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from bridge.onnx_backend import (PROVIDER_ORDER, OnnxUnavailable, OrtGenerator, choose_providers,  # noqa: E402
                                 refusal)
from bridge.stylegan.loader import load_network  # noqa: E402
from stylegan_cases import ROOT, psnr  # noqa: E402

pytestmark = pytest.mark.slow
MODELS = ("sg2_tiny", "sg3t_tiny")


@pytest.fixture(scope="module", params=MODELS)
def exported(request, tmp_path_factory):
    """``vrbridge export MODEL --onnx DIR`` on a fixture (the command checks the graphs against torch too)."""
    from bridge.cli import main
    from bridge.onnx_backend import MAPPING_FILE, SYNTHESIS_FILE

    out = tmp_path_factory.mktemp(request.param)
    assert main(["export", str(ROOT / f"{request.param}.pkl"), "--onnx", str(out)]) == 0
    return load_network(ROOT / f"{request.param}.pkl"), out, {"mapping": out / MAPPING_FILE,
                                                             "synthesis": out / SYNTHESIS_FILE}


def _z(n: int, seed: int, z_dim: int) -> np.ndarray:
    return np.random.RandomState(seed).randn(n, z_dim).astype(np.float32)


def test_graphs_pass_the_checker_and_have_the_contract_names(exported):
    generator, _, paths = exported
    mapping = onnx.load(str(paths["mapping"]))
    synthesis = onnx.load(str(paths["synthesis"]))
    for model in (mapping, synthesis):
        onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in mapping.graph.input] == ["z", "truncation_psi"]
    assert [o.name for o in mapping.graph.output] == ["ws"]
    lever = "const" if generator.arch == "stylegan2" else "transform"
    assert [i.name for i in synthesis.graph.input] == ["ws", lever]
    assert [o.name for o in synthesis.graph.output] == ["img"]
    assert lever in {i.name for i in synthesis.graph.initializer}  # optional, defaulting to the model's value
    session = ort.InferenceSession(str(paths["synthesis"]), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    assert isinstance(shape[0], str) and shape[1:] == [generator.num_ws, generator.w_dim]
    psi = ort.InferenceSession(str(paths["mapping"]), providers=["CPUExecutionProvider"]).get_inputs()[1]
    assert psi.shape == [] and psi.type == "tensor(float)"


@pytest.mark.parametrize("batch, psi", [(1, 0.7), (3, 1.0)])
def test_outputs_match_torch(exported, batch, psi):
    generator, _, paths = exported
    mapping = ort.InferenceSession(str(paths["mapping"]), providers=["CPUExecutionProvider"])
    synthesis = ort.InferenceSession(str(paths["synthesis"]), providers=["CPUExecutionProvider"])
    z = _z(batch, 5, generator.z_dim)
    with torch.no_grad():
        ws_ref = generator.mapping(torch.from_numpy(z), None, truncation_psi=psi)
        img_ref = generator.synthesis(ws_ref).numpy()
    ws = mapping.run(["ws"], {"z": z, "truncation_psi": np.array(psi, np.float32)})[0]
    assert np.abs(ws - ws_ref.numpy()).max() <= 1e-4
    img = synthesis.run(["img"], {"ws": ws_ref.numpy()})[0]
    assert img.shape == img_ref.shape and img.dtype == np.float32
    assert psnr(img, img_ref) >= 60


def test_the_lever_input_reaches_the_picture(exported):
    """An edited const (SG2) or transform (SG3) fed to the graph gives what torch gives with that edit."""
    generator, _, paths = exported
    synthesis = ort.InferenceSession(str(paths["synthesis"]), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ws = generator.mapping(torch.from_numpy(_z(1, 6, generator.z_dim)), None)
        if generator.arch == "stylegan2":
            name, value = "const", -generator.synthesis.b4.const
            ref = generator.synthesis(ws, const=value)
        else:
            angle = 0.4
            name = "transform"
            value = torch.tensor([[np.cos(angle), np.sin(angle), 0.1], [-np.sin(angle), np.cos(angle), 0.0],
                                  [0, 0, 1]], dtype=torch.float32)
            ref = generator.synthesis(ws, transform=value)
        default = generator.synthesis(ws)
    got = synthesis.run(["img"], {"ws": ws.numpy(), name: value.numpy()})[0]
    assert psnr(got, ref.numpy()) >= 60
    assert psnr(got, default.numpy()) < 40  # the edit really changed the picture


def test_ort_generator_behaves_like_the_generator(exported):
    """What the engine calls: mapping, per-slot truncation, synthesis, and levers editing the named tensor."""
    from bridge.manipulate.base import find_tensor

    generator, out, _ = exported
    ortg = OrtGenerator(out, providers=["CPUExecutionProvider"])
    assert (ortg.arch, ortg.num_ws, ortg.z_dim, ortg.img_resolution) == (
        generator.arch, generator.num_ws, generator.z_dim, generator.img_resolution)
    z = torch.from_numpy(_z(1, 7, generator.z_dim))
    with torch.no_grad():
        ws_ref = generator.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
        ws = ortg.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
        assert float((ws - ws_ref).abs().max()) <= 1e-4
        name = "synthesis.b4.const" if generator.arch == "stylegan2" else "synthesis.input.transform"
        lever, mine = find_tensor(ortg, name), find_tensor(generator, name)
        assert lever is not None and torch.equal(lever, mine)
        lever.mul_(-1) if generator.arch == "stylegan2" else lever[0, 2].add_(0.2)
        mine_saved = mine.clone()
        try:
            mine.copy_(lever)
            ref = generator.synthesis(ws_ref)
        finally:
            mine.copy_(mine_saved)
        assert psnr(ortg.synthesis(ws_ref).numpy(), ref.numpy()) >= 60


def test_providers_follow_the_fixed_order():
    assert choose_providers(["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]) == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["CPUExecutionProvider", "CoreMLExecutionProvider"]) == [
        "CoreMLExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["DmlExecutionProvider", "CPUExecutionProvider"])[0] == "DmlExecutionProvider"
    assert PROVIDER_ORDER[-1] == "CPUExecutionProvider"
    assert "CPUExecutionProvider" in choose_providers()


def test_missing_graphs_and_refused_levers_are_one_line(tmp_path):
    with pytest.raises(OnnxUnavailable, match="mapping.onnx, synthesis.onnx") as info:
        OrtGenerator(tmp_path)
    assert "\n" not in str(info.value) and "vrbridge export" in str(info.value)
    line = refusal("noise_mode", "random")
    assert "\n" not in line and "noise_mode='random'" in line and "--backend torch" in line


def test_engine_runs_the_exported_graphs(exported):
    """``vrbridge run --network DIR --backend onnxruntime``: the engine publishes frames from ONNX Runtime; a
    lever the graphs cannot honour is refused at start in one line."""
    from bridge.startup import StartupError, build_engine
    import conftest

    _, out, _ = exported
    settings = {"network": str(out), "backend": "onnxruntime", "device": "cpu", "osc_in": "off", "osc_out": [],
                "oscquery": "off", "preview": "off", "demo_encoder": True, "encoder_size": "64x48"}
    with pytest.raises(StartupError) as info:
        build_engine({**settings, "noise_mode": "random"})
    assert "\n" not in str(info.value) and "noise_mode" in str(info.value)
    engine = build_engine(settings)
    frames = []
    engine.add_report_observer(frames.append)
    engine.start()
    try:
        assert conftest.wait_for(lambda: engine.frames_rendered >= 3, timeout=60)
        assert engine.health()["status"] == "ok"
        assert "onnxruntime (CPUExecutionProvider)" in engine.model_description
    finally:
        engine.stop()


def test_export_command_refuses_bad_arguments_in_one_line(tmp_path, capsys):
    from bridge.cli import main

    assert main(["export", str(tmp_path / "missing.pkl"), "--onnx", str(tmp_path / "out")]) == 2
    assert "no such model file" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["export", str(ROOT / "sg2_tiny.pkl"), "--onnx", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and err.count("\n") == 1
