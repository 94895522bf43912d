"""StyleGAN2 / 2-ADA / 3 generators in plain PyTorch, loaded from NVIDIA pickles without running their code.

Public surface (imported lazily so that reading a pickle does not pull in every architecture):
    load_network(path, key="G_ema", device="cpu") -> Generator
    save_network(generator, path)                  safetensors + JSON config
    Generator.from_config(config, seed=0)          seeded random weights
    default_layer_groups(generator)                coarse / middle / fine style-layer ranges
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Generator": "bridge.stylegan.generator",
    "default_layer_groups": "bridge.stylegan.generator",
    "demo_config": "bridge.stylegan.generator",
    "load_network": "bridge.stylegan.loader",
    "save_network": "bridge.stylegan.loader",
    "read_snapshot": "bridge.stylegan.pickle_reader",
    "NetworkLoadError": "bridge.stylegan.pickle_reader",
    "UnsafePickleError": "bridge.stylegan.pickle_reader",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bridge.stylegan' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
