"""The Generator: mapping + synthesis, built from a JSON-able config that uses NVIDIA's own kwarg names.

Config (what loader.config_from_record produces and save_network writes beside the weights):

    {"arch": "stylegan2" | "stylegan3", "z_dim": 512, "w_dim": 512, "c_dim": 0, "img_resolution": 256,
     "img_channels": 3,
     "mapping_kwargs": {...},     # as pickled: only the arguments that were passed
     "synthesis_kwargs": {...},   # FLAT (stylegan3-repo layout), only the arguments that were passed
     "random_init": {...}}        # optional, only read by from_config: look tuning for untrained weights

Anything absent takes the stylegan3 repository's constructor default (the mapping depth defaults per arch:
8 layers for StyleGAN2, 2 for StyleGAN3). Parameter and buffer names are NVIDIA's (synthesis.b4.const,
mapping.fc0.weight, mapping.w_avg, ...), so a pickle's G_ema state_dict loads with strict=True unchanged.

Also here: Generator.from_config(config, seed) (seeded random weights), default_layer_groups (which style
slots are coarse / middle / fine) and demo_config (the embedded default network the engine runs when the
user gives no model).
"""
from __future__ import annotations

import copy
import importlib
import json
import logging
import math
from typing import Any

import torch
from torch import nn

from bridge.stylegan.mapping import MappingNetwork

log = logging.getLogger(__name__)

ARCHS = {
    # arch -> (synthesis module, default mapping depth)
    "stylegan2": ("bridge.stylegan.sg2", 8),
    "stylegan3": ("bridge.stylegan.sg3", 2),
}
_REQUIRED_INTS = ("z_dim", "w_dim", "c_dim", "img_resolution", "img_channels")


def validate_config(config: Any) -> dict:
    """Return a deep copy of config after checking its shape; raise ValueError naming the first problem."""
    if not isinstance(config, dict):
        raise ValueError(f"generator config must be a dict, got {type(config).__name__}")
    arch = config.get("arch")
    if arch not in ARCHS:
        raise ValueError(f"config 'arch' must be one of {sorted(ARCHS)}, got {arch!r}")
    for key in _REQUIRED_INTS:
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"config {key!r} must be a non-negative int, got {value!r}")
    if config["w_dim"] == 0 or config["img_channels"] == 0 or config["img_resolution"] == 0:
        raise ValueError("config w_dim, img_channels and img_resolution must be positive")
    for key in ("mapping_kwargs", "synthesis_kwargs", "random_init"):
        if not isinstance(config.get(key, {}), dict):
            raise ValueError(f"config {key!r} must be a dict, got {type(config[key]).__name__}")
    try:
        json.dumps(config)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"generator config must be JSON-able: {exc}") from None
    return copy.deepcopy(config)


