"""Who may watch and who may steer, for the web surfaces (preview page, streams, control panel).

On localhost (the default) everyone on this computer may do everything: that is the same trust OSC on
127.0.0.1 gets. Listening beyond (``--preview 0.0.0.0:PORT``) is explicit, and then:

* **control** (the panel's WebSocket: anything that changes a value) needs the token, or a client address in
  ``control_allow``. The token is ``control_token`` if set, else a random one made at start and printed.
* **viewing** (page, streams, stills, status) needs the same, unless ``preview_public`` opens it to the LAN.

The token is accepted as ``?token=`` (once: it is then kept in a cookie for this host), the ``X-VRB-Token``
header or the ``vrb_token`` cookie, compared in constant time. WebSocket upgrades must also come from a page of
this same server (``Origin`` matches ``Host``), so a web page elsewhere cannot steer a localhost engine through
the visitor's browser.
"""
from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import secrets
from typing import Iterable
from urllib.parse import urlsplit

COOKIE = "vrb_token"
HEADER = "X-VRB-Token"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass
class Access:
    """The rules of one server. ``local`` = listening on loopback only (no token needed)."""

    local: bool = True
    token: str = ""
    allow: tuple[str, ...] = ()
    public_view: bool = False

    @classmethod
    def for_host(cls, host: str, token: str = "", allow: Iterable[str] = (), public_view: bool = False) -> "Access":
        local = is_loopback(host)
        if not local and not token:
            token = secrets.token_urlsafe(12)
        return cls(local=local, token=token, allow=tuple(_check_ip(a) for a in allow), public_view=public_view)

    def token_ok(self, given: str | None) -> bool:
        return bool(self.token) and given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def allowed(self, peer: str | None, given_token: str | None, control: bool) -> bool:
        if self.local:
            return True
        if not control and self.public_view:
            return True
        return (peer is not None and peer in self.allow) or self.token_ok(given_token)


def same_origin(origin: str | None, host: str | None) -> bool:
    """A browser's WebSocket ``Origin`` must be this server (no Origin: not a browser, e.g. a test client)."""
    if not origin:
        return True
    return bool(host) and urlsplit(origin).netloc.lower() == host.lower()


def _check_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(str(text).strip()))
    except ValueError:
        raise ValueError(f"control_allow: {text!r} is not an IP address") from None
