"""StyleGAN2 / 2-ADA synthesis network in plain PyTorch, with NVIDIA's module and tensor names.

Structure (both repos share it and its tensor names, so one implementation loads either's pickles):

    SynthesisNetwork               b4, b8, ..., b{img_resolution}: one SynthesisBlock per resolution
      SynthesisBlock b4            const (learned 4x4 input), conv1, torgb
      SynthesisBlock b{res}        conv0 (3x3, upsamples 2x), conv1 (3x3), torgb (1x1), [skip (resnet)]
        SynthesisLayer             affine (w -> styles), weight, bias, noise_strength, noise_const buffer
        ToRGBLayer                 affine, weight (1x1), bias; styles scaled by weight_gain, no demodulation

Architectures: "skip" (default: every block adds its ToRGB to the upsampled image so far), "resnet" (a 1x1
upsampling skip conv beside conv0/conv1, each path scaled by sqrt(0.5); only the last block has ToRGB) and
"orig" (only the last block's ToRGB). Style slots: block b{res} reads ws[idx : idx + num_conv + num_torgb],
and idx advances by num_conv, so a block's ToRGB shares its slot with the next block's conv0.

Each SynthesisLayer: modulated 3x3 conv (demodulated), add noise (noise_mode "const": noise_const *
noise_strength; "random": fresh N(0,1) * noise_strength; "none": nothing), add bias, lrelu * sqrt(2), clamp to
+-conv_clamp. Stored weights are used as they are (demodulation normalises them); ToRGB scales its styles by
1/sqrt(in_channels * k * k).

Filters (resample_filter), noise_const and every other buffer hold the pickle's values after loading; random
init designs them as NVIDIA's constructor does (weights randn, affine bias 1, const randn, noise_strength 0,
resample_filter the normalised outer product of [1, 3, 3, 1]).

Fast path (set_fast). On CUDA: fp16 + channels_last in the blocks NVIDIA runs in fp16 (the last
num_fp16_res resolutions), with the non-fused modulation for batches > 1 there (ADA's rule), and
per-frame-invariant work hoisted: the weights' fp16 pre-normalisation and cast, const noise times strength
and the filter casts are cached until the source tensor changes (in place or replaced). Kernel launches per
layer remain (no CUDA graphs). On the CPU, for one float32 sample: the same layers rearranged for oneDNN
(bridge.stylegan.sg2_cpu: gain and demodulation folded into the weight, up-convs as phase convolutions,
banded epilogues, Winograd for the wide 3x3 convs from 16 px up, reused work buffers), float32 and equal to the plain
path up to rounding. Batches > 1 and anything autograd tracks run the plain route.

Bend points: each SynthesisBlock has a ``bend`` attribute (None, or features -> features) applied to its
features after conv1 and before its ToRGB; bridge.bending sets it. None is the plain forward pass.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bridge.stylegan import sg2_cpu
from bridge.stylegan.ops import (FullyConnectedLayer, activation_gain, bias_act, conv2d_resample, filter_size,
                                 modulated_conv2d, parse_padding, prenormalize_weight, setup_filter, upsample2d)

log = logging.getLogger(__name__)

ARCHITECTURES = ("orig", "skip", "resnet")
# Devices on which set_fast(True) switches to fp16 + channels_last. CPU stays float32 (slow and inexact in
# fp16); tests widen this to exercise the fast path's logic where no GPU exists.
FAST_DEVICE_TYPES = ("cuda",)
NOISE_MODES = ("random", "const", "none")


def _log_ignored(owner: str, ignored: dict) -> None:
    if ignored:
        log.debug("%s ignores training-only kwargs %s", owner, sorted(ignored))


def check_noise_mode(noise_mode: str) -> str:
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
    return noise_mode


class _DerivedCache:
    """Per-module cache of tensors derived from parameters (e.g. a weight cast to fp16 channels_last).

    An entry is reused only while each source is the very same tensor object (held here, so a freed tensor's
    id cannot be reused by another) with the same storage, device, dtype and in-place version: a
    manipulation that edits or replaces a parameter is seen on the next frame, and so is ``Module.to()``,
    which swaps a parameter's storage without changing the object or its version. Used only by the fast path.
    Tensors created under ``torch.inference_mode()`` have no version counter, so an in-place edit could not
    be seen: anything derived from them is rebuilt every call instead of cached. While torch.compile traces,
    the derivation is simply traced into the graph (no Python-side checks, so no graph break per layer).
    """

    def __init__(self):
        self._entries: dict[tuple, tuple[tuple, torch.Tensor]] = {}

    def get(self, key: tuple, sources: tuple[torch.Tensor, ...], build) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return build()
        if any(t.is_inference() for t in sources):
            with torch.no_grad():
                return build()
        stamps = tuple(_stamp(t) for t in sources)
        hit = self._entries.get(key)
        if hit is not None and len(hit[0]) == len(sources) and all(
                held is t and stamp == now for (held, stamp), t, now in zip(hit[0], sources, stamps)):
            return hit[1]
        with torch.no_grad():
            value = build()
        self._entries[key] = (tuple(zip(sources, stamps)), value)
        return value

    def clear(self) -> None:
        self._entries.clear()


def _stamp(t: torch.Tensor) -> tuple:
    """What identifies a tensor's current contents short of reading them."""
    return t._version, t.data_ptr(), t.device, t.dtype, tuple(t.shape)


