"""The fast paths' device-facing logic, checked on the CPU where no GPU exists.

What the convolutions really see (memory format at batch 1), caches that must follow ``Module.to()``, and
torch.compile tracing the plain and fast paths without a graph break per layer.
"""
from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from bridge.stylegan import sg2, sg3
from bridge.stylegan.generator import Generator
from bridge.stylegan.loader import load_network
from stylegan_cases import ROOT

MODELS = ("sg2_tiny", "sg3t_tiny", "sg3r_tiny")


@pytest.fixture(scope="module")
def networks() -> dict[str, Generator]:
    return {name: load_network(ROOT / f"{name}.pkl") for name in MODELS}


def _ws(generator: Generator, seed: int, n: int = 1) -> torch.Tensor:
    z = torch.randn(n, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return generator.mapping(z, None, truncation_psi=0.7)


def exactly_channels_last(t: torch.Tensor) -> bool:
    """The strides a channels_last copy would have, batch stride included: what a convolution's memory-format
    choice (suggest_memory_format) looks at. ``is_contiguous(channels_last)`` ignores the stride of a size-1
    batch and so cannot tell."""
    return t.stride() == t.contiguous(memory_format=torch.channels_last).stride()


@contextlib.contextmanager
def record_convolutions(monkeypatch):
    """Wrap torch's conv2d / conv_transpose2d; yield a list of (op, input dtype, exactly channels_last)."""
    seen: list[tuple[str, torch.dtype, bool]] = []
    for name in ("conv2d", "conv_transpose2d"):
        original = getattr(F, name)

        def wrapper(x, *args, _original=original, _name=name, **kwargs):
            seen.append((_name, x.dtype, exactly_channels_last(x)))
            return _original(x, *args, **kwargs)

        monkeypatch.setattr(F, name, wrapper)
    yield seen


@pytest.mark.parametrize("batch", [1, 3])
def test_sg2_fp16_blocks_convolve_in_channels_last(monkeypatch, batch):
    """Every convolution inside the fp16 blocks gets an input laid out channels_last, at batch 1 too."""
    monkeypatch.setattr(sg2, "FAST_DEVICE_TYPES", ("cuda", "cpu"))  # run the CUDA fast path's logic here
    config = {"arch": "stylegan2", "z_dim": 16, "w_dim": 16, "c_dim": 0, "img_resolution": 16, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 2},
              "synthesis_kwargs": {"channel_base": 128, "channel_max": 16, "num_fp16_res": 2}}
    generator = Generator.from_config(config, seed=1, fast=True)
    ws = _ws(generator, 0, n=batch)
    with torch.no_grad(), record_convolutions(monkeypatch) as seen:
        generator.synthesis(ws)
    half = [(op, cl) for op, dtype, cl in seen if dtype == torch.float16]
    assert len(half) >= 8, seen  # conv0 (transposed + FIR), conv1 and ToRGB in two fp16 blocks
    assert all(cl for _, cl in half), half


def test_sg3_fast_path_convolves_in_channels_last_at_batch_1(monkeypatch, networks):
    generator = networks["sg3t_tiny"]
    ws = _ws(generator, 1)
    generator.set_fast(True)
    try:
        with torch.no_grad(), record_convolutions(monkeypatch) as seen:
            generator.synthesis(ws)
    finally:
        generator.set_fast(False)
    assert seen and all(cl for _, _, cl in seen), seen


@pytest.mark.parametrize("model", MODELS)
def test_fast_path_caches_follow_module_to(monkeypatch, networks, model):
    """Module.to() swaps parameter storage but keeps each tensor object and its version: a cache keyed on
    those alone would keep serving the old device's tensors."""
    monkeypatch.setattr(sg2, "FAST_DEVICE_TYPES", ("cuda", "cpu", "meta"))
    generator = load_network(ROOT / f"{model}.pkl")
    generator.set_fast(True)
    ws = _ws(generator, 2)
    with torch.no_grad():
        generator.synthesis(ws)  # fill the caches with CPU tensors
        generator.to("meta")
        img = generator.synthesis(ws.to("meta"))
    assert img.device.type == "meta"
    assert tuple(img.shape) == (1, 3, generator.img_resolution, generator.img_resolution)
    cached = []
    for module in generator.modules():
        for _, value in getattr(module, "_cache", None)._entries.values() if hasattr(module, "_cache") else ():
            cached += [t for t in value.values() if t is not None] if isinstance(value, dict) else [value]
    assert cached and all(t.device.type == "meta" for t in cached), {t.device.type for t in cached}


def small_sg3(radial: bool) -> Generator:
    """A few-layer StyleGAN3 (-R with radial filters): tracing cost grows with the layer count."""
    synthesis = {"channel_base": 256, "channel_max": 16, "num_layers": 4, "num_critical": 1, "margin_size": 2}
    if radial:
        synthesis.update(conv_kernel=1, use_radial_filters=True)
    return Generator.from_config({"arch": "stylegan3", "z_dim": 8, "w_dim": 8, "c_dim": 0, "img_resolution": 16,
                                  "img_channels": 3, "mapping_kwargs": {}, "synthesis_kwargs": synthesis}, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("model, fast", [("sg2_tiny", False), ("sg2_tiny", True), ("sg3-t", False), ("sg3-t", True),
                                         ("sg3-r", True)])
def test_synthesis_traces_as_one_graph(monkeypatch, networks, model, fast):
    """torch.compile sees each path as one graph: no break per layer (the cache's Python checks) and no
    recompilation per layer instance. SG3-T's CPU Winograd convolution is forced on (the tiny layers are
    narrower than where it normally starts)."""
    monkeypatch.setattr(sg2, "FAST_DEVICE_TYPES", ("cuda", "cpu"))
    monkeypatch.setattr(sg3, "WINOGRAD_MIN_CHANNELS", 0)
    generator = networks[model] if model in networks else small_sg3(radial=model == "sg3-r")
    ws = _ws(generator, 3)
    torch._dynamo.reset()
    generator.set_fast(fast)
    try:
        with torch.no_grad():
            explanation = torch._dynamo.explain(generator.synthesis)(ws)
    finally:
        generator.set_fast(False)
        torch._dynamo.reset()
    assert explanation.graph_break_count == 0, [str(b.reason) for b in explanation.break_reasons][:3]
    assert explanation.graph_count == 1
