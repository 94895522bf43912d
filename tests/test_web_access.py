"""Who may watch and who may steer the web surfaces, over real HTTP on loopback: localhost trusts everyone on
this computer; beyond it (0.0.0.0) the token or an allow-listed address is needed for control, and for viewing
unless preview_public opens it; the token is taken from ?token= once and kept in a cookie."""
from __future__ import annotations

import http.cookiejar
import urllib.error
import urllib.request

import pytest

from bridge.sinks import SinkUnavailable, make_sink
from bridge.web.access import Access, same_origin


def _status(url: str, opener=None) -> int:
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_rules():
    local = Access.for_host("127.0.0.1")
    assert local.local and local.allowed("10.0.0.9", None, control=True)
    lan = Access.for_host("0.0.0.0")
    assert not lan.local and len(lan.token) >= 16  # made up when not given
    assert not lan.allowed("127.0.0.1", None, control=False) and not lan.allowed("127.0.0.1", "wrong", control=True)
    assert lan.allowed("127.0.0.1", lan.token, control=True)
    public = Access.for_host("0.0.0.0", token="t", allow=["192.168.1.20"], public_view=True)
    assert public.allowed("10.1.1.1", None, control=False) and not public.allowed("10.1.1.1", None, control=True)
    assert public.allowed("192.168.1.20", None, control=True)
    with pytest.raises(ValueError, match="control_allow"):
        Access.for_host("0.0.0.0", allow=["not-an-ip"])
    assert same_origin(None, "127.0.0.1:80") and same_origin("http://127.0.0.1:80", "127.0.0.1:80")
    assert not same_origin("http://evil.example", "127.0.0.1:80")


def test_lan_preview_over_http():
    sink = make_sink("preview:0.0.0.0:0", token="sesame", public_view=False)
    sink.start()
    base = f"http://127.0.0.1:{sink.port}"
    try:
        assert _status(base + "/status.json") == 403  # viewing needs the token too
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        assert _status(base + "/?token=sesame", opener) == 200
        assert _status(base + "/status.json", opener) == 200  # the cookie carries it from now on
        assert _status(base + "/status.json?token=nope") == 403
        assert sink.denied == 2
    finally:
        sink.close()


def test_public_view_and_allow_list():
    sink = make_sink("preview:0.0.0.0:0", token="sesame", public_view=True)
    sink.start()
    try:
        assert _status(f"http://127.0.0.1:{sink.port}/status.json") == 200  # watching is open
    finally:
        sink.close()
    with pytest.raises(SinkUnavailable, match="control_allow"):
        make_sink("preview:0.0.0.0:0", allow=["nope"])
