"""Where encoder weights come from: explicit file, torch's hub cache, and a download only when allowed."""
from __future__ import annotations

import hashlib
import http.server
import logging
import pickle
import socket
import threading
from pathlib import Path

import pytest
import torch

from bridge.encoder import EncoderError, build_encoder
from bridge.encoder.backbone import WeightsSpec
from bridge.encoder.vgg16 import random_state_dict
from bridge.encoder.weights import find_weights, hub_cache_path

VGG_FILE = "vgg16-397923af.pth"


@pytest.fixture
def empty_hub(tmp_path, monkeypatch) -> Path:
    """torch's hub cache moved to an empty folder (TORCH_HOME, as a user would)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # talk to the loopback server / the named host, not a proxy
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a set_dir elsewhere would override TORCH_HOME
    hub = Path(torch.hub.get_dir())
    assert hub == tmp_path / "torch_home" / "hub"
    return hub


@pytest.fixture
def no_network(monkeypatch) -> list:
    """Any name lookup or outgoing connection is recorded and refused (downloads disabled for real)."""
    attempts: list = []

    def refuse_lookup(host, *args, **kwargs):
        attempts.append(("getaddrinfo", host))
        raise socket.gaierror(socket.EAI_NONAME, "network disabled in this test")

    def refuse_connect(self, address):
        attempts.append(("connect", address))
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    return attempts


def test_no_weights_and_no_download_is_a_clear_error(empty_hub, no_network):
    with pytest.raises(EncoderError) as info:
        build_encoder(z_dim=512, taps=("conv4_1",), allow_download=False)
    message = str(info.value)
    assert "\n" not in message
    assert str(empty_hub / "checkpoints" / VGG_FILE) in message  # where it looked
    assert "--encoder-weights FILE" in message and "--allow-download" in message  # how to fix it
    assert no_network == []  # and nothing touched the network
    assert not (empty_hub / "checkpoints").exists()


def test_demo_falls_back_to_random_init_without_network(empty_hub, no_network, caplog):
    from bridge.encoder import DEMO_ENCODER

    with caplog.at_level(logging.INFO, logger="bridge.encoder.encoder"):
        enc = build_encoder(z_dim=512, demo=True)
    notes = [r for r in caplog.records if "random-init" in r.message]  # a first run: one quiet line, no warning
    assert [r.levelno for r in notes] == [logging.INFO] and "--allow-download" in notes[0].message
    assert enc.is_demo and enc.backbone.name == DEMO_ENCODER.backbone and enc.encode_size == DEMO_ENCODER.size
    assert "random-init demo encoder" in enc.describe()
    assert DEMO_ENCODER.backbone.upper() in enc.describe() and "the demo's choice" in enc.describe()  # says which
    assert "the demo's choice" not in build_encoder(backbone=DEMO_ENCODER.backbone, demo=True).describe()
    assert enc.stats()["demo"] is True and "random init" in enc.stats()["weights"]
    assert no_network == []


def test_download_is_attempted_only_when_allowed(empty_hub, no_network):
    with pytest.raises(EncoderError) as info:
        build_encoder(allow_download=True)
    message = str(info.value)
    assert message.startswith("could not download https://download.pytorch.org/models/" + VGG_FILE)
    assert "--encoder-weights FILE" in message
    assert ("getaddrinfo", "download.pytorch.org") in no_network
    assert not (empty_hub / "checkpoints" / VGG_FILE).exists()  # no half file left as if it were the weights
    assert build_encoder(allow_download=True, demo=True).is_demo  # offline demo: tried, then random init


def test_explicit_file_problems_are_named(tmp_path, empty_hub, no_network):
    with pytest.raises(EncoderError, match="encoder weights file not found: .*nope.pth"):
        build_encoder(weights=str(tmp_path / "nope.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a torch file")
    with pytest.raises(EncoderError, match="garbage.pth: cannot read encoder weights"):
        build_encoder(weights=str(garbage))
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3)}, other)
    with pytest.raises(EncoderError, match=r"other.pth: missing key features\.0\.weight"):
        build_encoder(weights=str(other), demo=True)  # a named file is never silently replaced by the demo
    assert no_network == []


def test_hub_cache_is_used(empty_hub, no_network):
    cached = empty_hub / "checkpoints" / VGG_FILE
    cached.parent.mkdir(parents=True)
    torch.save(random_state_dict(seed=5), cached)
    enc = build_encoder(backbone="vgg16", taps=("conv1_1",), demo=True)  # real weights win over the random init
    assert not enc.is_demo
    assert f"hub cache {cached}" in enc.describe()
    torch.testing.assert_close(enc.backbone.features[0].weight, random_state_dict(seed=5)["features.0.weight"])
    assert no_network == []


def test_broken_cache_file_says_how_to_fix_it(empty_hub, no_network, caplog):
    cached = empty_hub / "checkpoints" / VGG_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"PK\x03\x04 truncated download")
    with pytest.raises(EncoderError, match="cannot read encoder weights.*delete that cached file"):
        build_encoder()
    with caplog.at_level(logging.INFO, logger="bridge.encoder.encoder"):
        assert build_encoder(backbone="vgg16", demo=True).is_demo  # the demo still starts, on the random init
    assert any(r.levelno == logging.WARNING and "delete that cached file" in r.message for r in caplog.records)
    assert no_network == []


class _Server:
    """A loopback HTTP server for files in one folder, counting requests."""

    def __init__(self, folder: Path):
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self):
                outer.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _publish(folder: Path, stem: str, state: dict) -> str:
    """Save ``state`` as torchvision names its files: stem-<first 8 hex of sha256>.pth; return the name."""
    tmp = folder / "upload.pth"
    torch.save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    name = f"{stem}-{digest}.pth"
    tmp.rename(folder / name)
    return name


def test_allowed_download_over_loopback_checks_hash_and_caches(tmp_path, empty_hub):
    served = tmp_path / "served"
    served.mkdir()
    state = {"w": torch.arange(6.0)}
    name = _publish(served, "tiny", state)
    with _Server(served) as server:
        spec = WeightsSpec(filename=name, url=f"http://127.0.0.1:{server.port}/{name}", description="tiny test weights")
        with pytest.raises(EncoderError, match="no tiny test weights found"):
            find_weights(spec, allow_download=False)
        assert server.requests == []
        found = find_weights(spec, allow_download=True)
        assert found.origin == "download" and found.path == str(hub_cache_path(spec))
        torch.testing.assert_close(found.state["w"], state["w"])
        again = find_weights(spec, allow_download=True)
        assert again.origin == "hub cache"
        assert server.requests == [f"/{name}"]  # fetched once, then read from the cache


def test_download_with_wrong_hash_is_refused(tmp_path, empty_hub):
    served = tmp_path / "served"
    served.mkdir()
    torch.save({"w": torch.zeros(2)}, served / "tiny-00000000.pth")  # name promises a hash it does not have
    with _Server(served) as server:
        spec = WeightsSpec(filename="tiny-00000000.pth", url=f"http://127.0.0.1:{server.port}/tiny-00000000.pth",
                           description="tiny test weights")
        with pytest.raises(EncoderError, match="could not download .*invalid hash value"):
            find_weights(spec, allow_download=True)
    assert not hub_cache_path(spec).exists()


OTHER_BACKBONES = {  # name -> (file in the hub cache, host of the published URL)
    "mobilenet_v3_large": ("mobilenet_v3_large-5c1a4163.pth", "download.pytorch.org"),
    "efficientnet_b0": ("efficientnet_b0_rwightman-7f5810bc.pth", "download.pytorch.org"),
    "dinov2_vits14": ("dinov2_vits14_pretrain.pth", "dl.fbaipublicfiles.com"),
}


@pytest.mark.parametrize("name", OTHER_BACKBONES)
def test_other_backbones_find_weights_like_vgg16(name, empty_hub, no_network, caplog):
    from bridge.encoder.backbone import backbone_class
    from bridge.encoder.backbone import random_state_dict as any_random_state_dict

    filename, host = OTHER_BACKBONES[name]
    cls = backbone_class(name)
    assert cls.weights_spec.filename == filename and cls.weights_spec.url.endswith("/" + filename)
    with pytest.raises(EncoderError) as info:
        build_encoder(backbone=name)
    message = str(info.value)
    assert "\n" not in message and str(empty_hub / "checkpoints" / filename) in message
    assert cls.weights_spec.url in message and "--allow-download" in message
    assert no_network == []
    with pytest.raises(EncoderError, match=f"could not download https://{host}/"):
        build_encoder(backbone=name, allow_download=True)
    assert ("getaddrinfo", host) in no_network
    assert not (empty_hub / "checkpoints" / filename).exists()
    # a file in the hub cache (under the current name, or an older release's) is used, offline
    state = any_random_state_dict(cls, seed=1)
    for cached_name in (filename, *cls.weights_spec.also_cached):
        cached = empty_hub / "checkpoints" / cached_name
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, cached)
        enc = build_encoder(backbone=name, encode_size=(70, 56), demo=True)
        assert not enc.is_demo and f"hub cache {cached}" in enc.describe()
        cached.unlink()
    attempts = len(no_network)
    assert build_encoder(backbone=name, encode_size=(70, 56), demo=True).is_demo
    assert len(no_network) == attempts  # the demo fallback does not download either


def test_a_file_without_a_hash_in_its_name_is_checked_by_its_full_digest_when_known(tmp_path, empty_hub, caplog):
    served = tmp_path / "served"
    served.mkdir()
    torch.save({"w": torch.ones(3)}, served / "plain_pretrain.pth")  # Meta-style name: no hash in it
    digest = hashlib.sha256((served / "plain_pretrain.pth").read_bytes()).hexdigest()
    with _Server(served) as server:
        url = f"http://127.0.0.1:{server.port}/plain_pretrain.pth"
        wrong = WeightsSpec(filename="plain_pretrain.pth", url=url, description="plain", sha256="0" * 64)
        with pytest.raises(EncoderError, match="invalid hash value"):
            find_weights(wrong, allow_download=True)
        assert not hub_cache_path(wrong).exists()  # the refused file is not left in the cache
        unpinned = WeightsSpec(filename="plain_pretrain.pth", url=url, description="plain")
        with caplog.at_level("INFO", logger="bridge.encoder.weights"):
            found = find_weights(unpinned, allow_download=True)
        assert found.origin == "download" and torch.equal(found.state["w"], torch.ones(3))
        assert "gives no checksum" in caplog.text and digest in caplog.text
        hub_cache_path(unpinned).unlink()
        pinned = WeightsSpec(filename="plain_pretrain.pth", url=url, description="plain", sha256=digest)
        assert find_weights(pinned, allow_download=True).origin == "download"


@pytest.mark.parametrize("name, content, says", [
    ("text.pth", b"101\n", "text file, not a weights file"),
    ("empty.pth", b"", "the file is empty"),
    ("noise.pth", bytes(range(256)) * 8, "bytes in no weights format"),
    ("plain.pth", pickle.dumps({"x": 1}, protocol=2), "a Python pickle (17 bytes) that cannot be read"),
    ("code.pth", pickle.dumps(print, protocol=4), "weights-only reader refuses"),
])
def test_unreadable_weights_say_what_the_file_is_and_what_was_expected(tmp_path, empty_hub, no_network, name,
                                                                       content, says):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(EncoderError) as info:
        build_encoder(weights=str(path))
    message = str(info.value)
    assert says in message and "expected" in message and VGG_FILE in message, message
    assert "weights_only=False" not in message and "\n" not in message and len(message) < 500
