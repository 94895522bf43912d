"""3x3 convolutions by Winograd's minimal filtering, F(4x4, 3x3), for the CPU fast paths.

A direct 3x3 convolution costs 9 multiply-adds per output pixel and channel pair; F(4x4, 3x3) computes each
4x4 output tile from a 6x6 input tile with 36, i.e. 2.25 per output (4x fewer), as 36 independent matrix
products [tiles x C_in] @ [C_in x C_out], one per position of the transformed tile (Lavin & Gray, "Fast
Algorithms for Convolutional Neural Networks", 2016). On a CPU the direct convolution of a wide StyleGAN layer
already runs near the FMA peak, so fewer multiplies is the only way left to make it much faster.

The transform matrices come from Cook-Toom interpolation at the points 0, 1, -1, 1/2, -2 (and infinity),
built exactly with rationals below. That point set keeps float32 rounding close to the direct convolution
(RMS error ~1.4x, max error ~1.5-3x on 512-channel layers), where the common 0, +-1, +-2 set is ~2-4x worse.

Layout: activations channels_last (N, H, W, C in memory), tiles processed in strips of tile rows so the
transformed strip (36 x tiles x C floats) stays in the CPU's cache. The modulation of StyleGAN's convolutions
is applied to the activations (input channels scaled before, output channels after), so the transformed
kernel is computed once per weight and cached by the caller.
"""
from __future__ import annotations

import functools
import threading
from fractions import Fraction
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

TILE = 4  # output tile (m); input tile is TILE + 2
POINTS = (Fraction(0), Fraction(1), Fraction(-1), Fraction(1, 2), Fraction(-2))
STRIP_TILES = 256  # tiles per strip of tile rows: enough rows for efficient matrix products


@functools.lru_cache(maxsize=None)
def _matrices(m: int = TILE, points: tuple = POINTS) -> tuple[tuple, tuple, tuple]:
    """(B^T, G, A^T) as nested tuples of Fractions for F(m, 3) at `points` (+ infinity).

    A^T[i, j] = p_j^i (the point at infinity contributes the leading coefficient: last column [0, .., 0, 1])
    and G[j, k] = p_j^k / prod_{l != j} (p_j - p_l) (Lagrange denominators; last row [0, 0, 1]). B^T is then
    the exact solution of sum_j A^T[i, j] G[j, k] B^T[j, l] = [l == i + k] for all i, k, l, i.e. of
    y = A^T [(G g) * (B^T d)] being the correlation y_i = sum_k g_k d_{i+k}; the solve fails loudly if the
    points do not determine it.
    """
    r = 3
    n = m + r - 1
    if len(points) != n - 1 or len(set(points)) != n - 1:
        raise ValueError(f"F({m}, {r}) needs {n - 1} distinct finite points, got {points}")
    p = [Fraction(v) for v in points]
    at = tuple(tuple(p[j] ** i for j in range(n - 1)) + (Fraction(int(i == m - 1)),) for i in range(m))
    g = []
    for j in range(n - 1):
        denominator = Fraction(1)
        for q in range(n - 1):
            if q != j:
                denominator *= p[j] - p[q]
        g.append(tuple(p[j] ** k / denominator for k in range(r)))
    g = tuple(g) + (tuple(Fraction(int(k == r - 1)) for k in range(r)),)
    equations, rhs = [], []
    for i in range(m):
        for k in range(r):
            for l in range(n):
                row = [Fraction(0)] * (n * n)
                for j in range(n):
                    row[j * n + l] = at[i][j] * g[j][k]
                equations.append(row)
                rhs.append(Fraction(int(l == i + k)))
    flat = _solve_exact(equations, rhs, n * n)
    bt = tuple(tuple(flat[j * n:(j + 1) * n]) for j in range(n))
    return bt, g, at