class Generator(nn.Module):
    """z [+ c] -> image. Public surface: see the module docstring and bridge/stylegan/__init__.py.

    fast=True selects the fast path (cached per-frame-invariant tensors, channels_last; fp16 where NVIDIA uses
    it, on CUDA only). On the CPU both run in float32: StyleGAN3's 3-8x faster, StyleGAN2's rearranged for
    oneDNN at batch 1 (bridge.stylegan.sg2_cpu; BENCHMARKS.md has the figures). Both are tested against the
    plain path. Toggle later with set_fast().
    """

    def __init__(self, config: dict, fast: bool = False):
        super().__init__()
        self.config = validate_config(config)
        cfg = self.config
        self.arch = cfg["arch"]
        self.z_dim, self.w_dim, self.c_dim = cfg["z_dim"], cfg["w_dim"], cfg["c_dim"]
        self.img_resolution, self.img_channels = cfg["img_resolution"], cfg["img_channels"]
        module_name, default_depth = ARCHS[self.arch]
        synthesis_cls = importlib.import_module(module_name).SynthesisNetwork
        # Build synthesis first: NVIDIA does, so parameters enumerate in the same order as in the pickle.
        self.synthesis = synthesis_cls(w_dim=self.w_dim, img_resolution=self.img_resolution,
                                       img_channels=self.img_channels, **cfg.get("synthesis_kwargs", {}))
        self.num_ws = int(self.synthesis.num_ws)
        mapping_kwargs = {"num_layers": default_depth, **cfg.get("mapping_kwargs", {})}
        self.mapping = MappingNetwork(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
                                      **mapping_kwargs)
        self.fast = False
        self.set_fast(fast)
        self.eval()

    @classmethod
    def from_config(cls, config: dict, seed: int = 0, fast: bool = False) -> "Generator":
        """Random weights designed as NVIDIA's constructors design them, reproducible from seed.

        The global torch RNG is left as it was (the construction runs under a forked, seeded RNG).
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            generator = cls(config, fast=fast)
            generator.requires_grad_(False)
            if generator.config.get("random_init"):
                _apply_random_init(generator, generator.config["random_init"])
        return generator

    def set_fast(self, fast: bool = True) -> "Generator":
        """Switch the synthesis fast path on/off (see the class docstring for where it applies). Returns self."""
        self.fast = bool(fast)
        if hasattr(self.synthesis, "set_fast"):
            self.synthesis.set_fast(self.fast)
        elif fast:
            log.warning("%s synthesis has no fast path; running the plain float32 path", self.arch)
        return self

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const") -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)

    def extra_repr(self) -> str:
        return (f"arch={self.arch}, z_dim={self.z_dim}, w_dim={self.w_dim}, c_dim={self.c_dim}, "
                f"num_ws={self.num_ws}, img_resolution={self.img_resolution}, img_channels={self.img_channels}")


# -------------------------------------------------------------------------------- random-init look tuning

RANDOM_INIT_KEYS = {"torgb_octave_gain", "noise_strength", "calibrate_std", "calibrate_samples"}


def _apply_random_init(generator: Generator, options: dict) -> None:
    """Make an untrained StyleGAN2 look like something: used by the demo network, via config["random_init"].

    NVIDIA's init alone gives blurry, clipped blobs in one colour cast: every layer's positive lrelu mean
    piles up in ToRGB, and the coarse blocks dominate. The options, all optional:
      torgb_octave_gain  multiply each block's ToRGB weight by gain**log2(res/4): finer blocks add detail;
      noise_strength     start every layer's noise_strength here (the const noise gives texture);
      calibrate_std      render calibrate_samples (default 8) seeded z at psi 0.7, then scale all ToRGB weights
                         so the image std is this value and shift the last ToRGB bias to zero the mean colour.
    Only from_config reads these; a loaded pickle's weights are never touched.
    """
    unknown = set(options) - RANDOM_INIT_KEYS
    if unknown:
        raise ValueError(f"unknown random_init option(s) {sorted(unknown)}; known: {sorted(RANDOM_INIT_KEYS)}")
    if generator.arch != "stylegan2":
        raise ValueError("random_init options apply to stylegan2 configs only")
    blocks = generator.synthesis.blocks()
    with torch.no_grad():
        gain = float(options.get("torgb_octave_gain", 1.0))
        for block in blocks:
            if hasattr(block, "torgb"):
                block.torgb.weight.mul_(gain ** math.log2(block.resolution / 4))
        if "noise_strength" in options:
            for module in generator.synthesis.modules():
                if getattr(module, "use_noise", False):
                    module.noise_strength.fill_(float(options["noise_strength"]))
        if "calibrate_std" in options:
            z = torch.randn([int(options.get("calibrate_samples", 8)), generator.z_dim])
            c = torch.zeros([z.shape[0], generator.c_dim])
            img = generator(z, c, truncation_psi=0.7)
            scale = float(options["calibrate_std"]) / max(float(img.std()), 1e-8)
            for block in blocks:
                if hasattr(block, "torgb"):
                    block.torgb.weight.mul_(scale)
            blocks[-1].torgb.bias.sub_(img.mean(dim=(0, 2, 3)) * scale)


# ------------------------------------------------------------------------------------------- style groups

def default_layer_groups(generator_or_num_ws, arch: str | None = None) -> dict[str, tuple[int, int]]:
    """Which style slots are coarse / middle / fine: {"coarse": (start, end), ...}, end exclusive.

    The three ranges are contiguous and cover 0..num_ws without overlap.
    - StyleGAN2 (slots 2k and 2k+1 drive resolution 4 * 2**k, the StyleGAN paper's convention): coarse =
      4-8 px, middle = 16-32 px, fine = 64 px and up; e.g. num_ws 18 (1024 px) -> (0,4) (4,8) (8,18),
      num_ws 14 (256 px) -> (0,4) (4,8) (8,14).
    - StyleGAN3 (its layers are not tied to resolutions), or an SG2 model below 64 px where a group would be
      empty: thirds, boundaries round(n/3) and round(2n/3); e.g. 16 -> (0,5) (5,11) (11,16), 8 -> (0,3)
      (3,5) (5,8). With fewer than 3 slots some groups are necessarily empty (start == end).
    Accepts a Generator (uses its num_ws and arch) or an int num_ws with arch (default "stylegan2").
    """
    if isinstance(generator_or_num_ws, int) and not isinstance(generator_or_num_ws, bool):
        num_ws, arch = generator_or_num_ws, arch or "stylegan2"
    elif hasattr(generator_or_num_ws, "num_ws"):
        num_ws, arch = int(generator_or_num_ws.num_ws), arch or getattr(generator_or_num_ws, "arch", "stylegan2")
    else:
        raise TypeError(f"expected a Generator or an int num_ws, got {type(generator_or_num_ws).__name__}")
    if num_ws < 1:
        raise ValueError(f"num_ws must be >= 1, got {num_ws}")
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    a, b = 4, 8  # SG2: slots 0-3 are 4-8 px, 4-7 are 16-32 px
    if arch != "stylegan2" or num_ws <= b:
        a, b = round(num_ws / 3), round(2 * num_ws / 3)
    return {"coarse": (0, a), "middle": (a, b), "fine": (b, num_ws)}


# ------------------------------------------------------------------------------------------- demo network

def demo_config() -> dict:
    """The embedded default network: StyleGAN2, 256x256, z_dim/w_dim 512 (the size every public StyleGAN
    uses, so the encoder's fake z is realistic), num_ws 14, narrow synthesis for CPU speed.

    Channels: min(2048 // res, 128), i.e. 128 at 4-16 px down to 8 at 256 px. Measured ~35 ms/frame
    (~28 fps) at batch 1 on one CPU thread here (`vrbridge bench` / the SG2 report has the command); doubling
    channel_base quadruples the cost. Seeded random weights (Generator.from_config(demo_config(), seed))
    give an abstract, cloudy, colourful picture whose shapes and colours follow z; nothing is trained.
    The random_init entry tunes that look (see _apply_random_init).
    """
    return {
        "arch": "stylegan2",
        "z_dim": 512,
        "w_dim": 512,
        "c_dim": 0,
        "img_resolution": 256,
        "img_channels": 3,
        "mapping_kwargs": {"num_layers": 8},
        "synthesis_kwargs": {"channel_base": 2048, "channel_max": 128},
        # Look tuning for the untrained weights (see _apply_random_init); ignored when weights are loaded.
        "random_init": {"torgb_octave_gain": 2.0, "noise_strength": 0.05, "calibrate_std": 0.6},
    }
