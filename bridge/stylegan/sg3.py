"""StyleGAN3 (-T and -R) synthesis network in plain PyTorch, with NVIDIA's module and tensor names.

Structure:

    SynthesisNetwork                 input, L0_{size}_{ch}, ..., L{num_layers}_{img_res}_{img_channels}
      SynthesisInput  input          Fourier features: freqs, phases (buffers), transform (3x3 buffer),
                                     affine (w -> rotation + translation), weight (channel mixing)
      SynthesisLayer  L{i}_{s}_{c}   affine (w -> styles), weight, bias, magnitude_ema, up_filter, down_filter

Style slots: ws[:, 0] drives the input, ws[:, i + 1] drives layer i, so num_ws = num_layers + 2 (ToRGB
included). The output is multiplied by output_scale (0.25).

What one layer computes (x: N, C_in, H, W):
    styles = affine(w)                            ToRGB: times 1/sqrt(C_in * k * k), no demodulation
    x = modulated conv (k x k, padding k - 1)     weights scaled by magnitude_ema^-1/2 (input gain)
    x = x + bias
    x = upsample by up_factor with up_filter      zero insertion, pad/crop by `padding`, FIR (gain up^2)
    x = lrelu(x, 0.2) * sqrt(2), clamp +-256      ToRGB: slope 1, gain 1 (identity), still clamped
    x = downsample by down_factor with down_filter   1-D separable, or 2-D radial (SG3-R)
The geometry (sizes, sampling rates, cutoffs, transition widths, channel counts, up/down factors, tap counts,
padding) follows NVIDIA's constructor exactly and is computed by `synthesis_layout` and `SynthesisLayer`.
The FILTERS and the input TRANSFORM are buffers: a loaded network uses the stored values (trained or edited
networks need not match the design); only random init designs them (bridge.stylegan.filters).

`input.transform` holds the INVERSE of the user's 3x3 image transform (NVIDIA's convention); use
`SynthesisInput.set_user_transform(m)` to write one (bridge.manipulate.sg3_transform builds m from a hand),
or pass `transform=` to forward for a per-call (optionally per-sample) override.

Two execution paths with the same weights:
  * plain (default): float32, the straightforward formulation (zero insertion + FIR via ops.upfirdn2d),
    which is also what NVIDIA's code runs on CPU.
  * fast (`set_fast(True)`): polyphase upsampling (transposed convolution: no multiplies by inserted zeros),
    strided downsampling (only kept pixels are filtered), channels_last (depthwise FIR convs are ~10x faster
    that way on CPU too), in-place activation, filter/weight tensors prepared once and cached until the
    parameters change, and on CUDA fp16 in the layers NVIDIA runs in fp16 (sampling rate *
    2**num_fp16_res > img_resolution). The CPU stays float32 and adds Winograd 3x3 convolutions on wide
    layers (bridge.stylegan.winograd) and the filtered lrelu as banded matrix products
    (_filtered_lrelu_bands_gemm): SG3-T at 256 px runs ~7.5x faster than plain (bench/sg3t_cpu_fast.py).
Both paths are pinned to NVIDIA's outputs on CPU by the fixture tests; on CUDA a test pins fast == plain
within fp16 tolerance.

Bend points: ``input`` and every layer have a ``bend`` attribute (None, or features -> features) that the
network applies to their output; bridge.bending sets it. None is the plain forward pass.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bridge.stylegan import winograd
from bridge.stylegan.filters import design_lowpass_filter
from bridge.stylegan.ops import FullyConnectedLayer, bias_act, upfirdn2d
from bridge.stylegan.sg2 import _DerivedCache, check_noise_mode

log = logging.getLogger(__name__)

# The CPU fast path runs a layer's 3x3 modulated convolution by Winograd F(4x4, 3x3) (bridge.stylegan.winograd)
# when both its channel counts are at least this: there the matrix products dominate and it is 2-3x faster
# than the direct convolution; on narrower layers the tile transforms cost what the products save.
WINOGRAD_MIN_CHANNELS = 128

# SynthesisLayer keyword arguments a config may carry (NVIDIA passes them through SynthesisNetwork).
LAYER_KWARGS = ("conv_kernel", "filter_size", "lrelu_upsampling", "use_radial_filters", "conv_clamp",
                "magnitude_ema_beta")


# ------------------------------------------------------------------------------------------------ geometry

@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One layer's place in the network, as NVIDIA's SynthesisNetwork constructor derives it."""

    idx: int
    is_torgb: bool
    is_critically_sampled: bool
    use_fp16: bool
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_sampling_rate: int
    out_sampling_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float

    @property
    def name(self) -> str:
        return f"L{self.idx}_{self.out_size}_{self.out_channels}"

    def layer_kwargs(self) -> dict:
        """The SynthesisLayer arguments this spec fixes (everything except the hyperparameters)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "idx"}


@dataclasses.dataclass(frozen=True)
class InputSpec:
    channels: int
    size: int
    sampling_rate: float
    bandwidth: float


def synthesis_layout(img_resolution: int, img_channels: int, channel_base: int = 32768, channel_max: int = 512,
                     num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2,
                     first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10,
                     num_fp16_res: int = 4) -> tuple[InputSpec, list[LayerSpec]]:
    """Per-layer cutoffs, stopbands, sampling rates, sizes and channels (StyleGAN3 paper, Sec. 3.2 / App. F).

    Cutoffs and minimum stopbands grow geometrically from the first layer to the last non-critical one, then
    stay at the image's Nyquist; each layer samples at the smallest power of two that holds its stopband
    (at most img_resolution) plus a margin of `margin_size` pixels on each side (none in the last two).
    Same float64 numpy arithmetic as NVIDIA, so the derived numbers (and layer names) are identical.
    """
    if num_layers - num_critical <= 0:
        raise ValueError(f"num_layers ({num_layers}) must exceed num_critical ({num_critical})")
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels

    inp = InputSpec(channels=int(channels[0]), size=int(sizes[0]), sampling_rate=float(sampling_rates[0]),
                    bandwidth=float(cutoffs[0]))
    layers = []
    for idx in range(num_layers + 1):
        prev = max(idx - 1, 0)
        layers.append(LayerSpec(
            idx=idx, is_torgb=idx == num_layers, is_critically_sampled=idx >= num_layers - num_critical,
            use_fp16=bool(sampling_rates[idx] * (2 ** num_fp16_res) > img_resolution),
            in_channels=int(channels[prev]), out_channels=int(channels[idx]),
            in_size=int(sizes[prev]), out_size=int(sizes[idx]),
            in_sampling_rate=int(sampling_rates[prev]), out_sampling_rate=int(sampling_rates[idx]),
            in_cutoff=float(cutoffs[prev]), out_cutoff=float(cutoffs[idx]),
            in_half_width=float(half_widths[prev]), out_half_width=float(half_widths[idx])))
    return inp, layers


@dataclasses.dataclass(frozen=True)
class Resampling:
    """How one layer resamples: NVIDIA stores these as SynthesisLayer attributes under the same names."""

    tmp_sampling_rate: int
    up_factor: int
    down_factor: int
    up_taps: int
    down_taps: int
    down_radial: bool
    padding: list  # [x_lo, x_hi, y_lo, y_hi]; negative = crop


def layer_resampling(is_torgb: bool, is_critically_sampled: bool, in_size, out_size, in_sampling_rate: int,
                     out_sampling_rate: int, conv_kernel: int = 3, filter_size: int = 6, lrelu_upsampling: int = 2,
                     use_radial_filters: bool = False) -> Resampling:
    """Up/down factors, tap counts and padding of a layer, exactly as NVIDIA's constructor derives them.

    The leaky ReLU runs at tmp_sampling_rate (lrelu_upsampling x the higher of the in/out rates) to limit
    aliasing; filters are filter_size taps per unit of the factor; the padding makes the output exactly
    out_size after the (kernel - 1) growth of the convolution and the filters' shrinkage.
    """
    in_wh, out_wh = _size_wh(in_size), _size_wh(out_size)
    kernel = 1 if is_torgb else int(conv_kernel)
    tmp = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
    up, down = int(np.rint(tmp / in_sampling_rate)), int(np.rint(tmp / out_sampling_rate))
    if in_sampling_rate * up != tmp or out_sampling_rate * down != tmp:
        raise ValueError(f"sampling rates {in_sampling_rate} -> {tmp} -> {out_sampling_rate} are not related "
                         f"by integer factors")
    up_taps = filter_size * up if up > 1 and not is_torgb else 1
    down_taps = filter_size * down if down > 1 and not is_torgb else 1
    padding = []
    for axis in (0, 1):  # x (width), then y (height)
        total = (out_wh[axis] - 1) * down + 1  # wanted size before downsampling
        total -= (in_wh[axis] + kernel - 1) * up  # size after the convolution and upsampling
        total += up_taps + down_taps - 2  # lost to the two filters
        lo = (total + up) // 2  # symmetric sample positions (StyleGAN3 paper, App. C.3)
        padding += [lo, total - lo]
    return Resampling(tmp_sampling_rate=tmp, up_factor=up, down_factor=down, up_taps=up_taps,
                      down_taps=down_taps, down_radial=bool(use_radial_filters and not is_critically_sampled),
                      padding=padding)


# ---------------------------------------------------------------------------------------- tensor helpers

def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     padding: int = 0, input_gain: torch.Tensor | None = None,
                     weight_prenormalized: bool = False) -> torch.Tensor:
    """StyleGAN3's modulated convolution, one grouped conv over the batch.

    Differs from StyleGAN2's: with demodulation the weight is first normalised per output channel (RMS) and
    the styles by their RMS over the whole batch (both cancel in exact arithmetic; they keep fp16 in range
    and match NVIDIA's rounding), and an optional input gain (magnitude_ema^-1/2) scales the kernel after
    demodulation. `weight_prenormalized` says the caller already applied the per-channel weight RMS.
    """
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if styles.shape != (n, in_channels):
        raise ValueError(f"styles must have shape ({n}, {in_channels}), got {tuple(styles.shape)}")
    if demodulate:
        if not weight_prenormalized:
            weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    w = weight.unsqueeze(0) * styles.reshape(n, 1, in_channels, 1, 1)
    if torch.compiler.is_exporting():  # a batch-size-free graph: a grouped conv needs a fixed group count
        return _modulated_conv2d_shared(x, weight, styles, w, demodulate, padding, input_gain)
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(n, out_channels, 1, 1, 1)
    if input_gain is not None:
        w = w * input_gain
    w = w.reshape(n * out_channels, in_channels, kh, kw).to(x.dtype)
    if n == 1:  # no grouping needed; reshaping would also lose channels_last (the batch stride changes)
        return F.conv2d(x, w, padding=padding)
    x = F.conv2d(x.reshape(1, n * in_channels, *x.shape[2:]), w, padding=padding, groups=n)
    return x.reshape(n, out_channels, *x.shape[2:])


def _modulated_conv2d_shared(x, weight, styles, w, demodulate, padding, input_gain) -> torch.Tensor:
    """The same convolution as one shared kernel with the per-sample scales applied to the activations:
    input channels by the styles before, output channels by the demodulation (and input gain) after.
    w: the modulated, not yet demodulated, per-sample kernels (only their norms are used)."""
    n = x.shape[0]
    scale = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt() if demodulate else torch.ones_like(w[:, :, 0, 0, 0])
    if input_gain is not None:
        scale = scale * input_gain
    x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
    x = F.conv2d(x, weight.to(x.dtype), padding=padding)
    return x * scale.to(x.dtype).reshape(n, -1, 1, 1)


def filtered_lrelu_reference(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None,
                             b: torch.Tensor | None, up: int = 1, down: int = 1, padding=(0, 0, 0, 0),
                             gain: float = math.sqrt(2), slope: float = 0.2,
                             clamp: float | None = None) -> torch.Tensor:
    """Bias, upsample (fu), leaky ReLU with gain and clamp, downsample (fd): the straightforward way.

    padding [x0, x1, y0, y1] applies after zero insertion, before the up filter; negative values crop.
    """
    x = bias_act(x, b)
    x = upfirdn2d(x, fu, up=up, padding=list(padding), gain=up ** 2)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return upfirdn2d(x, fd, down=down)


def _pad_axis(x: torch.Tensor, lo: int, hi: int, axis: int) -> torch.Tensor:
    """Zero-pad (or, where negative, crop) x along axis 2 (height) or 3 (width)."""
    if lo == 0 and hi == 0:
        return x
    return F.pad(x, [lo, hi, 0, 0] if axis == 3 else [0, 0, lo, hi])


def _upsample_axis(x: torch.Tensor, weight: torch.Tensor | None, up: int, lo: int, hi: int,
                   axis: int) -> torch.Tensor:
    """Polyphase form of: insert up-1 zeros after each sample along `axis`, pad (lo, hi), convolve.

    weight: the depthwise kernel [C, 1, K, 1] (axis 2) or [C, 1, 1, K] (axis 3), unflipped filter * gain.
    A stride-`up` transposed convolution never multiplies the inserted zeros. Its output o[j] equals the
    zero-inserted, convolved signal at j - (K - 1 - lo); the remainder is cropped or zero-padded.
    """
    if weight is None and up == 1:
        return _pad_axis(x, lo, hi, axis)
    taps = 1 if weight is None else weight.shape[axis]
    length = x.shape[axis]
    want = length * up + lo + hi - taps + 1
    full = (length - 1) * up + taps
    start = taps - 1 - lo
    crop = max(0, min(start, full - start - want))  # cropped inside the conv: those outputs are never computed
    if weight is None:
        weight = torch.ones([x.shape[1], 1, 1, 1], dtype=x.dtype, device=x.device)
    stride = (up, 1) if axis == 2 else (1, up)
    pad = (crop, 0) if axis == 2 else (0, crop)
    y = F.conv_transpose2d(x, weight, stride=stride, padding=pad, groups=x.shape[1])
    start -= crop
    return _pad_axis(y, -start, want - y.shape[axis] + start, axis)


def filtered_lrelu_fast(x: torch.Tensor, filters: dict, b: torch.Tensor | None, up: int, down: int,
                        padding, gain: float, slope: float, clamp: float | None) -> torch.Tensor:
    """Same result as filtered_lrelu_reference, computing only what is kept (see _upsample_axis).

    filters: prepared depthwise kernels from SynthesisLayer._fast_filters (already on x's device/dtype).
    """
    # Whether x will be our own intermediate (then it is updated in place: no extra full-size buffers) rather
    # than the caller's tensor. Not by holding on to the input: that would keep it alive and raise the peak.
    fresh = (b is not None or up > 1 or any(p != 0 for p in padding)
             or filters["up2d"] is not None or filters["up_x"] is not None)
    if b is not None:
        x = x + b.reshape(1, -1, 1, 1)
    if (x.device.type == "cpu" and filters["up2d"] is None and (up > 1 or down > 1) and not x.requires_grad
            and not torch.compiler.is_compiling()):
        if filters.get("up_taps") is not None and filters.get("down_taps") is not None and gain > 0:
            taps = {"up_y": filters["up_taps"], "up_x": filters["up_taps"] * gain, "down": filters["down_taps"]}
            return _filtered_lrelu_bands_gemm(x, taps, up, down, padding, gain, slope, clamp)
        return _filtered_lrelu_bands(x, filters, up, down, padding, gain, slope, clamp)
    px0, px1, py0, py1 = padding
    if filters["up2d"] is not None:  # NVIDIA designs 1-D up filters; an edited 2-D one takes the plain route
        x = upfirdn2d(x, filters["up2d"], up=up, padding=list(padding), gain=up ** 2)
    else:
        x = _upsample_axis(x, filters["up_x"], up, px0, px1, axis=3)
        x = _upsample_axis(x, filters["up_y"], up, py0, py1, axis=2)
    inplace = fresh and not x.requires_grad
    if slope != 1:
        x = F.leaky_relu(x, slope, inplace=inplace)
    if gain != 1:
        x = x.mul_(gain) if inplace else x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    c = x.shape[1]
    if filters["down2d"] is not None:
        return F.conv2d(x, filters["down2d"], stride=down, groups=c)
    if filters["down_x"] is not None:
        x = F.conv2d(x, filters["down_x"], stride=(1, down), groups=c)
        return F.conv2d(x, filters["down_y"], stride=(down, 1), groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


# Target size of one band's largest intermediate in _filtered_lrelu_bands: small enough to be reused from the
# allocator's heap and to stay mostly in cache (a whole upsampled layer is up to ~400 MB, and each fresh
# allocation that size costs more in page faults than the filtering itself).
BAND_BYTES = 6 << 20
# ... in _filtered_lrelu_bands_gemm, whose intermediates live in reused per-thread buffers (no page faults
# after the first frame): bigger bands recompute fewer halo rows (8 output rows of a 512-channel layer
# upsampled 26 rows for 16 kept; 40 rows: 90 for 80). SG3-T 256 px, whole fast frame, sizes alternating in
# one process: 8.6 s at 6 MB, 7.2 s at 24 MB, 6.7-7.5 s at 32-128 MB (within noise of each other).
GEMM_BAND_BYTES = 48 << 20
MIN_BAND_ROWS = 8


def _filtered_lrelu_bands(x: torch.Tensor, filters: dict, up: int, down: int, padding, gain: float,
                          slope: float, clamp: float | None) -> torch.Tensor:
    """filtered_lrelu_fast's CPU form (bias already added): the same passes, run band by band of output rows.

    Each band of output rows [o0, o1) needs the upsampled rows [down * o0, down * (o1 - 1) + Kd) and so the
    input rows whose zero-inserted positions reach them; the band is upsampled along x, then along y with its
    padding shifted to the band (see _upsample_axis), activated in place and downsampled, then copied into the
    output. Rows in the halo of two bands are upsampled twice (~10-30% more filtering) in exchange for
    intermediates of a few MB instead of hundreds.
    """
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    taps_up = 1 if filters["up_y"] is None else filters["up_y"].shape[2]
    if filters["down2d"] is not None:
        taps_down = filters["down2d"].shape[2]
    elif filters["down_y"] is not None:
        taps_down = filters["down_y"].shape[2]
    else:
        taps_down = 1
    rows_up = h * up + py0 + py1 - taps_up + 1
    cols_up = w * up + px0 + px1 - taps_up + 1
    rows_out = (rows_up - taps_down) // down + 1
    cols_out = (cols_up - taps_down) // down + 1
    out = torch.empty((n, c, rows_out, cols_out), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    band = max(MIN_BAND_ROWS, BAND_BYTES // max(1, down * n * cols_up * c * x.element_size()))
    for o0 in range(0, rows_out, band):
        o1 = min(rows_out, o0 + band)
        i0, i1 = down * o0, down * (o1 - 1) + taps_down  # upsampled rows this band reads
        j0 = max(0, -((py0 - i0) // up))  # first input row at or after upsampled row i0
        j1 = min(h, -((py0 - (i1 + taps_up - 1)) // up))
        if j1 <= j0:  # the band lies in the zero padding
            out[:, :, o0:o1].zero_()
            continue
        lo = py0 - i0 + up * j0
        hi = (i1 - i0) + taps_up - 1 - (j1 - j0) * up - lo
        t = _upsample_axis(x[:, :, j0:j1], filters["up_x"], up, px0, px1, axis=3)
        t = _upsample_axis(t, filters["up_y"], up, lo, hi, axis=2)
        if slope != 1:
            t = F.leaky_relu_(t, slope)
        if gain != 1:
            t = t.mul_(gain)
        if clamp is not None and clamp >= 0:
            t = t.clamp_(-clamp, clamp)
        if filters["down2d"] is not None:
            t = F.conv2d(t, filters["down2d"], stride=down, groups=c)
        elif filters["down_x"] is not None:
            t = F.conv2d(t, filters["down_x"], stride=(1, down), groups=c)
            t = F.conv2d(t, filters["down_y"], stride=(down, 1), groups=c)
        elif down > 1:
            t = t[:, :, ::down, ::down]
        out[:, :, o0:o1].copy_(t)
    return out


GEMM_BLOCK = 16  # outputs per block of _fir_outer's block-banded matrix products
# ... when downsampling: a block of 4 outputs reads 18 rows of which each output weighs 12 (16 outputs: 42 rows,
# 29% of the band non-zero); measured per layer of SG3-T 256 px, 5-20% faster than blocks of 16 (blocks of 2-6
# within noise of 4).
GEMM_BLOCK_DOWN = 4
GEMM_COLUMNS = 4096  # columns per product in _fir_outer (cache-sized pieces of long rows)


@functools.lru_cache(maxsize=512)
def _fir_band(taps: tuple, up: int, down: int, lo: int, block: int, dtype: torch.dtype,
              device: torch.device) -> tuple[torch.Tensor, int, int]:
    """(band, first, span) of _fir_outer: the polyphase band [block, span] (the taps of each input row for
    each of the block's outputs, zeros included), the first input row block 0 reads, and the rows one block
    reads. Cached: the same few geometries recur every frame (per layer and band edge)."""
    k = len(taps)
    first, last = _fir_reach(k, up, down, lo, block)
    span = last - first + 1
    rows = torch.arange(block).reshape(-1, 1)
    cols = torch.arange(span).reshape(1, -1)
    index = up * (first + cols) + lo - down * rows  # tap of input row first + col for output row
    valid = (index >= 0) & (index < k)
    values = torch.tensor(taps, dtype=torch.float64)[index.clamp(0, k - 1)]
    band = torch.where(valid, values, torch.zeros((), dtype=torch.float64))
    return band.to(device=device, dtype=dtype), first, span


def _fir_block(up: int, down: int, out_len: int) -> int:
    """Outputs per block: GEMM_BLOCK (GEMM_BLOCK_DOWN when downsampling), rounded up so that a block starts
    on an input row."""
    block = max(1, min(GEMM_BLOCK if down == 1 else GEMM_BLOCK_DOWN, out_len))
    while (down * block) % up:
        block += 1
    return block


def _fir_reach(k: int, up: int, down: int, lo: int, out_len: int) -> tuple[int, int]:
    """(first, last): the input rows that the first and the last of `out_len` outputs of _fir_outer read."""
    return _ceil_div(-lo, up), (down * (out_len - 1) + k - 1 - lo) // up


def _fir_padding(length: int, k: int, up: int, down: int, lo: int, out_len: int) -> tuple[int, int]:
    """Zero rows _fir_outer needs before and after x's `length` rows (it pads a copy itself otherwise): a
    caller that copies x anyway can write it into a buffer with these rows zeroed, and pass lo - up * front."""
    first, last = _fir_reach(k, up, down, lo, out_len)
    return max(0, -first), max(0, last + 1 - length)


def _fir_outer(x: torch.Tensor, taps: torch.Tensor, up: int, down: int, lo: int, out_len: int,
               out: torch.Tensor | None = None) -> torch.Tensor:
    """1-D resampling along the outer axis of a 2-D tensor x [L, N], as block-banded matrix products.

    out[i] = sum_k taps[k] * z[down * i + k], where z is x with up - 1 zeros inserted after each row and `lo`
    zero rows in front (negative: cropped): upfirdn along one axis, as a correlation. Each block of
    GEMM_BLOCK outputs reads the same number of input rows at a fixed step, so one small dense matrix
    (the filter's polyphase band, zeros included) multiplies overlapping windows of x: the products run at
    matrix-multiply speed on rows of N = width x channels floats, which beats depthwise convolutions on the
    CPU by far even with the band's zeros multiplied (about 2x the filter's own work).
    out: optional [out_len, N] destination with unit column stride (rows may be further apart).
    """
    length, n = x.shape
    k = taps.shape[0]
    block = _fir_block(up, down, out_len)
    step = down * block // up
    band, first, span = _fir_band(tuple(taps.tolist()), up, down, lo, block, x.dtype, x.device)
    # Zero rows only where a wanted output reads beyond x (the padding of an upsampling); a last, partial
    # block runs as its own smaller product instead of reading past the end.
    front, back = _fir_padding(length, k, up, down, lo, out_len)
    last = _fir_reach(k, up, down, lo, out_len)[1]
    if front or back:
        padded = x.new_empty(front + length + back, n)
        if front:
            padded[:front].zero_()
        if back:
            padded[front + length:].zero_()
        padded[front:front + length].copy_(x)
        x, start = padded, first + front
    else:
        start = first
    if x.stride(1) != 1:
        x = x.contiguous()
    row = x.stride(0)  # a view of whole rows may skip columns between them
    full, rest = divmod(out_len, block)
    if out is None:
        out = winograd.empty_huge((out_len, n), x)
    if full:
        windows = x.as_strided((full, span, n), (step * row, row, 1), x.storage_offset() + start * row)
        main = out[:full * block].unflatten(0, (full, block))
        wide = band.expand(full, block, span)
        # column chunks keep each product's inputs in the core's cache (~1.7x faster than one product)
        for j in range(0, n, GEMM_COLUMNS):
            torch.bmm(wide, windows[:, :, j:j + GEMM_COLUMNS], out=main[:, :, j:j + GEMM_COLUMNS])
    if rest:
        begin = start + full * step
        tail = last - (first + full * step) + 1
        torch.mm(band[:rest, :tail], x[begin:begin + tail], out=out[full * block:])
    return out


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def _transposed_rows(t: torch.Tensor, rows: int, cols: int, channels: int, role: str, pad: tuple[int, int]):
    """t [rows, cols * channels] -> [pad[0] + cols + pad[1], rows * channels] in this thread's `role` buffer,
    the pad rows zeroed: the x passes of _filtered_lrelu_bands_gemm run along the outer axis too."""
    front, back = pad
    dest = winograd._scratch(role, (front + cols + back, rows * channels), t)
    if front:
        dest[:front].zero_()
    if back:
        dest[front + cols:].zero_()
    dest[front:front + cols].view(cols, rows, channels).copy_(t.view(rows, cols, channels).transpose(0, 1))
    return dest


def _filtered_lrelu_bands_gemm(x: torch.Tensor, taps: dict, up: int, down: int, padding, gain: float,
                               slope: float, clamp: float | None) -> torch.Tensor:
    """_filtered_lrelu_bands with separable filters, every pass a _fir_outer: up along y on the band's
    input rows, a transposed copy, up along x (its taps carry the activation's gain: lrelu commutes with a
    positive scale, and the clamp comes after the gain anyway), the activation, down along x, a transposed
    copy back, down along y straight into the output's rows. Channels-last rows of width x channels floats are
    the long, contiguous axis of every product. The intermediates ping-pong between two per-thread buffers
    (winograd._scratch), so bands of tens of MB cost no page faults after the first frame; bigger bands
    recompute fewer halo rows (rows two bands both need)."""
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    fu, fd = taps["up_y"], taps["down"]
    ku, kd = fu.shape[0], fd.shape[0]
    rows_up = h * up + py0 + py1 - ku + 1
    cols_up = w * up + px0 + px1 - ku + 1
    rows_out = (rows_up - kd) // down + 1
    cols_out = (cols_up - kd) // down + 1
    out = winograd.empty_huge((n, c, rows_out, cols_out), x, memory_format=torch.channels_last)
    band = max(MIN_BAND_ROWS, GEMM_BAND_BYTES // max(1, down * cols_up * c * x.element_size()))
    xh = x.permute(0, 2, 3, 1)  # [n, h, w, c] (a view: x is channels_last)
    oh = out.permute(0, 2, 3, 1)
    pad_x = _fir_padding(w, ku, up, 1, px0, cols_up)
    for b in range(n):
        for o0 in range(0, rows_out, band):
            o1 = min(rows_out, o0 + band)
            i0, i1 = down * o0, down * (o1 - 1) + kd
            j0 = max(0, _ceil_div(i0 - py0, up))
            j1 = min(h, _ceil_div(i1 + ku - 1 - py0, up))
            if j1 <= j0:
                oh[b, o0:o1].zero_()
                continue
            rows = i1 - i0
            t = winograd._scratch("fir_a", (rows, w * c), x)
            _fir_outer(xh[b, j0:j1].reshape(j1 - j0, w * c), fu, up, 1, py0 - i0 + up * j0, rows, out=t)
            t = _transposed_rows(t, rows, w, c, "fir_b", pad_x)
            u = winograd._scratch("fir_a", (cols_up, rows * c), x)
            t = _fir_outer(t, taps["up_x"], up, 1, px0 - up * pad_x[0], cols_up, out=u)
            if slope != 1:
                t = F.leaky_relu_(t, slope)
            if clamp is not None and clamp >= 0:
                t = t.clamp_(-clamp, clamp)
            t = _fir_outer(t, fd, 1, down, 0, cols_out, out=winograd._scratch("fir_b", (cols_out, rows * c), x))
            t = _transposed_rows(t, cols_out, rows, c, "fir_a", (0, 0))
            _fir_outer(t, fd, 1, down, 0, o1 - o0, out=oh[b, o0:o1].view(o1 - o0, cols_out * c))
    return out


def _fast_dtype(module, device: torch.device, force_fp32: bool) -> torch.dtype:
    """The compute dtype of a layer: float32, except fp16 layers on the fast path on CUDA (or a forced dtype)."""
    if not module.fast or not module.use_fp16 or force_fp32:
        return torch.float32
    if module.fast_dtype is not None:
        return module.fast_dtype
    return torch.float16 if device.type == "cuda" else torch.float32


# --------------------------------------------------------------------------------------------------- modules

class SynthesisInput(nn.Module):
    """Fourier-feature input: sinusoids at fixed frequencies, rotated/translated per sample by affine(w).

    affine(w) = (r_c, r_s, t_x, t_y) is normalised to a unit rotation (r_c, r_s); the features are evaluated
    on a grid of `size` pixels at `sampling_rate`, after applying rotation, translation and then the user's
    inverse transform buffer. Frequencies pushed beyond the band by the user transform fade out
    (amplitude ramps to 0 between `bandwidth` and sampling_rate / 2). Finally a channels x channels mixing.
    """

    def __init__(self, w_dim: int, channels: int, size, sampling_rate: float, bandwidth: float):
        super().__init__()
        self.w_dim = int(w_dim)
        self.channels = int(channels)
        self.size = _size_wh(size)
        self.sampling_rate = sampling_rate
        self.bandwidth = bandwidth
        # Random init as NVIDIA: frequencies uniform-ish in a disc of radius `bandwidth`, phases in [-0.5, 0.5).
        freqs = torch.randn([self.channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        phases = torch.rand([self.channels]) - 0.5
        self.weight = nn.Parameter(torch.randn([self.channels, self.channels]))
        self.affine = FullyConnectedLayer(self.w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3, 3))  # INVERSE of the user transform (NVIDIA's convention)
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)
        self.fast = False
        self.bend = None  # optional features -> features after the input (bridge.bending); None = unbent
        self._cache = _DerivedCache()

    def set_user_transform(self, matrix) -> None:
        """Store the inverse of the 3x3 user transform `matrix`, e.g. NVIDIA's rotation + translation
        [[cos a, sin a, tx], [-sin a, cos a, ty], [0, 0, 1]] (translation in image widths).

        Rejects (ValueError, buffer unchanged) a matrix that is not 3x3, not finite or not invertible.
        """
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (3, 3) or not np.all(np.isfinite(m)):
            raise ValueError(f"user transform must be a finite 3x3 matrix, got shape {m.shape}")
        if abs(np.linalg.det(m)) < 1e-12:
            raise ValueError("user transform is not invertible")
        with torch.no_grad():
            self.transform.copy_(torch.as_tensor(np.linalg.inv(m), dtype=torch.float32))

    def forward(self, w: torch.Tensor, transform: torch.Tensor | None = None) -> torch.Tensor:
        """w (N, w_dim) -> features (N, channels, H, W). transform: optional (3, 3) or (N, 3, 3) inverse
        transform used instead of the buffer for this call."""
        n = w.shape[0]
        user = _check_transform(self.transform if transform is None else transform, n).to(w.device, torch.float32)
        freqs, phases = self._transformed_frequencies(w, user)
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth)
                      / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        width, height = self.size
        if self.fast:
            # keyed on freqs only for its device: the grid moves with the module
            grid = self._cache.get("grid", (self.freqs,), lambda: self._grid(w.device)).reshape(1, -1, 2)
            x = torch.matmul(grid, freqs.transpose(1, 2)).reshape(n, height, width, self.channels)
            mix = self._cache.get("mix", (self.weight,), lambda: (self.weight / math.sqrt(self.channels)).t())
        else:
            grid = self._grid(w.device)
            x = (grid.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)
            mix = (self.weight / math.sqrt(self.channels)).t()
        x = x + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (np.pi * 2))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ mix
        return x.permute(0, 3, 1, 2)  # NHWC storage viewed as NCHW: channels_last for free

    def _transformed_frequencies(self, w: torch.Tensor, user: torch.Tensor):
        """Per-sample frequencies (N, C, 2) and phases (N, C) after rotation, translation and user transform."""
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        c, s, tx, ty = t.unbind(1)
        zero, one = torch.zeros_like(c), torch.ones_like(c)
        m_r = torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=1).reshape(-1, 3, 3)
        m_t = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], dim=1).reshape(-1, 3, 3)
        transforms = m_r @ m_t @ user  # rotate, then translate, then the user's transform
        freqs = self.freqs.unsqueeze(0)
        phases = self.phases.unsqueeze(0) + (freqs @ transforms[:, :2, 2:]).squeeze(2)
        return freqs @ transforms[:, :2, :2], phases

    def _grid(self, device) -> torch.Tensor:
        """Sample positions (1, H, W, 2) in the units the frequencies use (pixel centres, image-centred)."""
        width, height = self.size
        theta = torch.eye(2, 3, device=device)
        # scaled in place by Python numbers: ``theta[0, 0] = value`` would copy a host tensor to the device
        # every frame, which a CUDA graph cannot capture (bridge.cuda_graph)
        theta[0].mul_(0.5 * width / self.sampling_rate)
        theta[1].mul_(0.5 * height / self.sampling_rate)
        return F.affine_grid(theta.unsqueeze(0), [1, 1, height, width], align_corners=False)

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, channels={self.channels}, size={list(self.size)}, "
                f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}")


class SynthesisLayer(nn.Module):
    """Modulated conv + filtered leaky ReLU (see the module docstring). NVIDIA's arguments and defaults."""

    def __init__(self, w_dim: int, is_torgb: bool, is_critically_sampled: bool, use_fp16: bool,
                 in_channels: int, out_channels: int, in_size, out_size, in_sampling_rate: int,
                 out_sampling_rate: int, in_cutoff: float, out_cutoff: float, in_half_width: float,
                 out_half_width: float, conv_kernel: int = 3, filter_size: int = 6, lrelu_upsampling: int = 2,
                 use_radial_filters: bool = False, conv_clamp: float | None = 256, magnitude_ema_beta: float = 0.999,
                 **ignored):
        super().__init__()
        if ignored:
            log.debug("SynthesisLayer ignores kwargs %s", sorted(ignored))
        self.w_dim = int(w_dim)
        self.is_torgb = bool(is_torgb)
        self.is_critically_sampled = bool(is_critically_sampled)
        self.use_fp16 = bool(use_fp16)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.in_size, self.out_size = _size_wh(in_size), _size_wh(out_size)
        self.in_sampling_rate, self.out_sampling_rate = in_sampling_rate, out_sampling_rate
        self.in_cutoff, self.out_cutoff = in_cutoff, out_cutoff
        self.in_half_width, self.out_half_width = in_half_width, out_half_width
        self.conv_kernel = 1 if is_torgb else int(conv_kernel)
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta  # training only (EMA of input magnitude); kept for reference
        self.torgb_weight_gain = 1 / math.sqrt(self.in_channels * self.conv_kernel ** 2)
        for key, value in dataclasses.asdict(layer_resampling(
                self.is_torgb, self.is_critically_sampled, self.in_size, self.out_size, in_sampling_rate,
                out_sampling_rate, self.conv_kernel, int(filter_size), lrelu_upsampling,
                bool(use_radial_filters))).items():
            setattr(self, key, value)  # tmp_sampling_rate, up/down factor and taps, down_radial, padding

        self.affine = FullyConnectedLayer(self.w_dim, self.in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([self.out_channels, self.in_channels, self.conv_kernel,
                                                self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([self.out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self.register_buffer("up_filter", _as_filter(design_lowpass_filter(
            self.up_taps, self.in_cutoff, self.in_half_width * 2, self.tmp_sampling_rate)))
        self.register_buffer("down_filter", _as_filter(design_lowpass_filter(
            self.down_taps, self.out_cutoff, self.out_half_width * 2, self.tmp_sampling_rate,
            radial=self.down_radial)))
        self.fast = False
        self.fast_dtype: torch.dtype | None = None
        self.bend = None  # optional features -> features after this layer (bridge.bending); None = unbent
        self._cache = _DerivedCache()

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const",
                force_fp32: bool = False) -> torch.Tensor:
        want = (self.in_channels, self.in_size[1], self.in_size[0])
        if x.ndim != 4 or tuple(x.shape[1:]) != want or w.shape != (x.shape[0], self.w_dim):
            raise ValueError(f"{self.extra_repr()}: expected x (N, {', '.join(map(str, want))}) and "
                             f"w (N, {self.w_dim}); got {tuple(x.shape)} and {tuple(w.shape)}")
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * self.torgb_weight_gain
        gain, slope = (1.0, 1.0) if self.is_torgb else (math.sqrt(2), 0.2)
        if not self.fast:
            x = modulated_conv2d(x.to(torch.float32), self.weight, styles, demodulate=not self.is_torgb,
                                 padding=self.conv_kernel - 1, input_gain=self.magnitude_ema.rsqrt())
            return filtered_lrelu_reference(x, self.up_filter, self.down_filter, self.bias, up=self.up_factor,
                                            down=self.down_factor, padding=self.padding, gain=gain, slope=slope,
                                            clamp=self.conv_clamp)
        return self._forward_fast(x, styles, gain, slope, _fast_dtype(self, x.device, force_fp32))

    def _forward_fast(self, x, styles, gain, slope, dtype) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # depthwise FIR convs: ~10x faster on CPU too
        weight = self._cache.get("weight", (self.weight,), self._prenormalized_weight)
        input_gain = self._cache.get("input_gain", (self.magnitude_ema,), lambda: self.magnitude_ema.rsqrt())
        bias = self._cache.get(f"bias/{dtype}", (self.bias,), lambda: self.bias.to(dtype))
        if self._winograd_applies(x, dtype):
            x = self._winograd_modconv(x, styles, bias)
            bias = None  # added by the convolution's last pass
        else:
            x = modulated_conv2d(x.to(dtype), weight, styles, demodulate=not self.is_torgb,
                                 padding=self.conv_kernel - 1, input_gain=input_gain, weight_prenormalized=True)
        sources = tuple(f for f in (self.up_filter, self.down_filter) if f is not None)
        filters = self._cache.get(f"filters/{dtype}", sources,
                                  lambda: self._fast_filters(x.device, dtype))
        return filtered_lrelu_fast(x, filters, bias, up=self.up_factor, down=self.down_factor,
                                   padding=self.padding, gain=gain, slope=slope, clamp=self.conv_clamp)

    def _winograd_applies(self, x: torch.Tensor, dtype: torch.dtype) -> bool:
        """CPU float32, a demodulated 3x3 convolution on wide enough layers, and not an export (ONNX wants
        the plain convolution)."""
        return (x.device.type == "cpu" and dtype == torch.float32 and not self.is_torgb
                and self.conv_kernel == 3 and min(self.in_channels, self.out_channels) >= WINOGRAD_MIN_CHANNELS
                and not torch.compiler.is_exporting())

    def _winograd_modconv(self, x: torch.Tensor, styles: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """modulated_conv2d(demodulate=True, input_gain) + bias, by Winograd: the modulation scales the input
        channels (styles) before and the output channels (demodulation * input gain) after one shared,
        transformed kernel, cached per weight. Same numbers as the direct form up to float32 rounding."""
        prepared = self._cache.get("winograd", (self.weight, self.magnitude_ema), self._winograd_weight)
        styles = styles * styles.square().mean().rsqrt()  # modulated_conv2d's batch RMS (cancels exactly)
        dcoefs = (styles.square() @ prepared["sumsq"].t() + 1e-8).rsqrt()  # = sum over (i, k) of (w * s)^2
        return winograd.conv3x3(x.to(torch.float32), prepared["u"], self.conv_kernel - 1, in_scale=styles,
                                out_scale=dcoefs * prepared["gain"], bias=bias,
                                scratch_output=self.up_factor > 1 or self.down_factor > 1)  # consumed below

    def _winograd_weight(self) -> dict:
        weight = self._prenormalized_weight()
        return {"u": winograd.transform_weight(weight), "sumsq": weight.square().sum([2, 3]),
                "gain": self.magnitude_ema.rsqrt()}

    def _prenormalized_weight(self) -> torch.Tensor:
        """The weight with modulated_conv2d's per-output-channel RMS normalisation applied (frame-invariant)."""
        if self.is_torgb:
            return self.weight.float()
        return self.weight * self.weight.square().mean([1, 2, 3], keepdim=True).rsqrt()

    def _fast_filters(self, device, dtype) -> dict:
        """Depthwise kernels for filtered_lrelu_fast: up kernels unflipped with the gain folded in (one
        factor `up` per axis), down kernels flipped (a true convolution run as torch's correlation)."""
        c = self.out_channels
        fu, fd = self.up_filter, self.down_filter
        out = {"up_x": None, "up_y": None, "up2d": None, "down_x": None, "down_y": None, "down2d": None,
               "up_taps": None, "down_taps": None}
        if fu is not None and fu.ndim == 2:
            out["up2d"] = fu.to(device, dtype)
        elif fu is not None:
            k = (fu.to(device, torch.float32) * self.up_factor).to(dtype)
            out["up_x"] = k.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1)
            out["up_y"] = k.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1)
        if fu is not None and fu.ndim == 1:  # correlation taps for _fir_outer (CPU bands)
            out["up_taps"] = (fu.to(device, torch.float32).flip([0]) * self.up_factor).to(dtype)
        if fd is not None and fd.ndim == 1:
            out["down_taps"] = fd.flip([0]).to(device, dtype)
        if fd is not None and fd.ndim == 2:
            out["down2d"] = fd.flip([0, 1]).to(device, dtype)[None, None].repeat(c, 1, 1, 1)
        elif fd is not None:
            k = fd.flip([0]).to(device, dtype)
            out["down_x"] = k.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1)
            out["down_y"] = k.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1)
        return out

    def extra_repr(self) -> str:
        return (f"in={self.in_channels}x{self.in_size[0]}@{self.in_sampling_rate:g}, "
                f"out={self.out_channels}x{self.out_size[0]}@{self.out_sampling_rate:g}, up={self.up_factor}, "
                f"down={self.down_factor}, padding={self.padding}, critical={self.is_critically_sampled}, "
                f"torgb={self.is_torgb}, radial={self.down_radial}")


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> image (N, img_channels, img_resolution, img_resolution), nominal [-1, 1].

    Arguments are NVIDIA's (stylegan3 repo, networks_stylegan3.SynthesisNetwork) with its defaults; the
    SynthesisLayer hyperparameters (LAYER_KWARGS) pass through. Other kwargs (training-only options of
    either repo) are accepted and ignored.
    """

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2,
                 first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10,
                 output_scale: float = 0.25, num_fp16_res: int = 4, **kwargs):
        super().__init__()
        layer_kwargs = {k: v for k, v in kwargs.items() if k in LAYER_KWARGS}
        ignored = sorted(set(kwargs) - set(layer_kwargs))
        if ignored:
            log.debug("StyleGAN3 SynthesisNetwork ignores kwargs %s", ignored)
        self.w_dim = int(w_dim)
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        self.num_layers, self.num_critical = int(num_layers), int(num_critical)
        self.num_ws = self.num_layers + 2
        self.margin_size = margin_size
        self.output_scale = output_scale
        self.num_fp16_res = num_fp16_res
        inp, specs = synthesis_layout(self.img_resolution, self.img_channels, channel_base, channel_max,
                                      self.num_layers, self.num_critical, first_cutoff, first_stopband,
                                      last_stopband_rel, margin_size, num_fp16_res)
        self.input = SynthesisInput(self.w_dim, inp.channels, inp.size, inp.sampling_rate, inp.bandwidth)
        self.layer_names: list[str] = []
        for spec in specs:
            setattr(self, spec.name, SynthesisLayer(w_dim=self.w_dim, **spec.layer_kwargs(), **layer_kwargs))
            self.layer_names.append(spec.name)
        self.fast = False

    def layers(self) -> list[SynthesisLayer]:
        return [getattr(self, name) for name in self.layer_names]

    def set_fast(self, fast: bool = True, dtype: torch.dtype | None = None) -> "SynthesisNetwork":
        """Switch the fast path on or off (see the module docstring).

        dtype: the half type for the fp16 layers; None = float16 on CUDA and float32 elsewhere (CPU stays
        float32). Pass e.g. torch.bfloat16, or torch.float16 to exercise the half path on CPU in a test.

        Switching off frees what the fast path derived from the weights (Winograd-transformed kernels, half
        copies: hundreds of MB at full width), so the first fast frame after switching on again rebuilds them
        (measured 2.8x a steady fast frame on a reduced SG3-T, BENCHMARKS.md issue 16). Switching on keeps
        them: the cache checks every entry against its source tensors anyway.
        """
        self.fast = bool(fast)
        self.input.fast = self.fast
        for layer in self.layers():
            layer.fast, layer.fast_dtype = self.fast, dtype
        if not self.fast:
            for module in (self.input, *self.layers()):
                module._cache.clear()
        return self

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", force_fp32: bool = False,
                transform: torch.Tensor | None = None) -> torch.Tensor:
        """noise_mode is accepted for a uniform interface (StyleGAN3 has no noise inputs). transform: an
        optional inverse user transform (3, 3) or (N, 3, 3) replacing the `input.transform` buffer for this
        call. force_fp32 disables fp16 on the fast path."""
        check_noise_mode(noise_mode)
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape (N, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0], transform=transform)
        if self.input.bend is not None:  # bridge.bending's insertion points; None = the unbent network
            x = self.input.bend(x)
        for name, w in zip(self.layer_names, ws[1:]):
            layer = getattr(self, name)
            x = layer(x, w, force_fp32=force_fp32)
            if layer.bend is not None:
                x = layer.bend(x)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32)

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}, "
                f"num_ws={self.num_ws}, layers={len(self.layer_names)}")


# ---------------------------------------------------------------------------------------------- small helpers

def _size_wh(size) -> tuple[int, int]:
    """int or [width, height] -> (width, height) ints (NVIDIA stores numpy [w, h])."""
    w, h = np.broadcast_to(np.asarray(size), [2])
    return int(w), int(h)


def _as_filter(f: np.ndarray | None) -> torch.Tensor | None:
    return None if f is None else torch.as_tensor(f, dtype=torch.float32)


def _check_transform(t: torch.Tensor, n: int) -> torch.Tensor:
    """(3, 3) -> (1, 3, 3); (N, 3, 3) kept; anything else is a clear error."""
    t = torch.as_tensor(t)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[1:] != (3, 3) or t.shape[0] not in (1, n):
        raise ValueError(f"transform must have shape (3, 3) or ({n}, 3, 3), got {tuple(t.shape)}")
    return t


__all__ = ["InputSpec", "LayerSpec", "Resampling", "SynthesisInput", "SynthesisLayer", "SynthesisNetwork",
           "filtered_lrelu_fast", "filtered_lrelu_reference", "layer_resampling", "modulated_conv2d",
           "synthesis_layout"]
