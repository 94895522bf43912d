"""The OSC control server: UDP datagrams in, validated parameter changes (and handler calls) out.

One thread owns the socket and does everything in order: check the sender, check the size, decode strictly
(:mod:`bridge.osc.codec`), run bundles now or at their timetag, dispatch each message. Because one thread does
it all, handlers, maps and tickers never race each other.

Dispatch of one message, in this order (all that match run):
  1. handlers added with :meth:`OscServer.add_handler` (other stages: keypoints from TouchDesigner; map routes),
     whose registered pattern is matched against the incoming address;
  2. the parameter table: ``/vrb/<name with dots as slashes>``; the incoming address may itself be an OSC
     pattern (``/vrb/mix/*``) selecting several live parameters. Every selected value is validated before
     any is applied, so a bad message changes nothing.
Nothing matched -> ``unknown``. Every failure is counted by class (``stats()``), logged rate-limited and given
to the error listeners (telemetry sends it on ``/vrb/error s:code s:detail``). The thread never dies.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import logging
import select
import socket
import struct
import sys
import threading
import time
from typing import Any, Callable

from bridge.osc import codec
from bridge.osc.net import AllowList, is_loopback, resolve
from bridge.osc.patterns import BadPattern, compile_pattern, is_pattern, matches
from bridge.osc.ratelimit import RateLimiter
from bridge.text import clip_line
from bridge.params import (OSC_ROOT, PARAMS, PARAMS_BY_ADDRESS, Param, ParamError, ParamStore, UnknownParam,
                           WrongType)

log = logging.getLogger(__name__)

Sender = tuple[str, int]
Handler = Callable[[str, tuple, Sender], None]
ErrorListener = Callable[[str, str, Sender], None]
Ticker = Callable[[float], bool]

DEFAULT_MAX_PACKET = 8192  # bytes; larger datagrams are "oversize" (a control message is a few dozen bytes)
DEFAULT_MAX_AHEAD_S = 60.0  # timetags further in the future are refused ("timetag")
MAX_PENDING = 4096  # scheduled messages waiting for their timetag
RECENT = 20  # incoming messages remembered for health (what arrived, from whom, what became of it)
DEFAULT_RCVBUF = 4 << 20  # bytes of kernel receive buffer asked for: absorbs a burst from a busy rig
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40 if sys.platform.startswith("linux") else None)
TICK_S = 0.01  # ticker period while any ticker is active (slews, fades, LFO)
IDLE_S = 0.25  # longest sleep when nothing is scheduled

# Every class of bad input, each counted separately (the keys of stats()['errors']).
ERROR_CODES = ("unknown", "type", "arity", "range", "not_live", "pattern", "malformed", "oversize", "denied",
               "timetag", "busy", "handler", "invalid", "lfo", "route", "io", "internal")


class WrongArity(WrongType):
    """Too many or too few arguments for the address (e.g. one int for ``/vrb/mix/coarse ii``)."""

    code = "arity"


class TimetagError(ParamError):
    code = "timetag"


_SKIP = object()  # a button release (0) on an action address: nothing to do, not an error


class OscServer:
    """UDP OSC control input for one :class:`ParamStore`. ``start()``, ``close()``, ``stats()`` (a service)."""

    kind = "osc-in"

    def __init__(self, params: ParamStore, host: str = "127.0.0.1", port: int | None = 7700, allow=(),
                 max_packet: int = DEFAULT_MAX_PACKET, max_ahead_s: float = DEFAULT_MAX_AHEAD_S,
                 rcvbuf: int = DEFAULT_RCVBUF):
        """``port=None``: no socket (osc_in off); the thread still runs tickers and :meth:`dispatch` works."""
        self.params = params
        self.host = resolve(host, "osc_in")
        self.port = port
        self.allow = allow if isinstance(allow, AllowList) else AllowList(allow)
        if not is_loopback(self.host) and not self.allow:
            from bridge.cli import UserError

            raise UserError(f"osc_in {host}:{port} listens beyond this computer: set osc_allow to the sender "
                            f"IPs too (e.g. --osc-allow 192.168.1.20), or listen on 127.0.0.1")
        self.max_packet = max_packet
        self.max_ahead_s = max_ahead_s
        self.rcvbuf_asked = rcvbuf
        self.rcvbuf = 0  # what the OS granted (bytes)
        self.kernel_drops: int | None = None  # datagrams the kernel dropped (buffer full); None: OS won't say
        self._handlers: list[tuple[str, Handler]] = []
        self._error_listeners: list[ErrorListener] = []
        self._tickers: list[Ticker] = []
        self._pending: list[tuple[float, int, codec.Message, Sender]] = []
        self._seq = itertools.count()
        self._sock: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()  # lets close() and wake_tickers() interrupt select
        self._wake_r.setblocking(False)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._log_limit = RateLimiter(per_second=1.0, burst=3)
        self._ticking = False
        self.counts = dict.fromkeys(("datagrams", "messages", "bundles", "applied", "handled", "clamped",
                                     "scheduled", "late", "errors"), 0)
        self.errors = dict.fromkeys(ERROR_CODES, 0)
        self.last_error = ""
        # The engine holds the control port, so `oscdump 7700` cannot watch it: this is the engine's own monitor.
        self.recent: collections.deque[str] = collections.deque(maxlen=RECENT)

    # -- wiring (call before or after start; from any thread) ------------------------------------------
    def add_handler(self, address_pattern: str, fn: Handler) -> None:
        """Call ``fn(address, args, sender)`` for every incoming message whose address matches the pattern.

        The pattern uses OSC syntax (``/vrb/in/h[12]/*/x``, ``h1:*``) and is matched against the address
        as received. A ParamError raised by ``fn`` is answered like any bad input (its ``code``); any other
        exception is counted as ``handler``. Handlers run on the server thread: keep them short.
        """
        compile_pattern(address_pattern)  # a bad pattern fails here, at wiring time, not per message
        self._handlers.append((address_pattern, fn))

    def remove_handler(self, address_pattern: str, fn: Handler) -> None:
        if (address_pattern, fn) in self._handlers:
            self._handlers.remove((address_pattern, fn))

    def add_error_listener(self, fn: ErrorListener) -> None:
        """``fn(code, detail, sender)`` for every rejected input (telemetry answers on /vrb/error)."""
        self._error_listeners.append(fn)

    def add_ticker(self, fn: Ticker) -> None:
        """``fn(now) -> active`` runs on the server thread every 10 ms while it returns True (slews, fades)."""
        self._tickers.append(fn)
        self._ticking = True

    def wake_tickers(self) -> None:
        """A ticker that just became active (a fade started from another thread) asks for prompt ticks."""
        self._ticking = True
        self._poke()

    def _poke(self) -> None:
        try:
            self._wake_w.send(b"!")
        except OSError:  # buffer full (already poked) or closed
            pass

    # -- service ---------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.port is not None:
            self._open_socket()
        self._thread = threading.Thread(target=self._run, name="osc-in", daemon=True)
        self._thread.start()

    def _open_socket(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rcvbuf = _enlarge_receive_buffer(sock, self.rcvbuf_asked)
        self.kernel_drops = 0 if _count_kernel_drops(sock) else None
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            from bridge.cli import UserError

            raise UserError(f"osc_in: cannot listen on {self.host}:{self.port} ({exc.strerror or exc}); choose "
                            f"another port with --osc-in {self.host}:PORT, or --osc-in off") from None
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        log.info("OSC control on udp://%s:%d%s", self.host, self.port,
                 f" (allowed senders: {', '.join(map(str, self.allow.networks))})" if self.allow else "")
        if self.rcvbuf < self.rcvbuf_asked:
            log.info("OSC receive buffer %d KiB (asked %d KiB); a burst beyond it is dropped by the kernel%s. "
                     "Raise it with: sysctl -w net.core.rmem_max=%d", self.rcvbuf >> 10, self.rcvbuf_asked >> 10,
                     " and counted (kernel_drops)" if self.kernel_drops is not None else "", self.rcvbuf_asked)

    def close(self) -> None:
        self._stop.set()
        self._poke()
        if self._thread is not None:
            self._thread.join(2.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._wake_r.close()
        self._wake_w.close()

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "pending": len(self._pending), "errors_by_code": dict(self.errors),
                "last_error": self.last_error, "port": self.port, "rcvbuf": self.rcvbuf, "recent": list(self.recent),
                **({"kernel_drops": self.kernel_drops} if self.kernel_drops is not None else {})}

    def describe(self) -> str:
        return f"osc-in udp://{self.host}:{self.port}" if self.port is not None else "osc-in off"

    # -- the server thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                waiting = [self._wake_r] if self._sock is None else [self._sock, self._wake_r]
                readable = select.select(waiting, [], [], self._sleep_time())[0]
                if self._wake_r in readable:
                    self._wake_r.recv(4096)
                if self._sock is not None and self._sock in readable:
                    self._drain()
                self._run_due()
                self._run_tickers()
            except Exception as exc:  # noqa: BLE001 - the control thread must survive anything
                self._fail("internal", f"{type(exc).__name__}: {exc}", ("", 0))
                time.sleep(0.01)

    def _sleep_time(self) -> float:
        wait = TICK_S if self._ticking else IDLE_S
        if self._pending:
            wait = min(wait, max(0.0, self._pending[0][0] - time.monotonic()))
        return wait

    def _drain(self) -> None:
        """Read everything waiting (bounded), so a burst is absorbed before the next timer check."""
        for _ in range(512):
            try:
                data, sender = self._receive()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ICMP errors surfacing on some platforms
                self._fail("internal", f"recv: {exc}", ("", 0))
                return
            try:
                self.handle_datagram(data, sender)
            except Exception as exc:  # noqa: BLE001
                self._fail("internal", f"{type(exc).__name__}: {exc}", sender)

    def _receive(self) -> tuple[bytes, Sender]:
        """One datagram; where the OS reports it (Linux), also the socket's running count of kernel drops."""
        if self.kernel_drops is None:
            return self._sock.recvfrom(65536)
        data, ancillary, _, sender = self._sock.recvmsg(65536, socket.CMSG_SPACE(4))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(payload) >= 4:
                self.kernel_drops = struct.unpack("=I", payload[:4])[0]
        return data, sender

    def _run_due(self) -> None:
        now = time.monotonic()
        while self._pending and self._pending[0][0] <= now:
            _, _, message, sender = heapq.heappop(self._pending)
            self.dispatch(message.address, message.args, sender)

    def _run_tickers(self) -> None:
        if not self._ticking:
            return
        now = time.monotonic()
        active = False
        for ticker in list(self._tickers):
            try:
                active = bool(ticker(now)) or active
            except ParamError as exc:
                self._fail(exc.code, str(exc), ("", 0))
            except Exception as exc:  # noqa: BLE001
                self._fail("internal", f"ticker {getattr(ticker, '__name__', ticker)}: {exc}", ("", 0))
        self._ticking = active

    # -- one datagram ----------------------------------------------------------------------------------
    def handle_datagram(self, data: bytes, sender: Sender) -> None:
        """Check, decode and run (or schedule) one datagram. Called on the server thread."""
        self.counts["datagrams"] += 1
        if not self.allow.allows(sender[0]):
            self._fail("denied", f"sender {sender[0]} is not in osc_allow", sender)
            self.note_refused(sender, "(datagram)", "denied")
            return
        if len(data) > self.max_packet:
            self._fail("oversize", f"{len(data)} byte datagram (at most {self.max_packet})", sender)
            self.note_refused(sender, f"({len(data)} bytes)", "oversize")
            return
        try:
            packet = codec.decode(data)
        except codec.Malformed as exc:
            self._fail("malformed", exc.detail, sender)
            self.note_refused(sender, "(not OSC)", "malformed")
            return
        if isinstance(packet, codec.Message):
            self.counts["messages"] += 1
            self.dispatch(packet.address, packet.args, sender)
            return
        self.counts["bundles"] += 1
        self._run_bundle(packet, sender)

    def _run_bundle(self, bundle: codec.Bundle, sender: Sender) -> None:
        timed = list(codec.iter_messages(bundle))
        self.counts["messages"] += len(timed)
        now_unix, now_mono = time.time(), time.monotonic()
        latest = max(tag for tag, _ in timed) if timed else codec.IMMEDIATE
        if latest != codec.IMMEDIATE and codec.timetag_to_unix(latest) - now_unix > self.max_ahead_s:
            ahead = codec.timetag_to_unix(latest) - now_unix
            self._fail("timetag", f"bundle timetag {ahead:.1f} s ahead (at most {self.max_ahead_s:g} s)", sender)
            return
        future = [(tag, m) for tag, m in timed if tag != codec.IMMEDIATE and codec.timetag_to_unix(tag) > now_unix]
        if len(self._pending) + len(future) > MAX_PENDING:
            self._fail("busy", f"{len(self._pending)} scheduled messages already waiting", sender)
            return
        for tag, message in timed:
            if tag == codec.IMMEDIATE:
                self.dispatch(message.address, message.args, sender)
                continue
            delay = codec.timetag_to_unix(tag) - now_unix
            if delay <= 0:
                self.counts["late"] += 1  # late bundles apply at once (OSC 1.0)
                self.dispatch(message.address, message.args, sender)
            else:
                self.counts["scheduled"] += 1
                heapq.heappush(self._pending, (now_mono + delay, next(self._seq), message, sender))

    # -- one message -----------------------------------------------------------------------------------
    def dispatch(self, address: str, args: tuple, sender: Sender = ("api", 0)) -> bool:
        """Run one message now; return whether something took it. Bad input is answered, never raised."""
        errors_before = self.counts["errors"]
        took = self._dispatch(address, args, sender)
        outcome = self.last_error.split(":", 1)[0] if self.counts["errors"] > errors_before else (
            "ok" if took else "ignored")
        self.recent.append(_describe_message(sender, address, args, outcome))
        return took

    def _dispatch(self, address: str, args: tuple, sender: Sender) -> bool:
        try:
            handled = self._call_handlers(address, args, sender)
            params = self._select_params(address, exact_required=not handled)
        except ParamError as exc:
            self._fail(exc.code, str(exc), sender)
            return False
        except BadPattern as exc:
            self._fail("pattern", str(exc), sender)
            return False
        if not params:
            return handled
        try:
            values = [(p, self._value_from_args(p, args)) for p in params]
        except ParamError as exc:
            self._fail(exc.code, str(exc), sender)
            return handled
        for param, value in values:
            if value is not _SKIP:
                self._apply(param, value, args, sender)
        return True

    def _call_handlers(self, address: str, args: tuple, sender: Sender) -> bool:
        handled = False
        for pattern, fn in list(self._handlers):
            if not matches(pattern, address):
                continue
            handled = True
            try:
                fn(address, args, sender)
                self.counts["handled"] += 1
            except ParamError as exc:
                self._fail(exc.code, str(exc), sender)
            except Exception as exc:  # noqa: BLE001 - a broken handler must not take the server down
                self._fail("handler", f"{address}: {type(exc).__name__}: {exc}", sender)
        return handled

    def _select_params(self, address: str, exact_required: bool) -> list[Param]:
        if is_pattern(address):
            compiled = compile_pattern(address)
            found = [p for p in PARAMS if p.live and compiled.match(p.osc_address)]
            if not found and exact_required:
                raise UnknownParam(address, "pattern matches no live parameter or handler")
            return found
        param = PARAMS_BY_ADDRESS.get(address)
        if param is None:
            if exact_required:
                hint = "" if address.startswith(OSC_ROOT + "/") else f" (parameters live under {OSC_ROOT}/)"
                raise UnknownParam(address, f"no such address{hint}")
            return []
        return [param]

    @staticmethod
    def _value_from_args(param: Param, args: tuple) -> Any:
        """The one value a message carries for ``param``, checked against its type tags."""
        if param.kind == "int2":
            if len(args) != 2:
                raise WrongArity(param.osc_address, f"expects 2 ints (start end), got {len(args)} arguments")
            return param.coerce(list(args))
        if param.kind == "action":
            if len(args) > 1:
                raise WrongArity(param.osc_address, f"takes at most 1 argument, got {len(args)}")
            if not args or args[0] is None:
                return None
            arg = args[0]
            if isinstance(arg, (bool, int, float)) and not isinstance(arg, str):
                return "" if arg else _SKIP  # a button: press (non-zero) fires, release (0) does nothing
            return param.coerce(arg)
        if len(args) != 1:
            raise WrongArity(param.osc_address, f"expects 1 argument ({param.osc_typetags}), got {len(args)}")
        return param.coerce(args[0])

    def _apply(self, param: Param, value: Any, args: tuple, sender: Sender) -> None:
        try:
            self.params.set(param.name, value, source="osc")
        except ParamError as exc:  # e.g. the value became invalid between validation and set
            self._fail(exc.code, str(exc), sender)
            return
        self.counts["applied"] += 1
        if param.kind in ("float", "int") and args[0] != value and not isinstance(args[0], bool):
            self.counts["clamped"] += 1  # out_of_range="clamp": applied at the bound, and said so
            self._notify("clamped", f"{param.osc_address}: {args[0]} clamped to {value}", sender)

    # -- failures --------------------------------------------------------------------------------------
    def report_error(self, code: str, detail: str, sender: Sender = ("", 0)) -> None:
        """For collaborators (maps, presets) that find bad input outside ``dispatch``: count and answer it."""
        self._fail(code, detail, sender)

    def note_refused(self, sender: Sender, what: str, code: str) -> None:
        self.recent.append(_describe_message(sender, what, (), code))

    def _fail(self, code: str, detail: str, sender: Sender) -> None:
        code = code if code in self.errors else "internal"
        detail = clip_line(detail)  # it may quote an 8 KB address or string back
        self.errors[code] += 1
        self.counts["errors"] += 1
        self.last_error = f"{code}: {detail}"
        self._notify(code, detail, sender)

    def _notify(self, code: str, detail: str, sender: Sender) -> None:
        """Log (rate-limited) and tell the error listeners; telemetry rate-limits what it sends."""
        if self._log_limit.allow(code):
            more = self._log_limit.take_suppressed(code)
            log.warning("OSC %s from %s: %s%s", code, sender[0] or "engine", detail,
                        f" (+{more} more like it)" if more else "")
        for listener in list(self._error_listeners):
            try:
                listener(code, detail, sender)
            except Exception:  # noqa: BLE001
                pass


def _enlarge_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for ``size`` bytes of receive buffer (beyond the OS limit where this process may); return what
    was granted. Linux reports double the usable size, so the granted figure is halved there."""
    force = getattr(socket, "SO_RCVBUFFORCE", None)  # Linux, with CAP_NET_ADMIN: past net.core.rmem_max
    for option in filter(None, (force, socket.SO_RCVBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            break
        except OSError:
            continue
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return granted // 2 if sys.platform.startswith("linux") else granted


def _count_kernel_drops(sock: socket.socket) -> bool:
    """Ask the OS to attach its drop counter to each datagram (SO_RXQ_OVFL, Linux); whether it will."""
    if SO_RXQ_OVFL is None:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        return True
    except OSError:
        return False


def _describe_message(sender: Sender, address: str, args: tuple, outcome: str) -> str:
    """One line of the recent-messages monitor: ``12:03:01.250 127.0.0.1 /vrb/psi 0.5 -> ok``."""
    stamp = time.strftime("%H:%M:%S", time.localtime()) + f".{int(time.time() * 1000) % 1000:03d}"
    shown = " ".join(clip_line(repr(a) if isinstance(a, str) else str(a), 40) for a in args[:4])
    more = f" (+{len(args) - 4})" if len(args) > 4 else ""
    return f"{stamp} {sender[0] or 'engine'} {clip_line(address, 80)} {shown}{more} -> {outcome}".replace("  ", " ")
