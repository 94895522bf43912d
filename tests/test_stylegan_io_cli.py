"""``vrbridge inspect`` and ``vrbridge render`` as a user runs them.

A few tests run the real console entry point in a subprocess; the rest call ``bridge.cli.main`` in-process
(the same parser, command and error handling, without paying a Python + torch start-up per check).
"""
from __future__ import annotations

import hashlib
import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from bridge.commands.render import parse_seeds
from conftest import STYLEGAN_FIXTURES, vrbridge_cmd
from stylegan_cases import load_cases

SG2 = STYLEGAN_FIXTURES / "sg2_tiny.pkl"


def _run(*args) -> subprocess.CompletedProcess:
    """The CLI in a subprocess."""
    return subprocess.run([*vrbridge_cmd(), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture
def cli(capsys):
    """The CLI in-process: returns an object like CompletedProcess (returncode, stdout, stderr)."""
    from bridge.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


@pytest.mark.parametrize("model, label, num_ws, groups", [
    ("sg2_tiny", "StyleGAN2", 8, "coarse 0-2, middle 3-4, fine 5-7"),
    ("sg3t_tiny", "StyleGAN3-T", 16, "coarse 0-4, middle 5-10, fine 11-15"),
    ("sg3r_tiny", "StyleGAN3-R", 16, "coarse 0-4, middle 5-10, fine 11-15"),
])
def test_inspect_text(model, label, num_ws, groups, cli):
    path = STYLEGAN_FIXTURES / f"{model}.pkl"
    proc = cli("inspect", path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"architecture:  {label}" in out
    assert "resolution:    32x32, 3 channels" in out
    assert "z_dim / w_dim: 64 / 64" in out and "conditional:   no" in out
    assert f"num_ws:        {num_ws}\n" in out
    assert f"style layers:  {groups}" in out
    assert hashlib.sha256(path.read_bytes()).hexdigest() in out


def test_inspect_json_counts_parameters(cli):
    proc = cli("inspect", SG2, "--json")
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    manifest = json.loads((STYLEGAN_FIXTURES / "manifest.json").read_text())["models"]["sg2_tiny"]
    expected = sum(int(np.prod(shape)) for _, kind, shape, _ in manifest["tensors"] if kind == "param")
    assert facts["parameters"] == expected
    assert facts["style_layers"] == {"coarse": [0, 1, 2], "middle": [3, 4], "fine": [5, 6, 7]}
    assert facts["config"]["arch"] == "stylegan2" and facts["format"] == "nvidia-pickle"


def test_inspect_saved_conditional_model(tmp_path, cli):
    from bridge.stylegan import Generator, save_network

    config = {"arch": "stylegan2", "z_dim": 8, "w_dim": 8, "c_dim": 4, "img_resolution": 8, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 1}, "synthesis_kwargs": {"channel_base": 64, "channel_max": 8}}
    weights, _ = save_network(Generator.from_config(config), tmp_path / "cond.safetensors")
    proc = cli("inspect", weights)
    assert proc.returncode == 0, proc.stderr
    assert "conditional:   yes (4 classes)" in proc.stdout and "safetensors" in proc.stdout


@pytest.mark.parametrize("kind", ["malicious", "truncated", "text", "missing", "random"])
def test_inspect_refuses_bad_files_in_one_line(tmp_path, kind, cli):
    target = tmp_path / "model.pkl"
    marker = tmp_path / "marker"
    if kind == "malicious":
        target.write_bytes(b"\x80\x02cos\nsystem\n(X" + len(f"touch {marker}").to_bytes(4, "little")
                           + f"touch {marker}".encode() + b"tR.")
    elif kind == "truncated":
        target.write_bytes(SG2.read_bytes()[:20000])
    elif kind == "text":
        target.write_text("not a model\n")
    elif kind == "random":
        target.write_bytes(b"\x80\x04" + np.random.default_rng(1).bytes(3000))
    proc = _run("inspect", target) if kind == "malicious" else cli("inspect", target)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vrbridge inspect: error:"), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    expected = {"malicious": "os.system", "truncated": "truncated", "text": "unrecognised",
                "missing": "no such model file", "random": "model.pkl"}[kind]
    assert expected in lines[0]
    assert not marker.exists()


def test_render_matches_nvidia_reference(tmp_path):
    """Seeds 11 and 2024 at psi 0.7 are the fixture's base_psi0.7 latents: the PNGs must be NVIDIA's image,
    converted the way gen_images.py converts it."""
    case = next(c for c in load_cases() if c["name"] == "sg2_tiny_base_psi0.7")
    assert case["z"]["seeds"] == [11, 2024]
    proc = _run("render", SG2, "--seeds", "11,2024", "--psi", "0.7", "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    ref = np.load(STYLEGAN_FIXTURES / case["outputs"]["img"])
    ref_u8 = np.clip(ref.transpose(0, 2, 3, 1) * 127.5 + 128, 0, 255).astype(np.uint8)
    for i, seed in enumerate([11, 2024]):
        png = np.asarray(Image.open(tmp_path / "out" / f"seed{seed:04d}.png"))
        assert png.shape == (32, 32, 3) and png.dtype == np.uint8
        diff = np.abs(png.astype(int) - ref_u8[i].astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # float noise may flip a rounding


def test_render_seed_ranges(tmp_path, cli):
    out = tmp_path / "out"
    proc = cli("render", SG2, "--seeds", "0-1,5", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["seed0000.png", "seed0001.png", "seed0005.png"]
    images = [np.asarray(Image.open(out / n)) for n in ("seed0000.png", "seed0001.png")]
    assert not np.array_equal(*images) and images[0].std() > 5  # different seeds, not blank


def test_render_conditional_needs_a_class(tmp_path, cli):
    from bridge.stylegan import Generator, save_network

    config = {"arch": "stylegan2", "z_dim": 8, "w_dim": 8, "c_dim": 3, "img_resolution": 8, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 1}, "synthesis_kwargs": {"channel_base": 64, "channel_max": 8}}
    weights, _ = save_network(Generator.from_config(config), tmp_path / "cond.safetensors")
    proc = cli("render", weights, "--seeds", "1", "--out", tmp_path / "o")
    assert proc.returncode == 2 and "--class" in proc.stderr
    proc = cli("render", weights, "--seeds", "1", "--class", "5", "--out", tmp_path / "o")
    assert proc.returncode == 2 and "out of range" in proc.stderr
    proc = cli("render", weights, "--seeds", "1", "--class", "2", "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "seed0001.png").exists()


@pytest.mark.parametrize("seeds, message", [("3-1", "backwards"), ("a", "bad seed"), ("1,,2", "bad seed"),
                                            ("4294967296", "too large"), ("0-99999", "more than")])
def test_render_bad_seeds(tmp_path, seeds, message, cli):
    proc = cli("render", SG2, "--seeds", seeds, "--out", tmp_path / "o")
    assert proc.returncode == 2 and message in proc.stderr
    assert not (tmp_path / "o").exists()


def test_parse_seeds():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_seeds(" 5 ") == [5]
    assert parse_seeds("2-2,0") == [2, 0]
    with pytest.raises(ValueError, match="bad seed"):
        parse_seeds("-1")


def test_inspect_state_dict_needs_config(tmp_path, cli):
    import torch

    from bridge.stylegan import load_network

    generator = load_network(SG2)
    torch.save(generator.state_dict(), tmp_path / "w.pt")
    proc = cli("inspect", tmp_path / "w.pt")
    assert proc.returncode == 2 and "no generator config" in proc.stderr
    (tmp_path / "cfg.json").write_text(json.dumps(generator.config))
    proc = cli("inspect", tmp_path / "w.pt", "--config", tmp_path / "cfg.json")
    assert proc.returncode == 0 and "torch state dict" in proc.stdout, proc.stderr
    (tmp_path / "bad.json").write_text("{nope")
    proc = cli("inspect", tmp_path / "w.pt", "--config", tmp_path / "bad.json")
    assert proc.returncode == 2 and "cannot read config" in proc.stderr
