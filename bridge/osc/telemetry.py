"""Telemetry out: what the engine is doing, as OSC bundles TouchDesigner's OSC In CHOP turns into channels.

The render thread only calls :meth:`Telemetry.observe` (a put into a single-slot box: the newest report
wins); encoding and sending happen on the telemetry thread. Names (one value per address, so every address
becomes exactly one CHOP channel; numbers only, except where noted):

  /vrb/frame i · /vrb/fps f · /vrb/ms/<stage> f · /vrb/dropped i
  /vrb/<param>            live values of every telemetry parameter (the control address itself):
                          float f, int i, bool i 0/1, enum i (index into its choices), str s;
                          int2 as two addresses /vrb/<param>/start i and /vrb/<param>/end i
  /vrb/z/<group>/mean f · /vrb/z/<group>/std f · /vrb/z/<group>/<i> f   (i < telemetry.z_dims)
  /vrb/h1/present i · /vrb/h1/score f · /vrb/h1/<landmark>/x f · /vrb/h1/<landmark>/y f   (0..1, y down)
  /vrb/hand/<feature> f · /vrb/health/<key> (nested keys joined with '/')
  /vrb/p1/<landmark>/x|y f · /vrb/f1/<point>/x|y f · /vrb/track/<pose|face>/ms f   (providers added by
                          bridge.tracking.performer with --track pose,face)
  /vrb/signal/<name> f    every published signal (bridge.signals), dots as slashes: /vrb/signal/hand/x
  /vrb/heartbeat i (1 Hz, a counter) with /vrb/uptime f and the control counters /vrb/osc/<counter> i,
                          /vrb/osc/errors/<code> i, /vrb/osc/errors/total i
  /vrb/error s:code s:detail   (rate-limited per code; "clamped" notices too)

Every datagram is a bundle of at most 1472 bytes (split as needed), so nothing is fragmented on Ethernet.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from bridge.frames import HAND_LANDMARK_NAMES, FrameReport, Latest
from bridge.osc import codec
from bridge.osc.net import source_address
from bridge.osc.ratelimit import RateLimiter
from bridge.params import OSC_ROOT, PARAMS_BY_NAME, ParamStore
from bridge.signals import signal_address

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
ERROR_DETAIL_MAX = 240  # characters of an error detail sent on /vrb/error
Provider = Callable[[], Mapping[str, Any]]  # address -> value, merged into telemetry


def param_echo(name: str, value: Any) -> list[tuple[str, Any]]:
    """(address, value) pairs echoing one parameter, CHOP-friendly (see the module docstring)."""
    param = PARAMS_BY_NAME.get(name)
    if param is None or not param.telemetry or param.kind in ("action", "list"):
        return []
    address = param.osc_address
    if param.kind == "int2":
        return [(address + "/start", int(value[0])), (address + "/end", int(value[1]))]
    if param.kind == "bool":
        return [(address, int(bool(value)))]
    if param.kind == "enum":
        return [(address, param.choices.index(value) if value in param.choices else -1)]
    return [(address, value)]


def report_values(report: FrameReport, z_dims: int) -> list[tuple[str, Any]]:
    """Everything one FrameReport says, as (address, value) pairs in a stable order."""
    root = OSC_ROOT
    out: list[tuple[str, Any]] = [(f"{root}/frame", int(report.index)), (f"{root}/fps", float(report.fps)),
                                  (f"{root}/dropped", int(report.dropped))]
    out += [(f"{root}/ms/{stage}", float(ms)) for stage, ms in report.stage_ms.items()]
    for name, value in report.params.items():
        out += param_echo(name, value)
    for group, z in report.latents.items():
        out += _latent_values(f"{root}/z/{group}", z, z_dims)
    out += _hand_values(report)
    out += [(f"{root}/hand/{name}", float(v)) for name, v in report.features.items()]
    out += [(signal_address(name), float(v)) for name, v in report.signals.items()]
    out += _flatten(f"{root}/health", report.health)
    return out


def _latent_values(prefix: str, z: Any, z_dims: int) -> list[tuple[str, Any]]:
    z = np.asarray(z, dtype=np.float32).reshape(-1)
    if z.size == 0:
        return []
    values = [(prefix + "/mean", float(z.mean())), (prefix + "/std", float(z.std()))]
    return values + [(f"{prefix}/{i}", float(v)) for i, v in enumerate(z[:z_dims].tolist())]


def _hand_values(report: FrameReport) -> list[tuple[str, Any]]:
    prefix = f"{OSC_ROOT}/h1"
    hand = report.keypoints.active_hand if report.keypoints is not None else None
    if hand is None:
        return [(prefix + "/present", 0)]
    points = np.asarray(hand.landmarks, dtype=np.float32)[:, :2].tolist()
    out: list[tuple[str, Any]] = [(prefix + "/present", 1), (prefix + "/score", float(hand.score))]
    for name, (x, y) in zip(HAND_LANDMARK_NAMES, points):
        out += [(f"{prefix}/{name}/x", x), (f"{prefix}/{name}/y", y)]
    return out


def _flatten(prefix: str, data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        address = f"{prefix}/{key}"
        if isinstance(value, Mapping):
            out += _flatten(address, value)
        elif isinstance(value, (bool, np.bool_)):
            out.append((address, int(value)))
        elif isinstance(value, (int, float, str, np.integer, np.floating)):
            out.append((address, value.item() if isinstance(value, np.generic) else value))
    return out


def _collect(providers: Iterable[Provider]) -> list[tuple[str, Any]]:
    values: list[tuple[str, Any]] = []
    for provider in providers:
        try:
            values += list(provider().items())
        except Exception as exc:  # noqa: BLE001 - one broken provider must not silence telemetry
            log.debug("telemetry provider failed: %s", exc)
    return values


def encode_values(values: Iterable[tuple[str, Any]]) -> list[bytes]:
    """One OSC message per (address, value); floats take the fast path, the rest are inferred."""
    messages = []
    for address, value in values:
        if type(value) is float:
            messages.append(codec.encode_float_message(address, value))
        elif type(value) is int and -2**31 <= value < 2**31:
            messages.append(codec.encode_int_message(address, value))
        else:
            messages.append(codec.encode_message(address, (value,)))
    return messages


class Telemetry:
    """Sends telemetry bundles to every ``osc_out`` target from its own thread (a service)."""

    kind = "osc-out"

    def __init__(self, params: ParamStore, targets: Iterable[tuple[str, int]], limit: int = codec.SAFE_DATAGRAM):
        self.params = params
        self.targets = list(targets)
        self.limit = limit
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((source_address(self.targets), 0))  # not 0.0.0.0: only where the targets are
        self._box: Latest[FrameReport] = Latest()
        self._frame_providers: list[Provider] = []
        self._heartbeat_providers: list[Provider] = []
        self._errors = RateLimiter(per_second=5.0, burst=10)
        self._error_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        self._last_sent = 0.0
        self.counts = dict.fromkeys(("reports", "skipped", "bundles", "bytes", "heartbeats", "errors_sent",
                                     "errors_suppressed", "send_errors", "oversize"), 0)
        self.last_build_ms = 0.0
        self._claims: list[TargetClaim] = []

    # -- wiring ----------------------------------------------------------------------------------------
    def add_provider(self, fn: Provider, every_frame: bool = False) -> None:
        """Extra (address -> value) pairs: sent with each frame's bundle or with the 1 Hz heartbeat."""
        (self._frame_providers if every_frame else self._heartbeat_providers).append(fn)

    # -- called from other threads ---------------------------------------------------------------------
    def observe(self, report: FrameReport) -> None:
        """The engine's report observer: O(1) on the render thread; the newest report wins."""
        self._box.put(report)

    def send_error(self, code: str, detail: str, sender: tuple[str, int] = ("", 0)) -> None:
        """Answer one bad input on /vrb/error (code, detail), at most ~5 a second per code."""
        with self._error_lock:
            allowed = self._errors.allow(code)
            more = self._errors.take_suppressed(code) if allowed else 0
        if not allowed:
            self.counts["errors_suppressed"] += 1
            return
        text = detail if len(detail) <= ERROR_DETAIL_MAX else detail[:ERROR_DETAIL_MAX - 3] + "..."
        if more:
            text += f" (+{more} more {code})"
        self.counts["errors_sent"] += 1
        self._send([codec.encode_message(f"{OSC_ROOT}/error", (code, text), "ss")])

    def send_list(self, address: str, items: list[str]) -> None:
        """A string per item (e.g. /vrb/preset/names), sent now; a list too long for one datagram arrives
        as several messages on the same address, in order, each within the size cap."""
        messages, chunk = [], []
        for item in items:
            candidate = codec.encode_message(address, (*chunk, item), "s" * (len(chunk) + 1))
            if chunk and len(candidate) > self.limit:
                messages.append(codec.encode_message(address, tuple(chunk), "s" * len(chunk)))
                chunk = []
            chunk.append(item)
        messages.append(codec.encode_message(address, tuple(chunk), "s" * len(chunk)))
        self._send(messages)

    # -- service ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self._claims = [claim for target in self.targets if (claim := TargetClaim.take(*target)) is not None]
        self._thread = threading.Thread(target=self._run, name="osc-out", daemon=True)
        self._thread.start()
        log.info("OSC telemetry to %s", ", ".join(f"{h}:{p}" for h, p in self.targets))

    def close(self) -> None:
        self._stop.set()
        self._box.close()
        if self._thread is not None:
            self._thread.join(2.0)
        self._sock.close()
        for claim in self._claims:
            claim.release()
        self._claims = []

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "dropped": self._box.dropped, "build_ms": round(self.last_build_ms, 3),
                "targets": [f"{h}:{p}" for h, p in self.targets]}

    def describe(self) -> str:
        return "osc-out " + ", ".join(f"udp://{h}:{p}" for h, p in self.targets)

    # -- the telemetry thread --------------------------------------------------------------------------
    def _run(self) -> None:
        seq = 0
        next_beat = time.monotonic()
        beats = 0
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_beat:
                    self._send_heartbeat(beats)
                    beats += 1
                    next_beat = now + HEARTBEAT_S
                seq, report = self._box.get(seq, timeout=max(0.0, min(0.25, next_beat - time.monotonic())))
                if report is not None and self._due():
                    self.send_report(report)
            except Exception as exc:  # noqa: BLE001 - telemetry never takes the show down
                self.counts["send_errors"] += 1
                log.warning("telemetry failed: %s", exc)
                self._stop.wait(0.1)

    def _due(self) -> bool:
        rate = float(self.params.get("telemetry.rate_hz"))
        now = time.monotonic()
        if rate > 0 and now - self._last_sent < 1.0 / rate:
            self.counts["skipped"] += 1
            return False
        self._last_sent = now
        return True

    def send_report(self, report: FrameReport) -> None:
        """Encode and send one report now (the telemetry thread; the benchmark calls it directly)."""
        t0 = time.perf_counter()
        values = report_values(report, int(self.params.get("telemetry.z_dims")))
        values += _collect(self._frame_providers)
        bundles = self._bundles(values)
        self.last_build_ms = (time.perf_counter() - t0) * 1000.0
        self.counts["reports"] += 1
        self._send(bundles)

    def _send_heartbeat(self, beats: int) -> None:
        values: list[tuple[str, Any]] = [(f"{OSC_ROOT}/heartbeat", beats),
                                         (f"{OSC_ROOT}/uptime", time.monotonic() - self._started)]
        values += _collect(self._heartbeat_providers)
        self.counts["heartbeats"] += 1
        self._send(self._bundles(values))

    def _bundles(self, values: list[tuple[str, Any]]) -> list[bytes]:
        return codec.pack_bundles(encode_values(values), self.limit)

    def _send(self, datagrams: list[bytes]) -> None:
        """Send each datagram to every target; one over the size cap is counted (``oversize``), never sent."""
        for data in datagrams:
            if len(data) > self.limit:
                self.counts["oversize"] += 1
                continue
            for target in self.targets:
                try:
                    self._sock.sendto(data, target)
                    self.counts["bundles"] += 1
                    self.counts["bytes"] += len(data)
                except OSError:  # nobody listening yet, or the network went away: keep going
                    self.counts["send_errors"] += 1


