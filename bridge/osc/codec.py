"""OSC 1.0 packets: a strict, bounded decoder and a fast encoder.

Why our own instead of python-osc's parser: python-osc's servers hang on some crafted bundles and sleep inside
the receive path on future timetags (see /work/shared/notes/transport.md). A stage show cannot afford either,
so every datagram is decoded here first, with hard limits on nesting and element count, and any defect raises
:class:`Malformed` with a specific detail. Scheduling of timetags is the server's job, not the decoder's.

The encoder packs with ``struct`` directly (~100x faster than python-osc's builder), which keeps per-frame
telemetry cheap; :func:`pack_bundles` splits a list of messages into bundles that each fit one safe datagram.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import struct
import time
from typing import Any, Iterable, Sequence, Union

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
IMMEDIATE = 1  # the OSC timetag meaning "now"
SAFE_DATAGRAM = 1472  # Ethernet MTU 1500 - IP 20 - UDP 8: never fragmented on a real network
MAX_DEPTH = 8  # bundle nesting accepted
MAX_ELEMENTS = 1024  # messages + bundles in one datagram
MAX_ARGS = 256  # arguments in one message

_BUNDLE_TAG = b"#bundle\x00"


class Malformed(ValueError):
    """A datagram that is not valid OSC. ``detail`` says what is wrong and where."""

    code = "malformed"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class Message:
    address: str
    args: tuple[Any, ...]
    typetags: str  # without the leading comma


@dataclasses.dataclass(frozen=True)
class Bundle:
    timetag: int  # 64-bit NTP fixed point; 1 = immediately
    elements: tuple[Union["Message", "Bundle"], ...]


Packet = Union[Message, Bundle]


@dataclasses.dataclass(frozen=True)
class Timetag:
    """A ``t`` argument. Its own type, not an int, so it is never taken for a number (``/vrb/seed t``)."""

    value: int

    def __str__(self) -> str:
        return f"timetag {self.value}"


@dataclasses.dataclass(frozen=True)
class Char:
    """A ``c`` argument. Its own type, not a str, so it is never stored into a string parameter."""

    value: str

    def __str__(self) -> str:
        return f"char {self.value!r}"


# ---------------------------------------------------------------------------------------------------------
# Timetags
# ---------------------------------------------------------------------------------------------------------
def timetag_to_unix(tag: int) -> float:
    return (tag >> 32) - NTP_EPOCH_OFFSET + (tag & 0xFFFFFFFF) / 2**32


def unix_to_timetag(seconds: float) -> int:
    whole = math.floor(seconds)
    frac = int((seconds - whole) * 2**32) & 0xFFFFFFFF
    return ((whole + NTP_EPOCH_OFFSET) << 32) | frac


def timetag_in(seconds_from_now: float) -> int:
    return unix_to_timetag(time.time() + seconds_from_now)


# ---------------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------------
class _Reader:
    __slots__ = ("data", "pos", "elements")

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.elements = 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise Malformed(f"{what} needs {n} bytes at offset {self.pos}, only {len(self.data) - self.pos} left")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def string(self, what: str) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise Malformed(f"{what} at offset {self.pos} has no NUL terminator")
        raw = self.data[self.pos:end]
        padded = (end - self.pos) // 4 * 4 + 4
        if self.pos + padded > len(self.data):
            raise Malformed(f"{what} at offset {self.pos} is not padded to 4 bytes")
        if any(self.data[end:self.pos + padded]):
            raise Malformed(f"{what} at offset {self.pos} has non-NUL padding")
        self.pos += padded
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed(f"{what} at offset {self.pos - padded} is not UTF-8") from None

    def blob(self) -> bytes:
        (size,) = struct.unpack(">i", self.take(4, "blob size"))
        if size < 0:
            raise Malformed(f"blob size {size} is negative")
        data = self.take(size, "blob")
        self.take(-size % 4, "blob padding")
        return data


def _read_arg(reader: _Reader, tag: str) -> Any:
    if tag == "i":
        return struct.unpack(">i", reader.take(4, "int32"))[0]
    if tag == "f":
        return struct.unpack(">f", reader.take(4, "float32"))[0]
    if tag in "sS":
        return reader.string("string argument")
    if tag == "b":
        return reader.blob()
    if tag == "h":
        return struct.unpack(">q", reader.take(8, "int64"))[0]
    if tag == "d":
        return struct.unpack(">d", reader.take(8, "float64"))[0]
    if tag == "t":
        return Timetag(struct.unpack(">Q", reader.take(8, "timetag"))[0])
    if tag == "c":
        return Char(chr(struct.unpack(">I", reader.take(4, "char"))[0] & 0x10FFFF))
    if tag in "rm":
        return reader.take(4, "rgba/midi")
    if tag == "T":
        return True
    if tag == "F":
        return False
    if tag == "N":
        return None
    if tag == "I":
        return math.inf
    raise Malformed(f"unsupported type tag {tag!r}")


def _decode_message(reader: _Reader, end: int) -> Message:
    address = reader.string("address")
    if not address.startswith("/"):
        raise Malformed(f"address {address[:40]!r} does not start with '/'")
    if reader.pos >= end:  # OSC 1.0 allows a message with no type tag string: no arguments
        return Message(address, (), "")
    tags = reader.string("type tag string")
    if not tags.startswith(","):
        raise Malformed(f"type tag string {tags[:40]!r} does not start with ','")
    tags = tags[1:]
    if len(tags) > MAX_ARGS:
        raise Malformed(f"{len(tags)} arguments (at most {MAX_ARGS})")
    if "[" in tags or "]" in tags:
        raise Malformed("array arguments ([ ]) are not supported")
    args = tuple(_read_arg(reader, tag) for tag in tags)
    if reader.pos != end:
        raise Malformed(f"{end - reader.pos} bytes left over after the arguments of {address[:60]}")
    return Message(address, args, tags)


def _decode(reader: _Reader, end: int, depth: int) -> Packet:
    reader.elements += 1
    if reader.elements > MAX_ELEMENTS:
        raise Malformed(f"more than {MAX_ELEMENTS} elements in one datagram")
    if reader.data.startswith(_BUNDLE_TAG, reader.pos):
        if depth >= MAX_DEPTH:
            raise Malformed(f"bundles nested deeper than {MAX_DEPTH}")
        reader.pos += len(_BUNDLE_TAG)
        (timetag,) = struct.unpack(">Q", reader.take(8, "bundle timetag"))
        elements = []
        while reader.pos < end:
            (size,) = struct.unpack(">i", reader.take(4, "bundle element size"))
            if size <= 0 or size % 4 or reader.pos + size > end:
                raise Malformed(f"bundle element size {size} at offset {reader.pos - 4} is invalid")
            start = reader.pos
            elements.append(_decode(reader, start + size, depth + 1))
            if reader.pos != start + size:
                raise Malformed(f"bundle element at offset {start} is shorter than its size {size}")
        return Bundle(timetag, tuple(elements))
    return _decode_message(reader, end)


def decode(data: bytes) -> Packet:
    """Decode one datagram into a Message or a Bundle; raise :class:`Malformed` for anything else."""
    if len(data) == 0 or len(data) % 4:
        raise Malformed(f"datagram length {len(data)} is not a positive multiple of 4")
    if data[:1] not in (b"/", b"#"):
        raise Malformed(f"datagram starts with {data[:1]!r}, neither '/' (message) nor '#bundle'")
    reader = _Reader(bytes(data))
    packet = _decode(reader, len(data), 0)
    if reader.pos != len(data):
        raise Malformed(f"{len(data) - reader.pos} bytes after the end of the packet")
    return packet


def iter_messages(packet: Packet, timetag: int = IMMEDIATE) -> Iterable[tuple[int, Message]]:
    """Every message in a packet with the timetag it should run at (a nested bundle never runs earlier)."""
    if isinstance(packet, Message):
        yield timetag, packet
        return
    tag = max(packet.timetag, timetag)
    for element in packet.elements:
        yield from iter_messages(element, tag)


# ---------------------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------------------
def _pad_str(text: str) -> bytes:
    raw = text.encode("utf-8")
    return raw + b"\x00" * (4 - len(raw) % 4)


@functools.lru_cache(maxsize=8192)
def _address_bytes(address: str) -> bytes:
    """Telemetry sends the same few hundred addresses every frame: pad each once."""
    return _pad_str(address)


def infer_tag(value: Any) -> str:
    """The type tag python values get: bool T/F, int i (h beyond 32 bits), float f, str s, bytes b, None N."""
    if value is True:
        return "T"
    if value is False:
        return "F"
    if value is None:
        return "N"
    if isinstance(value, int):
        return "i" if -2**31 <= value < 2**31 else "h"
    if isinstance(value, float):
        return "f"
    if isinstance(value, str):
        return "s"
    if isinstance(value, (bytes, bytearray)):
        return "b"
    if isinstance(value, Timetag):
        return "t"
    if isinstance(value, Char):
        return "c"
    raise TypeError(f"cannot send {type(value).__name__} {value!r} over OSC")


def _pack_arg(tag: str, value: Any) -> bytes:
    if tag == "i":
        return struct.pack(">i", int(value))
    if tag == "f":
        return struct.pack(">f", float(value))
    if tag in "sS":
        return _pad_str(str(value))
    if tag == "b":
        return struct.pack(">i", len(value)) + bytes(value) + b"\x00" * (-len(value) % 4)
    if tag == "h":
        return struct.pack(">q", int(value))
    if tag == "d":
        return struct.pack(">d", float(value))
    if tag == "t":
        return struct.pack(">Q", value.value if isinstance(value, Timetag) else int(value))
    if tag == "c":
        return struct.pack(">I", ord(value.value if isinstance(value, Char) else value))
    if tag in "TFNI":
        return b""
    raise ValueError(f"cannot encode type tag {tag!r}")


def encode_message(address: str, args: Sequence[Any] = (), typetags: str | None = None) -> bytes:
    """One OSC message; ``typetags`` (no comma) overrides inference, e.g. ``"ii"`` or ``"d"``."""
    if not address.startswith("/"):
        raise ValueError(f"OSC address must start with '/': {address!r}")
    tags = typetags if typetags is not None else "".join(infer_tag(a) for a in args)
    if len(tags) != len(args):
        raise ValueError(f"{len(tags)} type tags for {len(args)} arguments")
    body = b"".join(_pack_arg(t, a) for t, a in zip(tags, args))
    return _address_bytes(address) + _pad_str("," + tags) + body


def encode_float_message(address: str, value: float) -> bytes:
    """The telemetry hot path: one float (no inference)."""
    return _address_bytes(address) + b",f\x00\x00" + struct.pack(">f", value)


def encode_int_message(address: str, value: int) -> bytes:
    """The telemetry hot path: one int32 (no inference)."""
    return _address_bytes(address) + b",i\x00\x00" + struct.pack(">i", value)


def encode_bundle(elements: Iterable[bytes], timetag: int = IMMEDIATE) -> bytes:
    parts = [_BUNDLE_TAG, struct.pack(">Q", timetag)]
    for element in elements:
        parts.append(struct.pack(">i", len(element)))
        parts.append(element)
    return b"".join(parts)


BUNDLE_OVERHEAD = 16  # "#bundle\0" + timetag


def pack_bundles(messages: Sequence[bytes], limit: int = SAFE_DATAGRAM, timetag: int = IMMEDIATE) -> list[bytes]:
    """Group encoded messages into as few bundles as possible, each at most ``limit`` bytes.

    A single message too big for ``limit`` is sent alone in its own bundle (the caller chose to make it).
    """
    bundles: list[bytes] = []
    current: list[bytes] = []
    size = BUNDLE_OVERHEAD
    for msg in messages:
        cost = 4 + len(msg)
        if current and size + cost > limit:
            bundles.append(encode_bundle(current, timetag))
            current, size = [], BUNDLE_OVERHEAD
        current.append(msg)
        size += cost
    if current:
        bundles.append(encode_bundle(current, timetag))
    return bundles
