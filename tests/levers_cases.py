"""Networks the lever tests share: the NVIDIA fixtures, a seeded full-width (z/w 512) random one, a conditional one."""
from __future__ import annotations

import functools
from pathlib import Path

import torch

FIXTURES = Path(__file__).parent / "data" / "stylegan"
PICKLES = {"sg2": FIXTURES / "sg2_tiny.pkl", "sg3t": FIXTURES / "sg3t_tiny.pkl", "sg3r": FIXTURES / "sg3r_tiny.pkl"}

# Full-width latents as in every public model, with a small synthesis so a test renders in milliseconds.
WIDE_SG2 = {"arch": "stylegan2", "z_dim": 512, "w_dim": 512, "c_dim": 0, "img_resolution": 16, "img_channels": 3,
            "mapping_kwargs": {"num_layers": 4}, "synthesis_kwargs": {"channel_base": 256, "channel_max": 32}}
WIDE_SG3 = {"arch": "stylegan3", "z_dim": 512, "w_dim": 512, "c_dim": 0, "img_resolution": 16, "img_channels": 3,
            "mapping_kwargs": {"num_layers": 2},
            "synthesis_kwargs": {"channel_base": 128, "channel_max": 16, "num_layers": 6}}
CONDITIONAL_SG2 = {"arch": "stylegan2", "z_dim": 32, "w_dim": 32, "c_dim": 4, "img_resolution": 16,
                   "img_channels": 3, "mapping_kwargs": {"num_layers": 2},
                   "synthesis_kwargs": {"channel_base": 128, "channel_max": 16}}


@functools.lru_cache(maxsize=None)
def _loaded(name: str):
    from bridge.stylegan import load_network

    return load_network(PICKLES[name])


def fixture(name: str):
    """A fresh copy of a fixture network (tests may edit it)."""
    import copy

    return copy.deepcopy(_loaded(name))


def wide(arch: str = "stylegan2", seed: int = 3):
    from bridge.stylegan import Generator

    return Generator.from_config(WIDE_SG2 if arch == "stylegan2" else WIDE_SG3, seed=seed)


def perturbed(generator, seed: int, scale: float = 0.3):
    """A copy with every float tensor moved by seeded noise: a 'second network' of the same architecture."""
    import copy

    other = copy.deepcopy(generator)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in list(other.parameters()) + list(other.buffers()):
            if tensor.is_floating_point() and tensor.ndim > 0:
                rms = tensor.square().mean().sqrt().clamp_min(1e-3)
                tensor.add_(torch.randn(tensor.shape, generator=gen) * rms * scale)
    return other


def render(generator, seed: int = 1, c=None, psi: float = 1.0) -> torch.Tensor:
    import numpy as np

    z = torch.from_numpy(np.random.RandomState(seed).randn(1, generator.z_dim)).float()
    with torch.no_grad():
        return generator.synthesis(generator.mapping(z, c, truncation_psi=psi), noise_mode="const")


CONDITIONAL_FIXTURE = Path(__file__).parent / "data" / "levers" / "sg2_cond.safetensors"
CONDITIONAL_SEED = 41


def write_conditional_fixture(path: Path = CONDITIONAL_FIXTURE):
    """The committed conditional fixture, made through the project's own writer (save_network).

    Seeded random weights (Generator.from_config(CONDITIONAL_SG2, seed=41)); regenerate with
    ``python -c "import sys; sys.path.insert(0, 'tests'); import levers_cases as c; c.write_conditional_fixture()"``.
    """
    from bridge.stylegan import Generator, save_network

    return save_network(Generator.from_config(CONDITIONAL_SG2, seed=CONDITIONAL_SEED), path)
