"""Independent re-implementations of two foreign StyleGAN2 forward passes, for tests ONLY.

Written from each codebase's published maths and tensor layout, directly on the file's own tensors and
names, sharing nothing with ``bridge.stylegan`` (not its ops, not its converters): if a converter mixed up a
transpose, a kernel flip, the +1 of the modulation bias or a noise index, these disagree with it.

- :func:`tf_forward`: NVIDIA's TensorFlow StyleGAN2 (``networks_stylegan2.py``: G_mapping, G_synthesis_stylegan2,
  ``modulated_conv2d_layer``, ``upsample_conv_2d`` = flip the kernel, swap in/out, ``conv2d_transpose``
  stride 2, then an FIR pass; ``upsample_2d``; weights [k, k, in, out] scaled at run time by 1/sqrt(fan_in);
  styles = dense(w) + mod_bias + 1).
- :func:`rosinality_forward`: rosinality's stylegan2-pytorch ``model.py`` (PixelNorm, EqualLinear with
  lr_mul, ModulatedConv2d with its 1/sqrt(fan_in) scale before demodulation and ``conv_transpose2d`` +
  Blur(pad 1, 1) for up-sampling, NoiseInjection, FusedLeakyReLU, ToRGB with Upsample(pad 2, 1) of the skip).

Both run in float64 so the comparison measures layout mistakes, not rounding. No code of either project
is copied; the licences of both forbid it, and these functions use only plain torch calls.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2)


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def upfirdn(x: torch.Tensor, k2d: torch.Tensor, up: int, pad0: int, pad1: int) -> torch.Tensor:
    """Zero-insert by ``up``, pad (pad0 before, pad1 after) on both axes, then a true 2-D convolution."""
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros([n, c, h * up, w * up])
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [pad0, pad1, pad0, pad1])
    kernel = k2d.flip([0, 1])[None, None].repeat(c, 1, 1, 1).to(x.dtype)
    return F.conv2d(x, kernel, groups=c)


def _kernel2d(k1d, gain: float = 1.0) -> torch.Tensor:
    k = _t(k1d)
    k = torch.outer(k, k) if k.ndim == 1 else k
    return k / k.sum() * gain


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * SQRT2


# ------------------------------------------------------------------------------------------ TensorFlow
def _tf_modconv(x, style, v, scope, k1d, up=False, demodulate=True):
    """modulated_conv2d_layer: per-sample [k, k, I, O] kernels, styles from mod_weight/mod_bias (+1)."""
    w = _t(v[f"{scope}/weight"])                                     # [k, k, I, O]
    kk, _, cin, cout = w.shape
    w = w / math.sqrt(kk * kk * cin)                                 # run-time He scale (lrmul 1)
    mw = _t(v[f"{scope}/mod_weight"])                                # [w_dim, I]
    s = style @ (mw / math.sqrt(mw.shape[0])) + _t(v[f"{scope}/mod_bias"]) + 1
    ww = w[None] * s[:, None, None, :, None]                         # [B, k, k, I, O]
    if demodulate:
        ww = ww * torch.rsqrt(ww.square().sum(dim=[1, 2, 3]) + 1e-8)[:, None, None, None, :]
    outs = []
    for b in range(x.shape[0]):
        wb = ww[b]
        if up:
            # TF: flip the kernel in space, swap in/out, conv2d_transpose stride 2 'VALID', then FIR.
            ft = wb.flip([0, 1]).permute(0, 1, 3, 2)                 # [k, k, O, I] (transpose-conv filter)
            y = F.conv_transpose2d(x[b:b + 1], ft.permute(3, 2, 0, 1), stride=2)
            p = (len(k1d) - 2) - (kk - 1)
            y = upfirdn(y, _kernel2d(k1d, 4.0), 1, (p + 1) // 2 + 1, p // 2 + 1)
        else:
            y = F.conv2d(x[b:b + 1], wb.permute(3, 2, 0, 1), padding=kk // 2)
        outs.append(y)
    return torch.cat(outs)


def _tf_layer(x, style, v, scope, noise, k1d, up=False):
    x = _tf_modconv(x, style, v, scope, k1d, up=up)
    if noise is not None:
        x = x + _t(noise)[0, 0] * _t(v[f"{scope}/noise_strength"])
    return lrelu(x + _t(v[f"{scope}/bias"])[None, :, None, None])


def _tf_torgb(x, style, v, scope, k1d):
    return _tf_modconv(x, style, v, scope, k1d, demodulate=False) + _t(v[f"{scope}/bias"])[None, :, None, None]


def tf_forward(variables: dict, kwargs: dict, z: np.ndarray, psi: float = 1.0, c: np.ndarray | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(dlatents, image) of Gs from its flattened variables (``synthesis/...``, ``mapping/...``,
    ``dlatent_avg``) and static kwargs. Supports skip and resnet, LabelEmbed conditioning."""
    v = variables
    lrmul = float(kwargs.get("mapping_lrmul", 0.01))
    k1d = kwargs.get("resample_kernel", [1, 3, 3, 1])
    arch = kwargs.get("architecture", "skip")
    x = pixel_norm(_t(z))
    if "mapping/LabelEmbed/weight" in v:                             # 2-ADA TF: embed, normalise, concat
        we = _t(v["mapping/LabelEmbed/weight"])
        y = _t(c) @ (we / math.sqrt(we.shape[0])) + _t(v["mapping/LabelEmbed/bias"])
        x = torch.cat([x, pixel_norm(y)], dim=1)
    i = 0
    while f"mapping/Dense{i}/weight" in v:
        w = _t(v[f"mapping/Dense{i}/weight"])
        x = lrelu(x @ (w * lrmul / math.sqrt(w.shape[0])) + _t(v[f"mapping/Dense{i}/bias"]) * lrmul)
        i += 1
    log2 = int(math.log2(int(kwargs["resolution"])))
    num_ws = 2 * log2 - 2
    avg = _t(v["dlatent_avg"])
    dl = (avg + psi * (x - avg))[:, None].repeat(1, num_ws, 1)
    s = "synthesis"
    h = _t(v[f"{s}/4x4/Const/const"]).repeat(x.shape[0], 1, 1, 1)
    h = _tf_layer(h, dl[:, 0], v, f"{s}/4x4/Conv", v.get(f"{s}/noise0"), k1d)
    img = _tf_torgb(h, dl[:, 1], v, f"{s}/4x4/ToRGB", k1d) if arch == "skip" else None
    for r in range(3, log2 + 1):
        scope = f"{s}/{2 ** r}x{2 ** r}"
        t = h
        h = _tf_layer(h, dl[:, 2 * r - 5], v, f"{scope}/Conv0_up", v.get(f"{s}/noise{2 * r - 5}"), k1d, up=True)
        h = _tf_layer(h, dl[:, 2 * r - 4], v, f"{scope}/Conv1", v.get(f"{s}/noise{2 * r - 4}"), k1d)
        if arch == "resnet":
            w = _t(v[f"{scope}/Skip/weight"])                        # conv2d_layer, kernel 1, up, no bias
            w = w / math.sqrt(w.shape[0] * w.shape[1] * w.shape[2])
            ft = w.flip([0, 1]).permute(0, 1, 3, 2)
            t = F.conv_transpose2d(t, ft.permute(3, 2, 0, 1), stride=2)
            p = (len(k1d) - 2) - (w.shape[0] - 1)
            t = upfirdn(t, _kernel2d(k1d, 4.0), 1, (p + 1) // 2 + 1, p // 2 + 1)
            h = (h + t) / SQRT2
        if arch == "skip":
            p = len(k1d) - 2
            img = upfirdn(img, _kernel2d(k1d, 4.0), 2, (p + 1) // 2 + 1, p // 2)
            img = img + _tf_torgb(h, dl[:, 2 * r - 3], v, f"{scope}/ToRGB", k1d)
        elif r == log2:
            img = _tf_torgb(h, dl[:, 2 * r - 3], v, f"{scope}/ToRGB", k1d)
    return dl, img


# ------------------------------------------------------------------------------------------ rosinality
def _equal_linear(x, sd, name, lr_mul=1.0, act=False):
    w, b = _t(sd[f"{name}.weight"]), _t(sd[f"{name}.bias"])
    out = x @ (w * (lr_mul / math.sqrt(w.shape[1]))).T
    return lrelu(out + b * lr_mul) if act else out + b * lr_mul


def _ros_modconv(x, style, sd, name, demodulate=True, upsample=False):
    weight = _t(sd[f"{name}.weight"])                                # [1, O, I, k, k]
    _, cout, cin, k, _ = weight.shape
    s = _equal_linear(style, sd, f"{name}.modulation")               # bias already holds the +1
    wb = weight * (1 / math.sqrt(cin * k * k)) * s[:, None, :, None, None]
    if demodulate:
        wb = wb * torch.rsqrt(wb.square().sum(dim=[2, 3, 4]) + 1e-8)[:, :, None, None, None]
    outs = []
    for b in range(x.shape[0]):
        if upsample:
            y = F.conv_transpose2d(x[b:b + 1], wb[b].transpose(0, 1), stride=2)
            kernel = _t(sd[f"{name}.blur.kernel"])                  # make_kernel * factor**2
            p = (kernel.shape[0] - 2) - (k - 1)
            y = upfirdn(y, kernel, 1, (p + 1) // 2 + 1, p // 2 + 1)
        else:
            y = F.conv2d(x[b:b + 1], wb[b], padding=k // 2)
        outs.append(y)
    return torch.cat(outs)


def _ros_styled_conv(x, style, sd, name, noise, upsample=False):
    x = _ros_modconv(x, style, sd, f"{name}.conv", upsample=upsample)
    x = x + _t(sd[f"{name}.noise.weight"]) * _t(noise)
    return lrelu(x + _t(sd[f"{name}.activate.bias"])[None, :, None, None])


def _ros_to_rgb(x, style, sd, name, skip):
    out = _ros_modconv(x, style, sd, f"{name}.conv", demodulate=False) + _t(sd[f"{name}.bias"])
    if skip is not None:
        kernel = _t(sd[f"{name}.upsample.kernel"])
        p = kernel.shape[0] - 2
        out = out + upfirdn(skip, kernel, 2, (p + 1) // 2 + 1, p // 2)
    return out


def rosinality_style(g_ema: dict, z: np.ndarray, lr_mlp: float = 0.01) -> torch.Tensor:
    """Their ``style`` network: PixelNorm, then n_mlp EqualLinear layers with fused lrelu."""
    x = pixel_norm(_t(z))
    i = 1
    while f"style.{i}.weight" in g_ema:
        x = _equal_linear(x, g_ema, f"style.{i}", lr_mul=lr_mlp, act=True)
        i += 1
    return x


def rosinality_mean_latent(g_ema: dict, z: np.ndarray) -> torch.Tensor:
    """Their ``mean_latent``: the average style of the given random latents."""
    return rosinality_style(g_ema, z).mean(dim=0)


def rosinality_forward(g_ema: dict, z: np.ndarray, truncation: float = 1.0, mean_latent=None,
                       lr_mlp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """(latents, image) of rosinality's Generator with randomize_noise=False, one style (no mixing)."""
    sd = g_ema
    x = rosinality_style(sd, z, lr_mlp)
    if truncation < 1:
        x = _t(mean_latent) + truncation * (x - _t(mean_latent))
    n_rgb = len({k.split(".")[1] for k in sd if k.startswith("to_rgbs.")})
    n_latent = 2 * (n_rgb + 2) - 2
    latent = x[:, None].repeat(1, n_latent, 1)
    out = _t(sd["input.input"]).repeat(x.shape[0], 1, 1, 1)
    out = _ros_styled_conv(out, latent[:, 0], sd, "conv1", sd["noises.noise_0"])
    skip = _ros_to_rgb(out, latent[:, 1], sd, "to_rgb1", None)
    j = 1
    for k in range(n_rgb):
        out = _ros_styled_conv(out, latent[:, j], sd, f"convs.{2 * k}", sd[f"noises.noise_{2 * k + 1}"], True)
        out = _ros_styled_conv(out, latent[:, j + 1], sd, f"convs.{2 * k + 1}", sd[f"noises.noise_{2 * k + 2}"])
        skip = _ros_to_rgb(out, latent[:, j + 2], sd, f"to_rgbs.{k}", skip)
        j += 2
    return latent, skip