class TargetClaim:
    """A lock file per telemetry target, so a second engine sending to the same HOST:PORT is noticed.

    Two engines feeding one receiver interleave their frames and values on the same addresses (TouchDesigner
    shows channels jumping between two engines). Nothing on the wire can tell, so each engine holds an OS
    file lock named after the target while it sends; the OS drops the lock when the process ends, however it
    ends. A target already claimed gives a warning (the engine still sends: the user may mean it).
    """

    def __init__(self, fh) -> None:
        self._fh = fh

    @classmethod
    def take(cls, host: str, port: int) -> "TargetClaim | None":
        path = Path(tempfile.gettempdir()) / f"vrbridge-telemetry-{host}-{port}.lock"
        try:
            fh = open(path, "a+", encoding="ascii")
        except OSError:
            return None  # no writable temp dir: nothing to compare with, nothing to warn about
        if not _lock(fh):
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            log.warning("telemetry: another engine (pid %s) already sends to %s:%d; a receiver there gets both "
                        "streams mixed on the same addresses. Give this one its own port: --osc-out %s:PORT",
                        holder, host, port, host)
            return None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        return cls(fh)

    def release(self) -> None:
        try:
            self._fh.close()  # closing drops the lock
        except OSError:
            pass


def _lock(fh) -> bool:
    """Exclusive, non-blocking lock on an open file; whether we got it."""
    try:
        if sys.platform == "win32":
            import msvcrt

            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
