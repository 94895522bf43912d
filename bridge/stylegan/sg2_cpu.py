"""StyleGAN2's CPU fast path: the same layers as ops.modulated_conv2d + bias_act, rearranged for oneDNN.

What the plain path spends on the CPU besides the convolutions themselves (profiled on config-f at 256 px):
a 5-D modulated weight and its square per layer, a transposed convolution that oneDNN runs at a fraction of
its dense-conv speed, an FIR blur behind it that first copies its input into a padded tensor, five passes over
each output for noise, bias, activation, gain and clamp, and a 1x1 ToRGB convolution that falls back to
torch's slow reference kernel. Here, for a float32 batch of one on the CPU (the engine's case):

- demodulation coefficients come from a cached per-(out, in) sum of squared weights and the squared styles
  (a mat-vec instead of squaring the 5-D weight);
- the activation gain, which lrelu lets through (it is positively homogeneous), the demodulation and the
  style are one per-(out, in) scale of the weight; the bias and noise are scaled by the gain once, so after
  the convolution only noise, lrelu and clamp remain (each in place);
- the upsampling conv runs as four small dense convolutions, one per output phase of the stride-2 transposed
  conv (exactly its taps, no zero stuffing; channels-last when wide), interleaved into a reused zero-bordered
  buffer, and the FIR blur runs as a depthwise convolution that reads its padding from there and adds the
  bias for free;
- outputs of BANDED_MIN_BYTES and more are convolved and finished band by band of rows into a reused buffer
  (cache-sized passes, and no fresh 33 MB tensor, which costs the CPU ~30 ms of page faults a frame);
- the wide 3x3 convs from 16 px up run as Winograd F(4x4, 3x3) (bridge.stylegan.winograd), each strip of
  rows finished while in the cache;
- ToRGB is one matrix product (addmm) over the pixels, the skip image's upsampling one transposed conv.

Every function equals its plain counterpart up to float rounding (tests/test_stylegan_sg2_cpu.py); the plain
ops stay as they are and remain the reference.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bridge.stylegan import winograd

# Activations that commute with a positive scale: act(g * x) == g * act(x), so the gain can move into the conv.
HOMOGENEOUS_ACTIVATIONS = ("linear", "relu", "lrelu")
# Up-convs with at least this many channels in and out run channels-last (see upconv_phases).
CHANNELS_LAST_MIN = 128


class Scratch:
    """Reusable work buffers of one layer, by name: a fresh tensor of tens of MB per op per frame costs the
    CPU page faults (glibc hands such blocks back to the OS on free, and zero-fills them again on the next
    allocation), which at 256 px cost about as much as the elementwise passes themselves. Only tensors that
    never leave the layer live here; while torch.compile traces, every call gets a new tensor instead."""

    def __init__(self):
        self._buffers: dict[str, torch.Tensor] = {}

    def take(self, name: str, shape, like: torch.Tensor, zeroed: bool = False,
             memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
        """A buffer of this shape, dtype, device and memory format; zeroed=True: zero when first made (callers
        that write only its interior rely on the border staying zero)."""
        shape = tuple(int(v) for v in shape)
        key = (name, memory_format)
        held = None if torch.compiler.is_compiling() else self._buffers.get(key)
        if (held is None or tuple(held.shape) != shape or held.dtype != like.dtype or held.device != like.device
                or held.is_inference() != torch.is_inference_mode_enabled()):  # no in-place writes across modes
            held = torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=memory_format)
            if zeroed:
                held.zero_()
            if not torch.compiler.is_compiling():
                self._buffers[key] = held
        return held

    def clear(self) -> None:
        self._buffers.clear()


def supports(x: torch.Tensor) -> bool:
    """The inputs this path handles: one float32 sample on the CPU, outside autograd."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and x.shape[0] == 1 and not x.requires_grad


def squared_weight_sums(weight: torch.Tensor) -> torch.Tensor:
    """[O, I, kh, kw] -> [O, I]: what demodulation needs of the weight; depends on the weight only (cached)."""
    return weight.square().sum(dim=[2, 3])