class SynthesisLayer(nn.Module):
    """Modulated conv + noise + bias + activation. Parameter/buffer names are NVIDIA's."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu", resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, channels_last: bool = False, **ignored):
        super().__init__()
        _log_ignored("SynthesisLayer", ignored)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.w_dim, self.resolution, self.up = int(w_dim), int(resolution), int(up)
        self.use_noise, self.activation, self.conv_clamp = bool(use_noise), activation, conv_clamp
        self.padding = kernel_size // 2
        self.act_gain = activation_gain(activation)
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.affine = _affine(w_dim, in_channels)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.fast = False  # set by SynthesisNetwork.set_fast
        self._cache = _DerivedCache()
        self._scratch = sg2_cpu.Scratch()  # the CPU fast path's work buffers

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const", fused_modconv: bool = True,
                gain: float = 1.0) -> torch.Tensor:
        if self.fast and self._cpu_fast_applies(x):
            return self._forward_cpu(x, w, check_noise_mode(noise_mode), gain)
        styles = self.affine(w)
        noise = self._noise(x, check_noise_mode(noise_mode))
        if self.fast:
            weight, resample_filter, prenormalize = self._fast_tensors(x.dtype)
        else:
            weight, resample_filter, prenormalize = self.weight, self.resample_filter, None
        x = modulated_conv2d(x, weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv, prenormalize=prenormalize)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp, inplace=True)

    def _apply(self, fn, *args, **kwargs):
        """Module.to() and friends: derived tensors of the old device or dtype are dropped, not just bypassed
        (the CPU path's entries would otherwise keep host memory after a move to the GPU)."""
        self._cache.clear()
        self._scratch.clear()
        return super()._apply(fn, *args, **kwargs)

    def _noise(self, x: torch.Tensor, noise_mode: str) -> torch.Tensor | None:
        if not self.use_noise or noise_mode == "none":
            return None
        if noise_mode == "random":
            shape = [x.shape[0], 1, self.resolution, self.resolution]
            return torch.randn(shape, device=x.device, dtype=torch.float32) * self.noise_strength
        if not self.fast:
            return self.noise_const * self.noise_strength
        return self._cache.get(("noise", x.dtype), (self.noise_const, self.noise_strength),
                               lambda: (self.noise_const * self.noise_strength).to(x.dtype))

    def _cpu_fast_applies(self, x: torch.Tensor) -> bool:
        """The CPU fast path (sg2_cpu) takes one float32 sample with a gain-commuting activation and, when
        upsampling, a kernel of 2+ taps (every output phase has one) and a blur whose padding is the same on
        every side (NVIDIA's 3x3 kernel and 4-tap filter)."""
        if not sg2_cpu.supports(x) or self.activation not in sg2_cpu.HOMOGENEOUS_ACTIVATIONS:
            return False
        return self.up == 1 or (min(self.weight.shape[2:]) >= 2 and self._up_blur_padding() is not None)

    def _up_blur_padding(self) -> int | None:
        """The blur's padding after the stride-2 transposed conv (conv2d_resample's arithmetic), when symmetric."""
        fw, fh = filter_size(self.resample_filter)
        kh, kw = self.weight.shape[2:]
        px0, px1, py0, py1 = parse_padding(self.padding)
        pads = {px0 + (fw + 1) // 2 - (kw - 1), px1 + (fw - 2) // 2 - (kw - 2),
                py0 + (fh + 1) // 2 - (kh - 1), py1 + (fh - 2) // 2 - (kh - 2)}
        return pads.pop() if len(pads) == 1 and min(pads | {0}) >= 0 else None

    def _forward_cpu(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str, gain: float) -> torch.Tensor:
        """The same layer as the plain forward, rearranged for the CPU (see sg2_cpu): the gain folded into the
        weight, bias and noise; demodulation from cached squared sums; up-convs as four phase convolutions."""
        g = self.act_gain * gain
        styles = self.affine(w)[0]
        wsq = self._cache.get(("wsq",), (self.weight,), lambda: sg2_cpu.squared_weight_sums(self.weight))
        scale = sg2_cpu.demod_coefficients(wsq, styles) * g
        bias = self.bias * g
        noise = self._noise(x, noise_mode)
        noise = noise * g if noise is not None else None
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        alpha = 0.2  # bias_act's lrelu default, which the plain path uses
        if self.up == 1 and sg2_cpu.winograd_applies(self.weight, x, self.padding):
            u = self._cache.get(("wino",), (self.weight,), lambda: sg2_cpu.winograd_weight(self.weight))
            return sg2_cpu.winograd_conv3x3_(x, u, bias, noise, self.activation, alpha, clamp, self._scratch,
                                             in_scale=styles, out_scale=scale)
        finish = (noise, self.activation, alpha, clamp)
        if self.up == 1:
            weight = sg2_cpu.modulated_weight(self.weight, styles, scale, sg2_cpu.memory_format_of(x))
            groups = 1
            rows = sg2_cpu.banded(self.out_channels, x.shape[2], x.shape[3])
            if rows is None:
                return sg2_cpu.epilogue_(F.conv2d(x, weight, bias, padding=self.padding), *finish)
            src = sg2_cpu.padded_copy(x, self.padding, self._scratch, "in")
        else:
            kh, kw = self.weight.shape[2:]
            phases = self._cache.get(("phases",), (self.weight,), lambda: sg2_cpu.phase_kernels(self.weight))
            layout = sg2_cpu.upconv_memory_format(self.in_channels, self.out_channels)
            kernels = {i: sg2_cpu.modulated_weight(k, styles, scale, layout) for i, k in phases.items()}
            src = sg2_cpu.upconv_phases(x, kernels, kh, kw, self._up_blur_padding(), self._scratch)
            groups = self.out_channels
            weight = self._cache.get(("blur", groups), (self.resample_filter,), lambda: sg2_cpu.depthwise_filter(
                self.resample_filter, groups, self.up ** 2))
            rows = sg2_cpu.banded(groups, x.shape[2] * 2, x.shape[3] * 2)
            if rows is None:
                return sg2_cpu.epilogue_(F.conv2d(src, weight, bias, groups=groups), *finish)
        size = src.shape[2] - weight.shape[2] + 1, src.shape[3] - weight.shape[3] + 1
        out = self._scratch.take("out", [1, self.out_channels, *size], x, memory_format=sg2_cpu.memory_format_of(src))
        return sg2_cpu.banded_conv_(src, weight, bias, groups, out, *finish, rows)

    def _fast_tensors(self, dtype: torch.dtype):
        """Hoisted per-frame-invariant work: the weight's fp16 pre-normalisation (kept in float32, like NVIDIA,
        so demodulation coefficients are computed from unrounded weights) and the filter's cast."""
        if dtype == torch.float16:
            weight = self._cache.get(("weight", dtype), (self.weight,), lambda: prenormalize_weight(self.weight))
        else:
            weight = self.weight
        f = self._cache.get(("filter", dtype), (self.resample_filter,), lambda: self.resample_filter.to(dtype))
        return weight, f, False

    def extra_repr(self) -> str:
        return (f"in={self.in_channels}, out={self.out_channels}, resolution={self.resolution}, up={self.up}, "
                f"activation={self.activation}")


class ToRGBLayer(nn.Module):
    """1x1 modulated conv (no demodulation) to image channels; styles scaled by weight_gain."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None, channels_last: bool = False, **ignored):
        super().__init__()
        _log_ignored("ToRGBLayer", ignored)
        self.in_channels, self.out_channels, self.w_dim = int(in_channels), int(out_channels), int(w_dim)
        self.conv_clamp = conv_clamp
        self.affine = _affine(w_dim, in_channels)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.fast = False  # set by SynthesisNetwork.set_fast

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        # The float32 weight goes in as NVIDIA's does: modulated in float32, cast to x's dtype at the conv.
        styles = self.affine(w) * self.weight_gain
        if self.fast and sg2_cpu.supports(x) and self.weight.shape[2:] == (1, 1):  # one matrix product instead of torch's slow 1x1 CPU conv
            weight = self.weight * styles.reshape(1, -1, 1, 1)
            return sg2_cpu.torgb(x, weight, self.bias, self.conv_clamp)
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias, clamp=self.conv_clamp, inplace=True)

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}"


class Conv2dLayer(nn.Module):
    """Plain equalised-lr conv with optional FIR up/downsampling; here only the resnet skip path uses it."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1, resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, channels_last: bool = False, trainable: bool = True, **ignored):
        super().__init__()
        _log_ignored("Conv2dLayer", ignored)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.activation, self.up, self.down, self.conv_clamp = activation, int(up), int(down), conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = activation_gain(activation)
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        bias_value = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(bias_value) if bias_value is not None else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias_value)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = conv2d_resample(x, w, f=self.resample_filter, up=self.up, down=self.down, padding=self.padding,
                            flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class SynthesisBlock(nn.Module):
    """One resolution: [const | conv0 (up 2x)] -> conv1 -> [torgb], plus the image path for skip/resnet."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter=(1, 3, 3, 1), conv_clamp: float | None = 256,
                 use_fp16: bool = False, fp16_channels_last: bool = False, fused_modconv_default=True,
                 **layer_kwargs):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        self.in_channels, self.out_channels, self.w_dim = int(in_channels), int(out_channels), int(w_dim)
        self.resolution, self.img_channels, self.is_last = int(resolution), int(img_channels), bool(is_last)
        self.architecture, self.use_fp16 = architecture, bool(use_fp16)
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.num_conv = 0
        self.num_torgb = 0
        self.fast = False  # set by SynthesisNetwork.set_fast
        self.bend = None  # optional features -> features after conv1 (bridge.bending sets it); None = unbent
        conv_args = dict(w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, **layer_kwargs)

        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, resample_filter=resample_filter, **conv_args)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, **conv_args)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                noise_mode: str = "const", fused_modconv: bool | None = None):
        """ws: (N, num_conv + num_torgb, w_dim). Returns the new (features, image)."""
        w_iter = iter(ws.unbind(dim=1))
        fast = self.fast and ws.device.type in FAST_DEVICE_TYPES and self.use_fp16
        dtype = torch.float16 if fast else torch.float32
        channels_last = fast  # as NVIDIA's fp16_channels_last: only where tensor cores run fp16
        if fused_modconv is None:  # ADA's rule: per-sample weights are fine in fp32 or at batch 1
            fused_modconv = dtype == torch.float32 or ws.shape[0] == 1

        if self.in_channels == 0:  # x, when given, replaces the learned constant for this call
            x = (self.const if x is None else x).to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = x.to(dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        layer = dict(noise_mode=noise_mode, fused_modconv=fused_modconv)

        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), **layer)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), **layer)
            x = self.conv1(x, next(w_iter), gain=np.sqrt(0.5), **layer)
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), **layer)
            x = self.conv1(x, next(w_iter), **layer)
        if self.bend is not None:
            x = self.bend(x)

        cpu_fast = self.fast and img is not None and sg2_cpu.supports(img)
        if cpu_fast and sg2_cpu.upsample_image_applies(self.resample_filter):
            img = sg2_cpu.upsample_image(img, self.resample_filter)
        elif img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = (img.add_(y) if cpu_fast else img + y) if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return (f"resolution={self.resolution}, architecture={self.architecture}, "
                f"num_conv={self.num_conv}, num_torgb={self.num_torgb}, use_fp16={self.use_fp16}")


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> image (N, img_channels, img_resolution, img_resolution), float32.

    channel_base/channel_max set the width: channels(res) = min(channel_base // res, channel_max).
    num_fp16_res: how many of the highest resolutions the GPU fast path runs in fp16 (stylegan3-repo
    default 4; the ADA repo's default is 0 but its training script passes 4, so pickles carry it).
    """

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 4, **block_kwargs):
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.w_dim, self.img_resolution, self.img_channels = int(w_dim), int(img_resolution), int(img_channels)
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.num_fp16_res = int(num_fp16_res)
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - self.num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = res == self.img_resolution
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=is_last, use_fp16=res >= fp16_resolution,
                                   **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)
        self.fast = False

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def set_fast(self, fast: bool = True) -> "SynthesisNetwork":
        """Switch the fast path on or off (fp16 channels_last blocks on a GPU, bridge.stylegan.sg2_cpu on the CPU).

        Switching off frees what the fast path derived from the weights and its work buffers; switching on
        keeps them (the cache checks every entry against its source tensors)."""
        self.fast = bool(fast)
        for block in self.blocks():
            block.fast = self.fast
            for module in block.modules():
                if isinstance(module, SynthesisLayer) and not self.fast:
                    module._cache.clear()
                    module._scratch.clear()
                if isinstance(module, (SynthesisLayer, ToRGBLayer)):
                    module.fast = self.fast
        return self

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", fused_modconv: bool | None = None,
                const: torch.Tensor | None = None) -> torch.Tensor:
        """const: an optional (C, 4, 4) tensor used instead of b4.const for this call (the exported ONNX graph
        takes it as an input so that live edits of the constant reach it)."""
        check_noise_mode(noise_mode)
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape (N, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        first = self.blocks()[0]
        if const is not None and tuple(const.shape) != tuple(first.const.shape):
            raise ValueError(f"const must have shape {tuple(first.const.shape)}, got {tuple(const.shape)}")
        ws = ws.to(torch.float32)
        x, img = const, None
        w_idx = 0
        for block in self.blocks():
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, noise_mode=noise_mode, fused_modconv=fused_modconv)
        return img

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, img_resolution={self.img_resolution}, num_ws={self.num_ws}"


def _affine(w_dim: int, channels: int) -> FullyConnectedLayer:
    """w -> per-input-channel styles; bias_init 1 so a fresh network starts near unit modulation (NVIDIA)."""
    return FullyConnectedLayer(w_dim, channels, bias_init=1)


def fit_channel_layout(channels: dict[int, int]) -> tuple[int, int] | None:
    """(channel_base, channel_max) with min(channel_base // res, channel_max) == channels[res] for every res,
    or None when no such pair exists. The inverse of the width rule above, for formats that record widths
    only as tensor shapes (TensorFlow pickles' fmap_* kwargs, rosinality's channel_multiplier)."""
    if not channels:
        return None
    channel_max = max(channels.values())
    below = {res: ch for res, ch in channels.items() if ch < channel_max}
    candidates = {ch * res for res, ch in below.items()} or {channel_max * max(channels)}
    for base in sorted(candidates):
        if all(min(base // res, channel_max) == ch for res, ch in channels.items()):
            return base, channel_max
    return None