def _solve_exact(rows, rhs, unknowns):
    """The unique solution of the consistent system rows @ s = rhs, by Gauss-Jordan on Fractions."""
    a = [list(r) + [b] for r, b in zip(rows, rhs)]
    row = 0
    pivots = []
    for col in range(unknowns):
        pivot = next((i for i in range(row, len(a)) if a[i][col] != 0), None)
        if pivot is None:
            raise ArithmeticError("Winograd transform not determined by these points")
        a[row], a[pivot] = a[pivot], a[row]
        inv = 1 / a[row][col]
        a[row] = [v * inv for v in a[row]]
        for i in range(len(a)):
            if i != row and a[i][col] != 0:
                factor = a[i][col]
                a[i] = [v - factor * w for v, w in zip(a[i], a[row])]
        pivots.append(col)
        row += 1
    if any(a[i][unknowns] != 0 for i in range(row, len(a))):
        raise ArithmeticError("Winograd identity is inconsistent for these points")
    return [a[i][unknowns] for i in range(unknowns)]


# The matrices of F(TILE, 3) at POINTS as plain floats (all exactly representable: small dyadic rationals
# and thirds/fifteenths only in G, which is applied in float64): what the tensor code reads, so that
# torch.compile traces constants rather than Fraction arithmetic.
_BT, _G, _AT = (tuple(tuple(float(v) for v in row) for row in mat) for mat in _matrices())


def _tensor(rows, dtype=torch.float64, device=None) -> torch.Tensor:
    return torch.tensor([[float(v) for v in row] for row in rows], dtype=dtype, device=device)


# Output channels of the transformed kernel are padded with zero columns to a multiple of this (on layers of
# >= PAD_MIN_CHANNELS): MKL's matrix products run ~25% faster at 192 columns than at 181 (SG3's 181- and
# 362-channel layers), more than the padding's few percent of extra work.
PAD_CHANNELS = 16
PAD_MIN_CHANNELS = 128


class Kernel(NamedTuple):
    """A transformed 3x3 kernel: u [36, C_in, C_out padded] float32 and the true C_out."""

    u: torch.Tensor
    out_channels: int


def transform_weight(weight: torch.Tensor) -> Kernel:
    """[C_out, C_in, 3, 3] (torch's correlation kernel) -> Kernel with u [36, C_in, C_out (padded)] float32 =
    G w G^T per pair, computed in float64 (once per weight: the caller caches it)."""
    if weight.ndim != 4 or tuple(weight.shape[2:]) != (3, 3):
        raise ValueError(f"expected a [C_out, C_in, 3, 3] kernel, got {tuple(weight.shape)}")
    o, c = weight.shape[:2]
    pad = (-o) % PAD_CHANNELS if o >= PAD_MIN_CHANNELS else 0
    g = _tensor(_G, device=weight.device)
    u = torch.einsum("ak,oikl,bl->abio", g, weight.to(torch.float64), g).reshape(-1, c, o)
    return Kernel(F.pad(u, (0, pad)).to(torch.float32).contiguous(), o)


_WORKSPACE = threading.local()


def _scratch(role: str, shape: tuple, like: torch.Tensor) -> torch.Tensor:
    """A per-thread buffer for `role`, grown as needed and reused across calls (and layers): a fresh
    allocation of tens of MB costs ~1.7 ms per MB in page faults on the CPU, as much as the work on it.
    Plain allocation while torch.compile traces (Inductor plans its own buffers) and where autograd records
    (it may save a view of the buffer for the backward pass)."""
    if torch.compiler.is_compiling() or torch.is_grad_enabled():
        return like.new_empty(shape)
    numel = 1
    for size in shape:
        numel *= size
    pool = getattr(_WORKSPACE, "buffers", None)
    if pool is None:
        pool = _WORKSPACE.buffers = {}
    key = (role, like.device, like.dtype, torch.is_inference_mode_enabled())  # inference tensors: only there
    buffer = pool.get(key)
    if buffer is None or buffer.numel() < numel:
        pool[key] = buffer = empty_huge((numel,), like)
    return buffer[:numel].view(shape)


