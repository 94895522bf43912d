"""Reference tensor ops for StyleGAN2/3 in plain PyTorch (no custom CUDA kernels, no NVIDIA code).

These reproduce the *semantics* of NVIDIA's torch_utils ops so that weights stored in their pickles give the
same numbers here. Written from the published behaviour; the conventions that matter:

- Equalised learning rate: layers store raw values; the effective weight is stored * weight_gain, with
  weight_gain = lr_multiplier / sqrt(fan_in), and the effective bias is stored * lr_multiplier.
- bias_act(x, b, act): add b along `dim`, apply the activation, multiply by its gain (linear 1, relu sqrt 2,
  lrelu alpha 0.2 gain sqrt 2), then clamp to [-clamp, clamp] when clamp is given (None or < 0 = no clamp).
- upfirdn2d(x, f, up, down, padding): upsample by inserting up-1 zeros after every pixel, pad each side by
  padding [x0, x1, y0, y1] (negative = crop), run the FIR filter f as a true convolution (f flipped, unless
  flip_filter), then keep every down-th pixel. f is 2-D, or 1-D meaning separable (applied along x, then y).
  gain scales the filter: a 2-D filter by gain, a 1-D one by sqrt(gain) per pass.
- upsample2d / downsample2d / filter2d choose the padding that keeps the output aligned and sized exactly
  res*up, res/down, res; upsample2d multiplies the gain by up*up so the zero-inserted image keeps its level.
- conv2d_resample(x, w, f, up, down, padding, groups, flip_weight): a convolution with FIR up/downsampling
  around it, equal to upfirdn2d(up) -> conv -> upfirdn2d(down) with NVIDIA's padding arithmetic.
  flip_weight=True means ordinary torch cross-correlation; False flips the kernel.
- modulated_conv2d: StyleGAN2's weight modulation (w * style per input channel), demodulation
  (1 / sqrt(sum w'^2 + 1e-8) per output channel), run per sample as one grouped convolution (fused) or by
  scaling activations before and after a shared convolution (not fused); equal up to float rounding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------------------------- activations

# name -> (function(x, alpha), default alpha, default gain). NVIDIA's defaults; gains keep activations' scale.
_ACTIVATIONS = {
    "linear": (lambda x, alpha: x, 0.0, 1.0),
    "relu": (lambda x, alpha: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": (lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2)),
    "tanh": (lambda x, alpha: torch.tanh(x), 0.0, 1.0),
    "sigmoid": (lambda x, alpha: torch.sigmoid(x), 0.0, 1.0),
    "elu": (lambda x, alpha: F.elu(x), 0.0, 1.0),
    "selu": (lambda x, alpha: F.selu(x), 0.0, 1.0),
    "softplus": (lambda x, alpha: F.softplus(x), 0.0, 1.0),
    "swish": (lambda x, alpha: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def activation_gain(act: str) -> float:
    """The default gain NVIDIA applies after activation `act` (layers store it as act_gain)."""
    return _activation_spec(act)[2]


def _activation_spec(act: str):
    try:
        return _ACTIVATIONS[act]
    except KeyError:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(_ACTIVATIONS)}") from None


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, dim: int = 1, act: str = "linear",
             alpha: float | None = None, gain: float | None = None, clamp: float | None = None,
             inplace: bool = False) -> torch.Tensor:
    """Add bias b along `dim`, activate, scale by gain, clamp. See the module docstring for the defaults.

    inplace=True lets it overwrite x (same result, ~12% less time for a synthesis network on CPU, where
    these passes over memory add up); only for a tensor the caller owns and that autograd does not track.
    """
    func, def_alpha, def_gain = _activation_spec(act)
    alpha = float(def_alpha if alpha is None else alpha)
    gain = float(def_gain if gain is None else gain)
    inplace = inplace and not x.requires_grad
    if b is not None:
        b = b.to(x.dtype).reshape([-1 if i == dim else 1 for i in range(x.ndim)])
        x = x.add_(b) if inplace else x + b
    if inplace and act == "lrelu":
        x = F.leaky_relu_(x, alpha)
    else:
        x = func(x, alpha)
    if gain != 1:
        x = x.mul_(gain) if inplace else x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp_(-float(clamp), float(clamp)) if inplace else x.clamp(-float(clamp), float(clamp))
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale x to unit root-mean-square along `dim` (StyleGAN's pixel norm for z and embeddings)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# ------------------------------------------------------------------------------------------ fully connected

class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate; `weight` [out, in] and `bias` [out] hold the STORED values.

    Random init follows NVIDIA: weight = randn * weight_init / lr_multiplier, bias = bias_init / lr_multiplier,
    so the effective values (times the gains below) are randn/sqrt(in) and bias_init whatever lr_multiplier is.
    bias_init may be a scalar or a per-output sequence (SG3's input affine uses [1, 0, 0, 0]).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init=0, weight_init: float = 1.0, **ignored):
        super().__init__()
        _activation_spec(activation)  # fail early on a typo
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([self.out_features, self.in_features]) * (weight_init / lr_multiplier))
        if bias:
            init = torch.broadcast_to(torch.as_tensor(bias_init, dtype=torch.float32), [self.out_features])
            self.bias = nn.Parameter(init.clone() / lr_multiplier)
        else:
            self.bias = None
        self.weight_gain = lr_multiplier / math.sqrt(self.in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The weight gain scales the product (alpha), not a fresh copy of the weight: a 512x512 weight scaled
        # per call is a 1 MB write per layer beside a product of a few rows (measured: the demo's mapping of 3
        # latents 5.0 -> 4.2 ms on 2 threads). Same value up to float rounding.
        w = self.weight.to(x.dtype)
        b = self.bias
        if b is None:
            return bias_act(x.matmul(w.t()) * self.weight_gain, None, act=self.activation)
        b = b.to(x.dtype)
        if self.bias_gain != 1:
            b = b * self.bias_gain
        out = torch.addmm(b.unsqueeze(0), x, w.t(), alpha=self.weight_gain)
        return out if self.activation == "linear" else bias_act(out, None, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


# ----------------------------------------------------------------------------------------------- FIR filters

def _pair(value, what: str) -> tuple[int, int]:
    """int or (x, y) -> (x, y) integers >= 1 (up/down factors)."""
    if isinstance(value, (int,)) or (torch.is_tensor(value) and value.ndim == 0):
        value = (int(value), int(value))
    x, y = (int(v) for v in value)
    if x < 1 or y < 1:
        raise ValueError(f"{what} factors must be >= 1, got {value}")
    return x, y


def parse_padding(padding) -> list[int]:
    """int | [px, py] | [x0, x1, y0, y1] -> [x0, x1, y0, y1] (NVIDIA's order: x first)."""
    if isinstance(padding, int):
        return [padding] * 4
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return [px, px, py, py]
    if len(padding) != 4:
        raise ValueError(f"padding must be an int, [px, py] or [x0, x1, y0, y1]; got {padding}")
    return padding


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a filter; 1-D filters are square; None counts as 1x1."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"FIR filter must be 1-D (separable) or 2-D, got shape {tuple(f.shape)}")
    return int(f.shape[-1]), int(f.shape[0])


def setup_filter(f, normalize: bool = True, flip_filter: bool = False, gain: float = 1,
                 separable: bool | None = None, device=None) -> torch.Tensor:
    """Build a FIR filter tensor the way NVIDIA's constructors design it (e.g. [1, 3, 3, 1] -> 4x4 outer product).

    A 1-D list stays 1-D (separable) only when it has >= 8 taps or separable=True; otherwise it becomes the
    2-D outer product. normalize divides by the sum. Used for random init only: loaded networks keep the
    pickled filter buffers, which need not equal the design.
    """
    f = torch.as_tensor(1.0 if f is None else f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"filter must be a non-empty 1-D or 2-D array, got shape {tuple(f.shape)}")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device) if device is not None else f


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up=1, down=1, padding=0, flip_filter: bool = False,
              gain: float = 1) -> torch.Tensor:
    """Upsample (zero insertion), pad/crop, FIR-filter, downsample an NCHW tensor. See module docstring."""
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects an NCHW tensor, got shape {tuple(x.shape)}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    upx, upy = _pair(up, "up")
    downx, downy = _pair(down, "down")
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    n, c, h, w = x.shape

    if upx > 1 or upy > 1:  # insert zeros after every pixel
        x = x.reshape([n, c, h, 1, w, 1])
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape([n, c, h * upy, w * upx])

    x = F.pad(x, [max(padx0, 0), max(padx1, 0), max(pady0, 0), max(pady1, 0)])
    x = x[:, :, max(-pady0, 0): x.shape[2] - max(-pady1, 0), max(-padx0, 0): x.shape[3] - max(-padx1, 0)]

    f = f.to(device=x.device, dtype=x.dtype) * (gain ** (f.ndim / 2))
    if not flip_filter:  # torch convolutions correlate; a true convolution flips the kernel
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat([c, 1, 1, 1]), groups=c)
    else:
        x = F.conv2d(x, f[None, None, None].repeat([c, 1, 1, 1]), groups=c)          # along x
        x = F.conv2d(x, f[None, None, :, None].repeat([c, 1, 1, 1]), groups=c)       # along y

    if downx > 1 or downy > 1:
        x = x[:, :, ::downy, ::downx]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor | None, up=2, padding=0, flip_filter: bool = False,
               gain: float = 1) -> torch.Tensor:
    """Upsample by `up` with FIR filter f; output is exactly res*up (plus padding), level preserved."""
    upx, upy = _pair(up, "up")
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [padx0 + (fw + upx - 1) // 2, padx1 + (fw - upx) // 2,
         pady0 + (fh + upy - 1) // 2, pady1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x: torch.Tensor, f: torch.Tensor | None, down=2, padding=0, flip_filter: bool = False,
                 gain: float = 1) -> torch.Tensor:
    """Filter with f and keep every down-th pixel; output is exactly res/down (plus padding)."""
    downx, downy = _pair(down, "down")
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [padx0 + (fw - downx + 1) // 2, padx1 + (fw - downx) // 2,
         pady0 + (fh - downy + 1) // 2, pady1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain)


def filter2d(x: torch.Tensor, f: torch.Tensor | None, padding=0, flip_filter: bool = False,
             gain: float = 1) -> torch.Tensor:
    """Filter with f, keeping the resolution (plus padding)."""
    padx0, padx1, pady0, pady1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [padx0 + fw // 2, padx1 + (fw - 1) // 2, pady0 + fh // 2, pady1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain)


# ------------------------------------------------------------------------------------------- convolutions

def _conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding=0, groups: int = 1,
          transpose: bool = False, flip_weight: bool = True) -> torch.Tensor:
    """torch conv2d / conv_transpose2d; flip_weight=False flips the kernel (true convolution)."""
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    op = F.conv_transpose2d if transpose else F.conv2d
    return op(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1, down: int = 1,
                    padding=0, groups: int = 1, flip_weight: bool = True, flip_filter: bool = False) -> torch.Tensor:
    """Convolution with optional FIR up/downsampling, equal to NVIDIA's conv2d_resample.

    Upsampling runs as a stride-`up` transposed convolution followed by the FIR filter (what NVIDIA does, so
    rounding matches too); other cases pad/filter then convolve.
    """
    up, down = int(up), int(down)
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be >= 1, got up={up} down={down}")
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    if kw == 1 and kh == 1 and down > 1 and up == 1:  # 1x1: downsample first (cheaper)
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:  # 1x1: convolve first, then upsample
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter)
    if down > 1 and up == 1:  # filter, then strided conv
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:  # transposed strided conv, then filter
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2,
                      flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:  # plain conv with symmetric padding
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1], flip_filter=flip_filter)  # general fallback
    return _conv(x, w, groups=groups, flip_weight=flip_weight)


