"""Endpoints ("HOST:PORT") and sender allow-lists, shared by the control server, telemetry and OSCQuery."""
from __future__ import annotations

import ipaddress
import socket
from typing import Iterable

from bridge.cli import UserError
from bridge.endpoints import PortOutOfRange, split_endpoint


def parse_endpoint(text: str, what: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``"HOST:PORT"``, ``":PORT"`` or ``"PORT"`` -> (host, port); a bad value is a one-line UserError."""
    raw = str(text).strip()
    try:
        return split_endpoint(raw, default_host)
    except PortOutOfRange as exc:
        raise UserError(f"{what}: {exc}") from None
    except ValueError:
        raise UserError(f"{what}: {raw!r} is not HOST:PORT (e.g. 127.0.0.1:7700)") from None


def resolve(host: str, what: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError as exc:
        raise UserError(f"{what}: cannot resolve host {host!r} ({exc})") from None


def is_loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_loopback


def source_address(targets: Iterable[tuple[str, int]]) -> str:
    """The local address to send to ``targets`` from: 127.0.0.1 when all are on this computer, the one
    interface that reaches them all otherwise, and 0.0.0.0 only when they need different interfaces.

    A sending socket left unbound is bound to 0.0.0.0 by the first send, which also opens it to datagrams
    from any network; binding to the interface the targets need keeps it off the others.
    """
    sources = set()
    for host, port in targets:
        if is_loopback(host):
            sources.add("127.0.0.1")
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect((host, port))  # UDP connect sends nothing: it only picks the route
                sources.add(probe.getsockname()[0])
            except OSError:
                return "0.0.0.0"  # no route now (cable out): let the OS choose at each send
    return sources.pop() if len(sources) == 1 else "0.0.0.0"


class AllowList:
    """Sender IPs (or CIDR networks like 192.168.1.0/24) allowed to control the engine; empty allows all.

    Empty is only possible while the control server listens on a loopback address (the server refuses
    anything else), so every sender is then a process on this computer, whichever 127.x.y.z it sends from:
    127.0.0.2 is accepted by design, as 127.0.0.1 is. With any entry, only the entries are allowed, on
    loopback too.
    """

    def __init__(self, entries: Iterable[str] = ()):
        self.networks = []
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
            except ValueError:
                raise UserError(f"osc_allow: {entry!r} is not an IP address or network (e.g. 192.168.1.20)") from None

    def __bool__(self) -> bool:
        return bool(self.networks)

    def allows(self, ip: str) -> bool:
        if not self.networks:
            return True
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.networks)
