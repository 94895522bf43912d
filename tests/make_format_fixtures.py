"""Regenerate the TensorFlow-era and rosinality fixtures in tests/data/stylegan/formats/ (run by hand:
``PYTHONPATH=. python tests/make_format_fixtures.py``). Seeded; the .npy references come out identical
on a rebuild (the pickle and .pt bytes may differ: torch names storages after memory addresses).

Sources:
- ``sg2_tiny`` G_ema / G from ../sg2_tiny.pkl (NVIDIA's code built them), with the resample filters put back
  to their design value ([1, 3, 3, 1]): TF pickles and rosinality files store no filters (or normalised
  ones), and the NVIDIA fixture perturbed them on purpose.
- ``cond_resnet``: a seeded, perturbed conditional (3 classes) resnet generator with a [1, 2, 1] kernel and
  conv_clamp 256, written as a 2-ADA TF pickle (version 5, LabelEmbed), to cover the Skip conv, another
  kernel and labels.

References (``*_img.npy``, ``*_w.npy``, float32) come from the independent forward passes in
foreign_reference.py, run in float64 on each file's own tensors; each case also records the max abs
difference from our NVIDIA-pinned generator at build time.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from foreign_reference import rosinality_forward, rosinality_mean_latent, tf_forward  # noqa: E402

from bridge.stylegan.foreign_writers import rosinality_state, write_rosinality, write_tf_pickle  # noqa: E402
from bridge.stylegan.generator import Generator  # noqa: E402
from bridge.stylegan.loader import load_network  # noqa: E402
from bridge.stylegan.ops import setup_filter  # noqa: E402
from bridge.stylegan.pickle_reader import read_snapshot  # noqa: E402
from bridge.stylegan.rosinality import MEAN_LATENT_SAMPLES, MEAN_LATENT_SEED  # noqa: E402

DATA = HERE / "data" / "stylegan"
OUT = DATA / "formats"
SRC_NOTE = "# build_module_src of this fixture: no source is stored (a real file holds networks_stylegan2.py)\n"
COND_CONFIG = {
    "arch": "stylegan2", "z_dim": 32, "w_dim": 32, "c_dim": 3, "img_resolution": 16, "img_channels": 3,
    "mapping_kwargs": {"num_layers": 2, "w_avg_beta": 0.995},
    "synthesis_kwargs": {"channel_base": 128, "channel_max": 16, "architecture": "resnet",
                         "resample_filter": [1, 2, 1], "conv_clamp": 256, "num_fp16_res": 0},
}


def design_filters(generator, kernel=(1, 3, 3, 1)):
    with torch.no_grad():
        for name, buf in generator.named_buffers():
            if name.endswith("resample_filter"):
                buf.copy_(setup_filter(list(kernel)))
    return generator


def perturbed(config: dict, seed: int):
    """Seeded random generator where every tensor matters (noise strengths, biases, w_avg non-zero)."""
    gen = Generator.from_config(config, seed=seed)
    rng = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for name, p in gen.named_parameters():
            scale = float(p.std()) if p.numel() > 1 and float(p.std()) > 0 else 1.0
            p.add_(0.2 * scale * torch.randn(p.shape, generator=rng))
        gen.mapping.w_avg.add_(0.5 * torch.randn(gen.mapping.w_avg.shape, generator=rng))
        for name, buf in gen.named_buffers():
            if name.endswith("noise_const"):
                buf.copy_(torch.randn(buf.shape, generator=rng))
    return gen


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_case(cases: list, name: str, file: str, psi: float, w, img, ours, c=None) -> None:
    np.save(OUT / f"{name}_w.npy", w.to(torch.float32).numpy())
    np.save(OUT / f"{name}_img.npy", img.to(torch.float32).numpy())
    cases.append({"name": name, "file": file, "truncation_psi": psi, "z": "../inputs/z.npy" if c is None
                  else "cond_z.npy", "c": None if c is None else "cond_c.npy",
                  "w": f"{name}_w.npy", "img": f"{name}_img.npy",
                  "ours_max_abs_diff_at_build": float((ours.double() - img).abs().max())})


def main() -> None:
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    z = np.load(DATA / "inputs" / "z.npy")
    cases: list[dict] = []
    files: dict[str, dict] = {}

    gs = design_filters(load_network(DATA / "sg2_tiny.pkl"))
    g = design_filters(load_network(DATA / "sg2_tiny.pkl", key="G"))
    tf_path = write_tf_pickle(OUT / "tf_sg2_tiny.pkl", gs, g, build_module_src=SRC_NOTE, protocol=3, version=4)
    files[tf_path.name] = {"format": "TensorFlow StyleGAN2 pickle (G, D, Gs), protocol 3, version 4",
                           "source": "sg2_tiny G_ema (Gs) and G, design filters"}
    net = read_snapshot(tf_path)["Gs"]
    for psi in (1.0, 0.7):
        w, img = tf_forward(net.all_variables(), net.static_kwargs, z, psi)
        with torch.no_grad():
            ours = gs(torch.from_numpy(z), truncation_psi=psi)
        save_case(cases, f"tf_sg2_tiny_psi{psi:g}", tf_path.name, psi, w, img, ours)

    cond = perturbed(COND_CONFIG, seed=77)
    cz = np.random.RandomState(5).randn(2, 32)
    cc = np.eye(3)[[2, 0]]
    np.save(OUT / "cond_z.npy", cz)
    np.save(OUT / "cond_c.npy", cc.astype(np.float32))
    cond_path = write_tf_pickle(OUT / "tf_cond_resnet.pkl", cond, build_module_src=SRC_NOTE, protocol=4, version=5)
    files[cond_path.name] = {"format": "2-ADA TensorFlow pickle (G, D, Gs), protocol 4, version 5",
                             "source": f"seeded perturbed generator {json.dumps(COND_CONFIG)} (seed 77)"}
    net = read_snapshot(cond_path)["Gs"]
    for psi in (1.0, 0.7):
        w, img = tf_forward(net.all_variables(), net.static_kwargs, cz, psi, c=cc)
        with torch.no_grad():
            ours = cond(torch.from_numpy(cz), torch.from_numpy(cc).float(), truncation_psi=psi)
        save_case(cases, f"tf_cond_resnet_psi{psi:g}", cond_path.name, psi, w, img, ours, c=True)

    train = write_rosinality(OUT / "ros_sg2_tiny_train.pt", gs, g, layout="train", zipped=True)
    files[train.name] = {"format": "rosinality train.py checkpoint (zip): g, d, g_ema, optimisers, args "
                                   "(argparse.Namespace), ada_aug_p", "source": "sg2_tiny G_ema and G, design filters"}
    state = rosinality_state(gs)
    zs = torch.randn([MEAN_LATENT_SAMPLES, 64], generator=torch.Generator().manual_seed(MEAN_LATENT_SEED))
    mean = rosinality_mean_latent(state, zs.numpy())
    for psi in (1.0, 0.7):
        w, img = rosinality_forward(state, z, psi, mean.numpy())
        with torch.no_grad():
            ours = load_network(train)(torch.from_numpy(z), truncation_psi=psi)
        save_case(cases, f"ros_sg2_tiny_train_psi{psi:g}", train.name, psi, w, img, ours)

    conv = write_rosinality(OUT / "ros_sg2_tiny_convert.pt", gs, layout="convert", zipped=False)
    files[conv.name] = {"format": "rosinality convert_weight.py output, legacy (non-zip) torch.save: "
                                  "g_ema, latent_avg", "source": "sg2_tiny G_ema, design filters"}
    for psi in (1.0, 0.7):
        w, img = rosinality_forward(state, z, psi, gs.mapping.w_avg.numpy())
        with torch.no_grad():
            ours = gs(torch.from_numpy(z), truncation_psi=psi)
        save_case(cases, f"ros_sg2_tiny_convert_psi{psi:g}", conv.name, psi, w, img, ours)

    for name in files:
        files[name]["sha256"] = sha256(OUT / name)
    manifest = {"format": "vrbridge-foreign-format-fixtures/1", "generator": "tests/make_format_fixtures.py",
                "reference": "tests/foreign_reference.py (independent float64 forward passes)",
                "tolerance": {"img_max_abs": 1e-4, "w_max_abs": 1e-4}, "files": files, "cases": cases}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for case in cases:
        print(f"{case['name']:<32} ours vs reference {case['ours_max_abs_diff_at_build']:.2e}")


if __name__ == "__main__":
    main()
