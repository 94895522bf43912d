"""StyleGAN3 filter design (numpy only) against scipy, which NVIDIA's constructor uses.

scipy is not a project dependency: these tests skip where it is not installed.
"""
from __future__ import annotations

import numpy as np
import pytest

from bridge.stylegan.filters import (bessel_j1, design_lowpass_filter, kaiser_atten, kaiser_beta, lowpass_filter,
                                     radial_lowpass_filter)
from bridge.stylegan.sg3 import layer_resampling, synthesis_layout

signal = pytest.importorskip("scipy.signal")
special = pytest.importorskip("scipy.special")


def _designs():
    """Every (numtaps, cutoff, width, fs, radial) NVIDIA's full-size SG3-T/-R configs and the fixtures use."""
    seen = set()
    for res, kwargs in [(1024, {}), (512, {}), (256, {}), (32, {"channel_base": 128, "channel_max": 32}),
                        (1024, {"use_radial_filters": True, "conv_kernel": 1}),
                        (256, {"use_radial_filters": True, "conv_kernel": 1})]:
        radial_net = kwargs.pop("use_radial_filters", False)
        kwargs.pop("conv_kernel", None)
        _, specs = synthesis_layout(res, 3, **kwargs)
        for spec in specs:
            layer = layer_resampling(spec.is_torgb, spec.is_critically_sampled, spec.in_size, spec.out_size,
                                     spec.in_sampling_rate, spec.out_sampling_rate, use_radial_filters=radial_net)
            seen.add((layer.up_taps, spec.in_cutoff, spec.in_half_width * 2, layer.tmp_sampling_rate, False))
            seen.add((layer.down_taps, spec.out_cutoff, spec.out_half_width * 2, layer.tmp_sampling_rate,
                      layer.down_radial))
    return sorted(d for d in seen if d[0] > 1)


DESIGNS = _designs()


def test_the_design_list_covers_both_kinds():
    assert len(DESIGNS) > 20
    assert any(d[4] for d in DESIGNS) and not all(d[4] for d in DESIGNS)


def test_bessel_j1_matches_scipy_over_the_range_filters_use():
    x = np.concatenate([np.linspace(-120, 120, 24001), [0.0, 1e-9, 3.8317059702075123]])
    np.testing.assert_allclose(bessel_j1(x), special.j1(x), atol=1e-13, rtol=0)


@pytest.mark.parametrize("numtaps, width", [(12, 0.2), (24, 0.05), (6, 0.9), (48, 0.01)])
def test_kaiser_formulas_match_scipy(numtaps, width):
    atten = kaiser_atten(numtaps, width)
    assert atten == pytest.approx(signal.kaiser_atten(numtaps, width), rel=1e-14)
    assert kaiser_beta(atten) == pytest.approx(signal.kaiser_beta(atten), rel=1e-14)
    for a in (10.0, 21.0, 30.0, 50.0, 80.0):
        assert kaiser_beta(a) == pytest.approx(signal.kaiser_beta(a), rel=1e-14, abs=1e-15)


@pytest.mark.parametrize("numtaps, cutoff, width, fs, radial", DESIGNS)
def test_designs_match_nvidias_scipy_formulas(numtaps, cutoff, width, fs, radial):
    ours = design_lowpass_filter(numtaps, cutoff, width, fs, radial=radial)
    if not radial:
        expected = signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
    else:  # NVIDIA's radial design, written with scipy's j1 / kaiser helpers
        x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
        r = np.hypot(*np.meshgrid(x, x))
        expected = special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
        beta = signal.kaiser_beta(signal.kaiser_atten(numtaps, width / (fs / 2)))
        w = np.kaiser(numtaps, beta)
        expected = expected * np.outer(w, w)
        expected /= expected.sum()
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-12, rtol=0)


def test_single_tap_means_no_filter_and_bad_arguments_are_refused():
    assert lowpass_filter(1, 2.0, 1.0, 16) is None
    assert radial_lowpass_filter(1, 2.0, 1.0, 16) is None
    with pytest.raises(ValueError):
        lowpass_filter(0, 2.0, 1.0, 16)
    with pytest.raises(ValueError):
        lowpass_filter(12, 8.0, 1.0, 16)  # cutoff at Nyquist


def test_radial_filter_with_a_centre_tap_is_finite_and_normalised():
    """Odd tap counts put a sample at r = 0 (NVIDIA's formula divides by zero there; we use the limit)."""
    f = radial_lowpass_filter(13, 3.0, 2.0, 16)
    assert np.isfinite(f).all() and f.sum() == pytest.approx(1.0)
    assert np.allclose(f, f.T) and np.allclose(f, f[::-1, ::-1])
