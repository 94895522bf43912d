"""The model library's download, against a real HTTP server on loopback (nothing leaves this machine).

The server serves a real network pickle (sg2_tiny.pkl), honours or ignores Range as told, can cut the first
connection part-way, and logs every request, so the tests see exactly what the client asked for.
"""
from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bridge.stylegan import library
from bridge.stylegan.library import LibraryError, LibraryModel, download, resolve_network
from bridge.stylegan.loader import load_network
from conftest import STYLEGAN_FIXTURES

PAYLOAD = (STYLEGAN_FIXTURES / "sg2_tiny.pkl").read_bytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server:
    def __init__(self):
        self.requests: list[dict] = []
        self.cut_first_at: int | None = None   # close the first response after this many bytes
        self.honour_range = True
        self.body = PAYLOAD
        self.status = 200
        self.announce: int | None = None       # Content-Length to claim (default: the real one)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append({"path": self.path, "range": self.headers.get("Range")})
                if server.status != 200:
                    self.send_error(server.status)
                    return
                body, start = server.body, 0
                rng = self.headers.get("Range")
                if rng and server.honour_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                rest = body[start:]
                self.send_header("Content-Length", str(server.announce or len(rest)))
                self.end_headers()
                if server.cut_first_at is not None and len(server.requests) == 1:
                    rest = rest[:server.cut_first_at]
                    self.close_connection = True
                server.requests[-1]["sent"] = len(rest)  # before writing: the client may finish first
                self.wfile.write(rest)
                self.wfile.flush()

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that hangs up early is expected here
                pass

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/files/test-model.pkl"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def sent_bytes(self) -> int:
        return sum(r.get("sent", 0) for r in self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VRBRIDGE_MODELS_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _model(server, sha256: str | None = SHA, name: str = "test-model") -> LibraryModel:
    return LibraryModel(name, "StyleGAN2", "test", 32, server.url, 1, sha256=sha256,
                        hash_source="this test" if sha256 else library.NO_HASH)


def _one_line(exc) -> str:
    assert "\n" not in str(exc)
    return str(exc)


def test_get_downloads_with_a_progress_bar_and_checks_the_hash(server, cache, monkeypatch, capsys):
    from bridge.cli import main

    monkeypatch.setattr(library, "CATALOG", (_model(server),))
    assert main(["models", "get", "test-model", "--progress"]) == 0
    out, err = capsys.readouterr()
    path = cache / "test-model.pkl"
    assert path.read_bytes() == PAYLOAD and not (cache / "test-model.pkl.part").exists()
    assert SHA in out and "matches the published hash" in out
    assert "test-model" in err and "100%" in err  # tqdm's bar, on stderr
    assert main(["models"]) == 0
    assert "yes" in capsys.readouterr().out.splitlines()[1]  # listed as cached
    assert main(["models", "get", "test-model"]) == 0  # already there: no second request
    assert len(server.requests) == 1
    assert load_network(path).img_resolution == 32


def test_a_cut_connection_is_resumed_with_a_range_request(server, cache):
    server.cut_first_at = 200_000
    path = download(_model(server), progress=False)
    assert path.read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == [None, "bytes=200000-"]
    assert server.sent_bytes() == len(PAYLOAD)  # nothing fetched twice


def test_a_cut_download_resumes_on_the_next_run(server, cache, monkeypatch):
    monkeypatch.setattr(library, "RESUMES", 0)
    server.cut_first_at = 300_000
    with pytest.raises(LibraryError, match="interrupted after 300000 bytes.*run the same command again") as info:
        download(_model(server), progress=False)
    _one_line(info.value)
    assert (cache / "test-model.pkl.part").stat().st_size == 300_000
    assert not (cache / "test-model.pkl").exists()
    path = download(_model(server), progress=False)
    assert path.read_bytes() == PAYLOAD and server.requests[-1]["range"] == "bytes=300000-"


def test_a_server_that_ignores_range_restarts_cleanly(server, cache):
    server.cut_first_at = 100_000
    server.honour_range = False
    path = download(_model(server), progress=False)
    assert path.read_bytes() == PAYLOAD
    assert len(server.requests) == 2


def test_a_wrong_hash_is_refused_and_nothing_is_kept(server, cache):
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(LibraryError, match="does not match the published") as info:
        download(_model(server, sha256=wrong), progress=False)
    _one_line(info.value)
    assert not any(cache.iterdir())


def test_a_file_without_published_hash_is_checked_by_length_and_format(server, cache):
    server.body = b"<html>not a model</html>"
    with pytest.raises(LibraryError, match="not a network pickle") as info:
        download(_model(server, sha256=None), progress=False)
    _one_line(info.value)
    assert not any(cache.iterdir())


@pytest.mark.parametrize("status, announce, match", [(404, None, "HTTP 404"),
                                                       (200, 8 << 30, "more than the")])
def test_http_errors_and_absurd_sizes_are_one_line(server, cache, status, announce, match):
    server.status, server.announce = status, announce
    with pytest.raises(LibraryError, match=match) as info:
        download(_model(server), progress=False)
    _one_line(info.value)


def test_no_download_without_the_flag(server, cache, monkeypatch, capsys):
    from bridge.cli import main

    monkeypatch.setattr(library, "CATALOG", (_model(server),))
    with pytest.raises(LibraryError, match=r"vrbridge models get test-model.*--allow-download") as info:
        resolve_network("test-model", allow_download=False)
    _one_line(info.value)
    assert main(["run", "--network", "test-model", "--frames", "1", "--osc-in", "off", "--preview", "off"]) == 2
    err = capsys.readouterr().err
    assert "--allow-download" in err and err.count("\n") == 1
    assert main(["inspect", "test-model"]) == 2
    assert "vrbridge models get test-model" in capsys.readouterr().err
    assert server.requests == []


def test_with_the_flag_the_name_downloads_then_loads(server, cache, monkeypatch):
    monkeypatch.setattr(library, "CATALOG", (_model(server),))
    path = resolve_network("test-model", allow_download=True, progress=False)
    assert load_network(path).num_ws == 8
    assert resolve_network("test-model") == path  # cached now: no flag needed, no request
    assert len(server.requests) == 1


def test_catalog_is_nvidias_official_pickles():
    names = {m.name for m in library.CATALOG}
    assert {"sg3t-ffhq-1024", "sg3r-afhqv2-512", "sg2-metfaces-1024", "ada-ffhq-1024"} <= names
    assert len(names) == len(library.CATALOG)
    for m in library.CATALOG:
        assert m.url.startswith(("https://api.ngc.nvidia.com/v2/models/nvidia/research/",
                                 "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/"))
        assert f"{m.resolution}" in m.url or m.url.startswith(library.ADA)
        assert m.sha256 is None and "none published" in m.hash_source  # nothing pinned without a source


def test_unknown_names_and_uncached_paths_are_one_line(cache, capsys):
    from bridge.cli import main

    assert main(["models", "get", "sg3r-afhq"]) == 2
    err = capsys.readouterr().err
    assert "did you mean sg3r-afhqv2-512" in err and err.count("\n") == 1
    assert main(["models", "path", "sg2-ffhq-1024"]) == 2
    assert "vrbridge models get sg2-ffhq-1024" in capsys.readouterr().err
    assert main(["models", "--json"]) == 0
    import json

    listing = json.loads(capsys.readouterr().out)
    assert listing["cache"] == str(cache) and not any(m["cached"] for m in listing["models"])