def prenormalize_weight(weight: torch.Tensor) -> torch.Tensor:
    """NVIDIA's fp16 guard for demodulated convs: each output channel scaled to max |w| = 1/sqrt(fan_in)."""
    fan_in = weight[0].numel()
    return weight * (1 / math.sqrt(fan_in) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None = None,
                     up: int = 1, down: int = 1, padding=0, resample_filter: torch.Tensor | None = None,
                     demodulate: bool = True, flip_weight: bool = True, fused_modconv: bool = True,
                     prenormalize: bool | None = None) -> torch.Tensor:
    """StyleGAN2 modulated convolution.

    x [N, I, H, W], weight [O, I, kh, kw] (effective values), styles [N, I]. Each sample's kernel is weight
    scaled per input channel by its style; with demodulate, each output channel is then rescaled to unit
    norm. noise (broadcastable to the output) is added after demodulation. fused_modconv runs all samples
    as one grouped conv; otherwise the styles scale the activations around one shared conv (fp16-friendly).
    fp16 guard (NVIDIA's): when demodulating in fp16, weight and styles are first rescaled so fp16 cannot
    overflow; demodulation cancels the scale. prenormalize (default None = "when x is fp16") controls the
    weight half only: pass False with a weight already from prenormalize_weight() to hoist that work out of
    a per-frame loop (the styles, which change every frame, are still rescaled in fp16).
    """
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if styles.shape != (n, in_channels):
        raise ValueError(f"styles must have shape ({n}, {in_channels}), got {tuple(styles.shape)}")
    if prenormalize is None:
        prenormalize = x.dtype == torch.float16
    if demodulate and prenormalize:  # scale so fp16 cannot overflow; demodulation cancels it
        weight = prenormalize_weight(weight)
    if demodulate and (prenormalize or x.dtype == torch.float16):
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)             # [N, O, I, kh, kw]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()              # [N, O]
    conv = dict(f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight)

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), **conv)
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        if noise is not None:
            x = _add_fresh(x, noise.to(x.dtype))
        return x

    if demodulate:
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)
    w = w.reshape(-1, in_channels, kh, kw).to(x.dtype)
    if n == 1:  # one sample needs no grouping; the reshape below would lose channels_last (batch stride)
        x = conv2d_resample(x, w, **conv)
    else:
        x = conv2d_resample(x.reshape(1, -1, *x.shape[2:]), w, groups=n, **conv)
        x = x.reshape(n, -1, *x.shape[2:])
    if noise is not None:
        x = _add_fresh(x, noise.to(x.dtype))
    return x


def _add_fresh(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x + y, in place when x (a tensor just computed here) is outside autograd and y broadcasts into it."""
    if x.requires_grad or torch.broadcast_shapes(x.shape, y.shape) != x.shape:
        return x + y
    return x.add_(y)


__all__ = [
    "FullyConnectedLayer", "activation_gain", "bias_act", "normalize_2nd_moment", "setup_filter", "parse_padding",
    "filter_size", "upfirdn2d", "upsample2d", "downsample2d", "filter2d", "conv2d_resample", "modulated_conv2d",
    "prenormalize_weight",
]
