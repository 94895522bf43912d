"""Cheap checks before the slow start-up: every listening port free, every named file there.

Loading a model takes 10 s or more and opening a camera floods the log when it is missing, so a busy port or
a mistyped path must be reported first, in one line that names the setting and the flag that changes it.
The services still bind for real later (a port taken in between is reported then, the same way).
"""
from __future__ import annotations

import errno
import os
import socket
import sys
from typing import Any, Mapping

from bridge.endpoints import split_endpoint

# setting -> (protocol, default host): the sockets the engine listens on.
LISTENERS = {"osc_in": ("udp", "127.0.0.1"), "oscquery": ("tcp", "127.0.0.1"), "preview": ("tcp", "127.0.0.1")}
# settings naming a file that must exist (an empty value means "none").
FILES = ("encoder_weights", "hand_model", "pose_model", "face_model")
# ... except this word, which names Google's official landmarker bundle (bridge.tracking.model).
OFFICIAL = "official"
# what else a missing file can be replaced with, said after the flag
FILE_HINTS = {"encoder_weights": "; or drop the setting and add --allow-download to fetch the published file once",
              "hand_model": "; or drop the setting to use the hand model shipped with the package"}


class PreflightError(RuntimeError):
    """One line: which setting, what is wrong, the flag that fixes it."""


def check(settings: Mapping[str, Any]) -> None:
    """Raise :class:`PreflightError` for the first busy port or missing file."""
    _check_files(settings)
    _check_network(settings)
    _check_midi(settings)
    seen: dict[tuple[str, int], str] = {}
    for name, (protocol, default_host) in LISTENERS.items():
        text = str(settings.get(name) or "").strip()
        if not text or text.lower() == "off":
            continue
        try:
            host, port = split_endpoint(text, default_host)
        except ValueError:
            continue  # the service reports a malformed value itself, with its own rule
        if port == 0:
            continue
        if protocol == "tcp" and (host, port) in seen:
            raise PreflightError(f"{name} and {seen[host, port]} both want {host}:{port}; "
                                 f"give one another port ({_flag(name)} {host}:PORT)")
        if protocol == "tcp":
            seen[host, port] = name
        reason = port_problem(protocol, host, port)
        if reason:
            raise PreflightError(f"{name}: cannot listen on {protocol} {host}:{port} ({reason}); choose another "
                                 f"port with {_flag(name)} {host}:PORT, or {_flag(name)} off")


def port_problem(protocol: str, host: str, port: int) -> str:
    """Why (host, port) cannot be listened on now ("" when it can), by binding it briefly."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, kind) as probe:
        if protocol == "tcp" and sys.platform != "win32":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is fine
        try:
            probe.bind((host, port))
        except OSError as exc:
            in_use = exc.errno in (errno.EADDRINUSE, 10048)  # 10048: WSAEADDRINUSE on Windows
            return "already in use: another vrbridge, or another program" if in_use else (exc.strerror or str(exc))
    return ""


def _check_files(settings: Mapping[str, Any]) -> None:
    for name in FILES:
        value = str(settings.get(name) or "").strip()
        if name.endswith("_model") and value == OFFICIAL:
            continue
        if value and not os.path.isfile(os.path.expanduser(value)):
            raise PreflightError(f"{name}: no such file {value!r} ({_flag(name)} FILE{FILE_HINTS.get(name, '')})")


def _check_network(settings: Mapping[str, Any]) -> None:
    """A --network that is neither a file nor a model library name is a typo: say so before anything loads."""
    value = str(settings.get("network") or "").strip()
    if not value or os.path.exists(os.path.expanduser(value)):
        return
    from bridge.stylegan.library import find_model

    if find_model(value) is None:
        raise PreflightError(f"network: no such file {value!r}, and no model of that name in the library "
                             "(list them with: vrbridge models)")


def _check_midi(settings: Mapping[str, Any]) -> None:
    """MIDI ports named and maps given: found and valid before the model loads (the MIDI system is cheap to ask)."""
    from bridge.midi import preflight_problem

    problem = preflight_problem(settings)
    if problem:
        raise PreflightError(problem)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
