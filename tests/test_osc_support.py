"""Shared helpers of the OSC tests (no tests here): a ParamStore-backed engine stand-in and an OSC receiver.

The stand-in has exactly the surface ``bridge.osc.attach`` needs (params, add_service, add_report_observer),
so the OSC parts are exercised for real before and independently of bridge/engine.py.
"""
from __future__ import annotations

import socket
import threading

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from bridge.params import ParamStore
from bridge.routes import RouteTable
from bridge.signals import SignalBus
from conftest import wait_for


class MiniEngine:
    """The engine's plug-in surface that bridge.osc.attach uses, without threads or a network."""

    def __init__(self) -> None:
        self.params = ParamStore()
        self.signals = SignalBus()
        self.routes = RouteTable()
        self.services: list = []
        self.observers: list = []
        self.signal_stages: list = []

    def add_signal_stage(self, stage) -> None:
        self.signal_stages.append(stage)

    def add_service(self, service) -> None:
        self.services.append(service)

    def add_report_observer(self, fn) -> None:
        self.observers.append(fn)

    def start(self) -> None:
        for service in self.services:
            service.start()

    def close(self) -> None:
        for service in reversed(self.services):
            service.close()


class Collector:
    """A python-osc UDP server on loopback that records every (address, args) it receives."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.messages: list[tuple[str, tuple]] = []
        self._lock = threading.Lock()
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(self._record)
        self.server = BlockingOSCUDPServer((host, 0), dispatcher)
        self.port = self.server.server_address[1]
        self.endpoint = f"{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def _record(self, address: str, *args) -> None:
        with self._lock:
            self.messages.append((address, args))

    def values(self, address: str) -> list[tuple]:
        with self._lock:
            return [args for a, args in self.messages if a == address]

    def wait_for(self, address: str, timeout: float = 3.0, where=lambda args: True) -> tuple:
        found = wait_until(lambda: next((a for a in self.values(address) if where(a)), None), timeout)
        assert found is not None, f"nothing matching on {address} within {timeout}s; got {sorted({a for a, _ in self.messages})[:40]}"
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


wait_until = wait_for  # the one polling helper (conftest); the OSC tests read better with this name


def send_raw(data: bytes, port: int, source: str = "127.0.0.1") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.sendto(data, ("127.0.0.1", port))