def demod_coefficients(wsq: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """1 / sqrt(sum_i,k (w_oik * s_i)^2 + 1e-8) per output channel o, from wsq = sum_k w_oik^2: styles [I]."""
    return (wsq @ styles.square() + 1e-8).rsqrt()


def modulated_weight(weight: torch.Tensor, styles: torch.Tensor, out_scale: torch.Tensor,
                     memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """weight [O, I, kh, kw] * styles[i] * out_scale[o] in one pass over the weight (the scale is only O x I),
    written in the memory format of the input it will meet (a channels-last conv would otherwise copy it)."""
    out = torch.empty(weight.shape, dtype=weight.dtype, device=weight.device, memory_format=memory_format)
    return torch.mul(weight, torch.outer(out_scale, styles)[:, :, None, None], out=out)


# 3x3 convs of at least this many channels in and out, on maps of at least WINOGRAD_MIN_SIZE px, run as
# Winograd F(4x4, 3x3) (bridge.stylegan.winograd, shared with StyleGAN3): per conv of config-f at 1 thread,
# 128 ch at 256 px 191 ms against 247-297 ms direct, 256 ch at 128 px 125 against 277-288, 512 ch at 64 px
# 87 against 229-278, at 32 px 33 against 65-70, at 16 px 15 against 23-25 (64 ch at 256 px: a tie, 59
# against 56). The whole config-f frame, alternating: 960 ms from 16 px up, 1024-1030 ms from 32 or 64 px.
WINOGRAD_MIN_CHANNELS = 128
WINOGRAD_MIN_SIZE = 16


def winograd_applies(weight: torch.Tensor, x: torch.Tensor, padding: int) -> bool:
    """A 3x3 'same' conv, wide enough and on a map of whole 4x4 tiles (the output is then the tiles)."""
    o, i, kh, kw = weight.shape
    h, w = x.shape[2:]
    return ((kh, kw, padding) == (3, 3, 1) and min(o, i) >= WINOGRAD_MIN_CHANNELS
            and min(h, w) >= WINOGRAD_MIN_SIZE and h % 4 == 0 and w % 4 == 0)


def winograd_weight(weight: torch.Tensor) -> winograd.Kernel:
    """The transformed kernel (depends on the weight only: cached); the per-frame modulation is a per-(out, in)
    scale that rides on the input copy and the final write instead."""
    return winograd.transform_weight(weight)


def winograd_conv3x3_(x: torch.Tensor, kernel: winograd.Kernel, bias: torch.Tensor | None,
                      noise: torch.Tensor | None, act: str, alpha: float, clamp: float | None, scratch: Scratch,
                      in_scale: torch.Tensor | None = None, out_scale: torch.Tensor | None = None) -> torch.Tensor:
    """conv2d(x * in_scale, w, padding=1) * out_scale + bias + noise, activated and clamped, for x [1, I, H, W]
    (H, W multiples of 4) and kernel = winograd_weight(w): returned channels-last in this layer's reused
    buffer, each strip of rows finished (noise, activation, clamp) while it is still in the cache."""
    _, _, h, w = x.shape
    out = scratch.take("wino_out", [1, h, w, kernel.out_channels], x)

    def finish(rows: torch.Tensor, sample: int, first: int) -> None:
        epilogue_(rows, None if noise is None else noise[first:first + rows.shape[0], :, None], act, alpha, clamp)

    return winograd.conv3x3(x, kernel, 1, in_scale=None if in_scale is None else in_scale[None],
                            out_scale=None if out_scale is None else out_scale[None], bias=bias, out=out,
                            epilogue=finish)


def phase_kernels(weight: torch.Tensor) -> dict[int, torch.Tensor]:
    """Split a kernel [O, I, kh, kw], as the plain path passes it to conv_transpose2d (transposed to
    [I, O, kh, kw]), into the four kernels of the stride-2 transposed convolution's output phases
    (even/odd row, even/odd column).

    conv_transpose2d(x, w.transpose(0, 1), stride=2) at output (2a + p, 2b + q) sums x[a - i, b - j] *
    w[2i + p, 2j + q]: phase (p, q) is an ordinary convolution of x with the taps w[p::2, q::2], flipped
    for torch's correlation. Works for any kernel size; each phase keeps only its own taps.
    """
    return {2 * p + q: weight[:, :, p::2, q::2].flip([2, 3]) for p in (0, 1) for q in (0, 1)}


def pointwise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution of x [1, I, H, W] with weight [O, I] as one matrix product, in x's memory format."""
    _, c, h, w = x.shape
    if memory_format_of(x) == torch.channels_last:  # [HW, I] @ [I, O] is the channels-last output itself
        return (x.permute(0, 2, 3, 1).reshape(h * w, c) @ weight.t()).reshape(1, h, w, -1).permute(0, 3, 1, 2)
    return (weight @ x.reshape(c, h * w)).reshape(1, -1, h, w)


def upconv_memory_format(in_channels: int, out_channels: int) -> torch.memory_format:
    """The layout upconv_phases runs in (see there)."""
    wide = min(in_channels, out_channels) >= CHANNELS_LAST_MIN
    return torch.channels_last if wide else torch.contiguous_format


def upconv_phases(x: torch.Tensor, kernels: dict[int, torch.Tensor], kh: int, kw: int, pad: int,
                  scratch: Scratch) -> torch.Tensor:
    """Full stride-2 transposed convolution of x [1, I, H, W] with a kh x kw kernel given as phase_kernels:
    [1, O, 2H + kh - 2, 2W + kw - 2], each phase a dense convolution, interleaved into one tensor, returned
    inside a zero border of `pad` pixels (a scratch buffer: the blur after it reads the padding from there).
    Channels-last for wide layers (>= CHANNELS_LAST_MIN channels): oneDNN runs these small-kernel
    convolutions ~1.5x faster so at batch 1, and the interleave then copies whole channel vectors; narrow
    layers (the demo network's 8-64) stay contiguous, where the 1x1 ToRGB and image ops prefer it."""
    _, _, h, w = x.shape
    cl = upconv_memory_format(x.shape[1], kernels[0].shape[0])
    x = x.contiguous(memory_format=cl)
    oh, ow = 2 * h + kh - 2, 2 * w + kw - 2
    buf = scratch.take("up", [1, kernels[0].shape[0], oh + 2 * pad, ow + 2 * pad], x, zeroed=True, memory_format=cl)
    out = buf[:, :, pad: pad + oh, pad: pad + ow]
    for index, k in kernels.items():
        p, q = divmod(index, 2)
        th, tw = k.shape[2], k.shape[3]
        if th == tw == 1:  # a matrix product: torch's CPU conv falls back to a slow kernel for 1x1
            phase = pointwise(x, k.reshape(k.shape[0], -1))
        else:
            phase = F.conv2d(x, k, padding=[th - 1, tw - 1])  # full convolution: (H + th - 1, W + tw - 1)
        out[:, :, p::2, q::2] = phase[:, :, : (oh - p + 1) // 2, : (ow - q + 1) // 2]
    return buf


# Outputs at least this large run band by band of rows (BAND_BYTES of output each): at 256 px a feature map
# (128 x 256 x 256 floats, 33.5 MB) no longer fits the CPU's cache, and a whole-tensor conv followed by three
# whole-tensor epilogue passes goes to memory four times; a band is convolved, finished and written once.
BANDED_MIN_BYTES = 16 << 20
BAND_BYTES = 8 << 20


def banded(channels: int, height: int, width: int) -> int | None:
    """Rows per band for an output of this size, or None: small outputs run whole."""
    if channels * height * width * 4 < BANDED_MIN_BYTES:
        return None
    return max(1, BAND_BYTES // (channels * width * 4))


def banded_conv_(src: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: int, out: torch.Tensor,
                 noise: torch.Tensor | None, act: str, alpha: float, clamp: float | None, rows: int) -> torch.Tensor:
    """out = epilogue(conv2d(src, weight, bias, groups=groups) + noise), src already zero-padded, computed and
    finished `rows` output rows at a time while the band is in the cache."""
    kh = weight.shape[2]
    height = out.shape[2]
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        band = F.conv2d(src[:, :, r0: r1 + kh - 1], weight, bias, groups=groups)
        dst = out[:, :, r0: r1]
        if noise is not None:
            torch.add(band, noise[r0: r1], out=dst)
        else:
            dst.copy_(band)
        epilogue_(dst, None, act, alpha, clamp)
    return out


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """channels_last when x is laid out so (a batch-1 tensor counts by its strides), else contiguous."""
    return torch.channels_last if x.dim() == 4 and x.stride(1) == 1 and x.shape[1] > 1 else torch.contiguous_format


def padded_copy(x: torch.Tensor, pad: int, scratch: Scratch, name: str,
                scale: torch.Tensor | None = None) -> torch.Tensor:
    """x [1, C, H, W] (times a per-channel scale [C], when given) inside a zero border of `pad` pixels, in a
    reused buffer of x's memory format (only the interior is written)."""
    _, c, h, w = x.shape
    buf = scratch.take(name, [1, c, h + 2 * pad, w + 2 * pad], x, zeroed=True, memory_format=memory_format_of(x))
    inner = buf[:, :, pad: pad + h, pad: pad + w]
    if scale is None:
        inner.copy_(x)
    else:
        torch.mul(x, scale.reshape(1, c, 1, 1), out=inner)
    return buf


def depthwise_filter(f: torch.Tensor, channels: int, gain: float) -> torch.Tensor:
    """FIR f (2-D, or 1-D = separable) as a [C, 1, fh, fw] depthwise torch kernel: flipped (a true
    convolution, as upfirdn2d does) and scaled by gain."""
    if f.ndim == 1:
        f = torch.outer(f, f)
    return (f.flip([0, 1]) * gain)[None, None].repeat([channels, 1, 1, 1])


def epilogue_(x: torch.Tensor, noise: torch.Tensor | None, act: str, alpha: float, clamp: float | None) -> torch.Tensor:
    """In place on a fresh conv output whose bias and gain are already in: add noise, activate, clamp."""
    if noise is not None:
        x.add_(noise)
    if act == "lrelu":
        F.leaky_relu_(x, alpha)
    elif act == "relu":
        F.relu_(x)
    if clamp is not None and clamp >= 0:
        x.clamp_(-float(clamp), float(clamp))
    return x


def upsample_image_applies(f: torch.Tensor) -> bool:
    """upsample_image handles 4-tap filters (NVIDIA's [1, 3, 3, 1] design, or any other 4x4 / 4-tap one)."""
    return tuple(f.shape) in ((4, 4), (4,))


def upsample_image(img: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """ops.upsample2d(img, f) (2x, 4-tap filter) as one grouped stride-2 transposed convolution: zero
    insertion and the filter in one op instead of a reshape, two pads and a grouped conv. The transposed
    conv places the kernel where upsample2d's padding puts the (flipped, true-convolution) filter, so f goes
    in unflipped; the gain 4 keeps the level, as upsample2d's up * up."""
    c = img.shape[1]
    k = (torch.outer(f, f) if f.ndim == 1 else f) * 4
    return F.conv_transpose2d(img, k.to(img.dtype)[None, None].expand(c, 1, 4, 4), stride=2, padding=1, groups=c)


def torgb(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, clamp: float | None) -> torch.Tensor:
    """A 1x1 convolution [1, I, H, W] -> [1, O, H, W] as one matrix product over the pixels (torch's CPU
    convolution has no fast kernel for 3 outputs), plus bias and clamp."""
    _, c, h, w = x.shape
    weight = weight.reshape(weight.shape[0], c)
    if memory_format_of(x) == torch.channels_last:  # pixels x channels in memory: a transposed [C, HW] operand
        pixels = x.permute(0, 2, 3, 1).reshape(h * w, c).t()
    else:
        pixels = x.reshape(c, h * w)
    y = torch.addmm(bias[:, None], weight, pixels)
    if clamp is not None and clamp >= 0:
        y.clamp_(-float(clamp), float(clamp))
    return y.reshape(1, -1, h, w)


__all__ = ["HOMOGENEOUS_ACTIVATIONS", "Scratch", "supports", "squared_weight_sums", "demod_coefficients",
           "modulated_weight", "winograd_applies", "winograd_weight", "winograd_conv3x3_", "phase_kernels",
           "upconv_memory_format", "upconv_phases", "pointwise", "banded", "banded_conv_", "memory_format_of",
           "padded_copy", "depthwise_filter", "epilogue_", "upsample_image_applies", "upsample_image", "torgb"]
