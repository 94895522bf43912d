"""Latent directions: GANSpace PCA, SeFa, user files, the on-disk cache, the live slots and the CLI."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from bridge.directions import DirectionsError, load_direction_file, pca_directions, sample_w, sefa_directions
from bridge.directions.live import DIRECTION_SLOTS, DirectionSlots
from bridge.directions.source import cached_pca, mapping_hash, parse_spec, resolve
from conftest import vrbridge_cmd
from levers_cases import PICKLES, fixture, wide


@pytest.fixture(scope="module")
def wide_sg2():
    return wide("stylegan2")


@pytest.mark.parametrize("name", ["sg2", "sg3t"])
def test_pca_on_fixtures_is_orthonormal_and_sorted(name):
    g = fixture(name)
    samples = sample_w(g, 3000, seed=5, batch=700)
    d = pca_directions(samples)
    gram = d.vectors.astype(np.float64) @ d.vectors.T.astype(np.float64)
    assert np.abs(gram - np.eye(d.count)).max() < 1e-5
    assert np.all(np.diff(d.ratios) <= 1e-12) and abs(d.ratios.sum() - 1.0) < 1e-9
    assert d.ratios[0] > d.ratios[-1]


def test_pca_matches_numpy_svd_of_the_same_samples(wide_sg2):
    samples = sample_w(wide_sg2, 2000, seed=1)
    d = pca_directions(samples)
    centred = samples - samples.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    variance = s ** 2 / (samples.shape[0] - 1)
    np.testing.assert_allclose(d.scales.astype(np.float64) ** 2, variance, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(d.ratios, variance / variance.sum(), rtol=1e-6, atol=1e-12)
    # The leading components are well separated: numpy's vectors agree up to sign.
    dots = np.abs(np.sum(d.vectors[:8].astype(np.float64) * vt[:8], axis=1))
    assert np.all(dots > 0.9999), dots
    assert np.abs(d.vectors[:, :].astype(np.float64) @ d.vectors.T - np.eye(512)).max() < 1e-5


def test_sampling_is_seeded_and_batch_independent(wide_sg2):
    a = sample_w(wide_sg2, 300, seed=4, batch=300)
    b = sample_w(wide_sg2, 300, seed=4, batch=64)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert not np.allclose(a, sample_w(wide_sg2, 300, seed=5))


@pytest.mark.parametrize("name", ["sg2", "sg3r"])
def test_sefa_matches_a_direct_eigen_decomposition(name):
    g = fixture(name)
    d = sefa_directions(g)
    # Direct: the affine weights of every modulated layer, read by name.
    names = [n for n, _ in g.named_parameters() if n.endswith("affine.weight") and n != "synthesis.input.affine.weight"]
    assert names
    a = np.concatenate([dict(g.named_parameters())[n].detach().double().numpy() for n in names], axis=0)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    values, vectors = np.linalg.eig(a.T @ a)
    order = np.argsort(values.real)[::-1]
    values, vectors = values.real[order], vectors.real[:, order]
    np.testing.assert_allclose(d.ratios, values / values.sum(), rtol=1e-6, atol=1e-10)
    gap = np.diff(values[:6]) < -1e-6 * values[0]  # compare vectors only where eigenvalues are distinct
    for k in range(5):
        if gap[k] and (k == 0 or gap[k - 1]):
            assert abs(float(d.vectors[k].astype(np.float64) @ vectors[:, k])) > 0.9999
    assert np.abs(d.vectors.astype(np.float64) @ d.vectors.T - np.eye(g.w_dim)).max() < 1e-5


def test_direction_files(tmp_path):
    rows = np.random.RandomState(0).randn(3, 64)
    np.save(tmp_path / "k.npy", rows)
    d = load_direction_file(tmp_path / "k.npy", 64)
    assert d.count == 3 and np.allclose(np.linalg.norm(d.vectors, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(d.vectors[1], rows[1] / np.linalg.norm(rows[1]), atol=1e-6)
    np.save(tmp_path / "one.npy", rows[0])
    assert load_direction_file(tmp_path / "one.npy", 64).count == 1
    np.save(tmp_path / "wrong.npy", rows[:, :10])
    with pytest.raises(DirectionsError, match=r"shape \(3, 10\) does not fit this model"):
        load_direction_file(tmp_path / "wrong.npy", 64)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DirectionsError, match="not a readable .npy"):
        load_direction_file(tmp_path / "obj.npy", 64)
    zero = rows.copy()
    zero[2] = 0
    np.save(tmp_path / "zero.npy", zero)
    with pytest.raises(DirectionsError, match="row 2 is all zeros"):
        load_direction_file(tmp_path / "zero.npy", 64)
    with pytest.raises(DirectionsError, match="cannot open"):
        load_direction_file(tmp_path / "missing.npy", 64)


def test_spec_parsing():
    assert parse_spec("pca:8") == ("pca", 8) and parse_spec("SEFA") == ("sefa", 16)
    assert parse_spec("") == ("off", 0) and parse_spec("off") == ("off", 0)
    assert parse_spec("dirs/smile.npy") == ("file", "dirs/smile.npy")
    for bad, message in (("pca:x", "must be an integer"), ("pca:0", "count must be"), ("ica:3", "use pca:K")):
        with pytest.raises(DirectionsError, match=message):
            parse_spec(bad)


def test_pca_cache_is_keyed_by_the_mapping_content(tmp_path):
    g = fixture("sg2")
    first, hit = cached_pca(g, samples=500, folder=tmp_path)
    assert not hit and len(list(tmp_path.glob("pca-*.npz"))) == 1
    again, hit = cached_pca(g, samples=500, folder=tmp_path)
    assert hit and np.array_equal(again.vectors, first.vectors) and np.array_equal(again.ratios, first.ratios)
    # A synthesis-only change keeps the key; a mapping change does not.
    key = mapping_hash(g)
    with torch.no_grad():
        g.synthesis.b4.const.add_(1.0)
    assert mapping_hash(g) == key
    with torch.no_grad():
        g.mapping.fc0.bias.add_(1.0)
    assert mapping_hash(g) != key
    _, hit = cached_pca(g, samples=500, folder=tmp_path)
    assert not hit and len(list(tmp_path.glob("pca-*.npz"))) == 2
    # A corrupt cache file is ignored and rewritten.
    for path in tmp_path.glob("pca-*.npz"):
        path.write_bytes(b"not an npz")
    again, hit = cached_pca(g, samples=500, folder=tmp_path)
    assert not hit and again.count == 64
    assert resolve("pca:4", g, samples=500, folder=tmp_path).count == 4


def _snapshot(**values):
    snap = {f"dir.{i}.amount": 0.0 for i in range(DIRECTION_SLOTS)}
    snap.update({f"dir.{i}.component": i for i in range(DIRECTION_SLOTS)})
    snap.update({f"dir.{i}.layers": (-1, -1) for i in range(DIRECTION_SLOTS)})
    snap.update(values)
    return snap


def test_live_slots_move_w_exactly_along_the_direction(wide_sg2):
    d = pca_directions(sample_w(wide_sg2, 1000, seed=2)).head(DIRECTION_SLOTS)
    slots = DirectionSlots(wide_sg2.num_ws)
    slots.set(d)
    z = torch.from_numpy(np.random.RandomState(9).randn(1, 512)).float()
    w = wide_sg2.mapping(z, None)[0]
    same = slots.apply(w.clone(), _snapshot())
    assert torch.equal(same, w)  # amount 0: bit-identical
    moved = slots.apply(w.clone(), _snapshot(**{"dir.2.amount": 1.5, "dir.2.layers": (2, 5)}))
    delta = (moved - w).double().numpy()
    expected = 1.5 * float(d.scales[2]) * d.vectors[2].astype(np.float64)
    np.testing.assert_allclose(delta[2:5], np.broadcast_to(expected, (3, 512)), rtol=0, atol=2e-6)
    assert np.array_equal(delta[:2], np.zeros((2, 512))) and np.array_equal(delta[5:], np.zeros((wide_sg2.num_ws - 5, 512)))
    # Two slots add; the component row picks which direction a slot uses; too-high components are skipped.
    both = slots.apply(w.clone(), _snapshot(**{"dir.0.amount": 1.0, "dir.1.amount": -2.0, "dir.1.component": 5,
                                               "dir.3.amount": 1.0, "dir.3.component": 99}))
    expected = float(d.scales[0]) * d.vectors[0] - 2.0 * float(d.scales[5]) * d.vectors[5]
    np.testing.assert_allclose((both - w).numpy(), np.broadcast_to(expected, w.shape), atol=2e-6)


def test_slots_do_nothing_without_directions(wide_sg2):
    slots = DirectionSlots(wide_sg2.num_ws)
    w = torch.randn(wide_sg2.num_ws, 512)
    assert torch.equal(slots.apply(w.clone(), _snapshot(**{"dir.0.amount": 3.0})), w)


def test_cli_writes_unit_rows_and_prints_ratios(tmp_path, capsys):
    from bridge.cli import main

    out = tmp_path / "d.npy"
    assert main(["directions", str(PICKLES["sg2"]), "--method", "pca", "--count", "5", "--samples", "800",
                 "--cache", str(tmp_path / "cache"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = np.load(out)
    assert rows.dtype == np.float32 and rows.shape == (5, 64)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-6)
    ratios = [float(v) for v in printed.split("explained-variance ratios:")[1].split()[:5]]
    assert ratios == sorted(ratios, reverse=True) and 0 < sum(ratios) <= 1
    assert main(["directions", str(PICKLES["sg3t"]), "--method", "sefa", "--count", "3",
                 "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (3, 64) and "eigenvalue ratios:" in capsys.readouterr().out


def test_cli_refuses_a_bad_count_in_one_line(tmp_path):
    proc = subprocess.run(vrbridge_cmd() + ["directions", str(PICKLES["sg2"]), "--count", "999",
                                            "--out", str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--count 999" in proc.stderr and not (tmp_path / "x.npy").exists()
    assert len(proc.stderr.strip().splitlines()) == 1
