"""``HOST:PORT`` text -> (host, port): the one parser behind every listening or sending address (OSC, preview)."""
from __future__ import annotations


class PortOutOfRange(ValueError):
    """The port is an integer, but not 0..65535."""


def split_endpoint(text: str, default_host: str) -> tuple[str, int]:
    """``"HOST:PORT"``, ``":PORT"``, ``"[::1]:PORT"`` or ``"PORT"`` -> (host, port).

    Raises ValueError when the port is not an integer and PortOutOfRange when it is outside 0..65535; callers
    turn either into their own one-line message.
    """
    raw = str(text).strip()
    host, sep, port_text = raw.rpartition(":")
    if not sep:
        host, port_text = "", raw
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise PortOutOfRange(f"port {port} is outside 0..65535")
    return host.strip("[]") or default_host, port