def release_workspace() -> None:
    """Free this thread's reusable buffers (they are otherwise kept for the next frame)."""
    _WORKSPACE.buffers = {}


def _into(dest: torch.Tensor, op, *args) -> None:
    """dest[...] = op(*args), written in place (out=) where possible: torch.compile cannot trace out= into a
    strided view, so while it traces the result is computed and copied instead (Inductor fuses the two)."""
    if torch.compiler.is_compiling() or torch.is_grad_enabled():  # (autograd refuses out= too)
        dest.copy_(op(*args))
    else:
        op(*args, out=dest)


def conv3x3(x: torch.Tensor, kernel: Kernel, padding: int, in_scale: torch.Tensor | None = None,
            out_scale: torch.Tensor | None = None, bias: torch.Tensor | None = None,
            scratch_output: bool = False, out: torch.Tensor | None = None,
            epilogue: Callable[[torch.Tensor, int, int], None] | None = None) -> torch.Tensor:
    """F.conv2d(x * in_scale, w, padding=padding) * out_scale + bias with kernel = transform_weight(w), on CPU.

    x: (N, C_in, H, W) float32, any memory format (read as channels_last); in_scale / out_scale: optional
    per-sample channel scales (N, C_in) / (N, C_out); bias (C_out,). Returns (N, C_out, H + 2p - 2,
    W + 2p - 2), channels_last (a view that may skip the unused end of the last row of tiles).
    scratch_output: the result lives in this thread's reusable buffer, overwritten by the next call: only
    for a caller that is done with it before then (a synthesis layer consuming its own convolution).
    out: the caller's own buffer for the result instead, contiguous (N, H_tiles, W_tiles, C_out) with the
    output size rounded up to whole 4x4 tiles. epilogue(rows, sample, first_row): called on each strip's
    finished output rows (a [rows, W_out, C_out] view) while they are still in the cache, to work on in place
    (StyleGAN2's noise, activation and clamp).
    """
    m = TILE
    t = m + 2
    n, c, h, w = x.shape
    u, o = kernel
    op = u.shape[2]  # the products' output columns (o, padded)
    if u.shape[:2] != (t * t, c) or op < o:
        raise ValueError(f"transformed kernel {tuple(u.shape)} does not fit {c} input channels")
    ho, wo = h + 2 * padding - 2, w + 2 * padding - 2
    th, tw = -(-ho // m), -(-wo // m)
    hp, wp = th * m + 2, tw * m + 2
    bt = _tensor(_BT, torch.float32, x.device)
    at = _tensor(_AT, torch.float32, x.device)

    # zero-padded NHWC copy of the (style-scaled) input, sized to whole tiles: only the border is zeroed
    xp = _scratch("input", (n, hp, wp, c), x)
    lo_h, hi_h, lo_w, hi_w = padding, hp - h - padding, padding, wp - w - padding
    xp[:, :lo_h].zero_()
    xp[:, hp - hi_h:].zero_()
    xp[:, lo_h:hp - hi_h, :lo_w].zero_()
    xp[:, lo_h:hp - hi_h, wp - hi_w:].zero_()
    interior = xp[:, lo_h:hp - hi_h, lo_w:wp - hi_w]
    xh = x.permute(0, 2, 3, 1)
    if in_scale is not None:
        _into(interior, torch.mul, xh, in_scale.to(x.dtype).reshape(n, 1, 1, c))
    else:
        interior.copy_(xh)

    if out is not None:
        if tuple(out.shape) != (n, th * m, tw * m, o) or not out.is_contiguous():
            raise ValueError(f"out must be a contiguous {(n, th * m, tw * m, o)} tensor, got {tuple(out.shape)}")
        y = out
    elif scratch_output:
        y = _scratch("output", (n, th * m, tw * m, o), x)
    else:
        y = empty_huge((n, th * m, tw * m, o), x)
    rows = max(1, min(th, -(-STRIP_TILES // tw)))
    s0, s1 = xp.stride(0), xp.stride(1)
    v = _scratch("tiles", (t, t, rows, tw, c), x)
    cols = _scratch("columns", (t, t, rows, tw, c), x)
    rowt = _scratch("rows", (rows, t, wp * c), x)
    scale = None if out_scale is None else out_scale.to(x.dtype).reshape(n, 1, 1, 1, o)
    shift = None if bias is None else bias.to(x.dtype).reshape(1, 1, 1, o)
    for b in range(n):
        for r0 in range(0, th, rows):
            r = min(rows, th - r0)
            # along H: windows of t rows every m rows -> [r, t (a), wp, c]
            win = xp.as_strided((r, t, wp * c), (m * s1, s1, 1), b * s0 + r0 * m * s1)  # xp: fresh, offset 0
            t1 = rowt[:r]
            _into(t1, torch.bmm, bt.expand(r, t, t), win)
            # along W: gather the tiles' columns as [a, k, r, tw, c] (one copy), then one product per row a
            # of the tile writes the [t (a), t (b), tiles, c] layout of the products (~2x faster than a
            # chain of strided multiply-adds per coefficient)
            vv, gathered = v[:, :, :r], cols[:, :, :r]
            gathered.copy_(t1.as_strided((t, t, r, tw, c), (wp * c, c, t * wp * c, m * c, 1)))
            _into(vv.view(t, t, r * tw * c), torch.bmm, bt.expand(t, t, t), gathered.view(t, t, r * tw * c))
            prod = torch.bmm(vv.reshape(t * t, r * tw, c), u)  # [t * t, r * tw, op]
            z = torch.matmul(at, prod.view(t, t * r * tw * op)).view(m, t, r * tw * op)
            tiles = torch.matmul(at, z).view(m, m, r, tw, op)[..., :o].permute(2, 0, 3, 1, 4)  # [r, i, tw, j, o]
            dest = y[b, r0 * m:(r0 + r) * m].view(r, m, tw, m, o)
            if scale is None and shift is None:
                dest.copy_(tiles)
            elif shift is None:
                _into(dest, torch.mul, tiles, scale[b])
            elif scale is None:
                _into(dest, torch.add, tiles, shift)
            else:
                _into(dest, torch.addcmul, shift, tiles, scale[b])
            if epilogue is not None and r0 * m < ho:
                epilogue(y[b, r0 * m:min(ho, (r0 + r) * m), :wo], b, r0 * m)
    return y[:, :ho, :wo].permute(0, 3, 1, 2)




# --------------------------------------------------------------------------------- large fresh CPU tensors

_HUGE = 1 << 21  # a transparent huge page on x86-64 / arm64 Linux
_MADV_HUGEPAGE = 14


@functools.lru_cache(maxsize=None)
def _madvise():
    """libc's madvise where the platform has transparent huge pages (Linux), else None."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def empty_huge(shape, like: torch.Tensor, memory_format=torch.contiguous_format) -> torch.Tensor:
    """torch.empty for a large CPU tensor whose pages the kernel may back with transparent huge pages.

    The first write to each fresh 4 KB page costs a page fault (~7 us on the machines measured: 1.7 ms per
    MB, more than the work on it); with MADV_HUGEPAGE the kernel faults in 2 MB at a time (~4x faster first
    touch). A hint only: where it is refused or unavailable the tensor is the same, just slower to touch.
    """
    out = torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=memory_format)
    nbytes = out.numel() * out.element_size()
    if out.device.type != "cpu" or nbytes < 4 * _HUGE or torch.compiler.is_compiling():
        return out
    fn = _madvise()
    if fn is not None:
        start = (out.data_ptr() + _HUGE - 1) & ~(_HUGE - 1)
        end = (out.data_ptr() + nbytes) & ~(_HUGE - 1)
        if end > start:
            fn(start, end - start, _MADV_HUGEPAGE)
    return out


__all__ = ["POINTS", "TILE", "Kernel", "conv3x3", "empty_huge", "release_workspace", "transform_weight"]
