"""Fuzzing the running control server over loopback: random messages, raw bytes and crafted bundles.

Bounded in count (and each example is one datagram), then: the server still answers, and its counters
add up exactly (every message is either applied or counted in one error class).
"""
from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.osc import codec
from bridge.osc.server import OscServer
from bridge.params import PARAMS, ParamStore
from test_osc_support import send_raw, wait_until

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                database=None)

ADDRESSES = [p.osc_address for p in PARAMS] + ["/vrb", "/vrb/", "/", "/x", "/vrb/psi/extra"]
PATH_CHARS = st.sampled_from([chr(c) for c in range(33, 127) if chr(c) not in "?*[]{}#,/"])  # no pattern chars
ARG = st.one_of(
    st.tuples(st.just("i"), st.integers(-2**31, 2**31 - 1)),
    st.tuples(st.just("f"), st.floats(width=32, allow_nan=True, allow_infinity=True)),
    st.tuples(st.just("d"), st.floats(allow_nan=False)),
    st.tuples(st.just("h"), st.integers(-2**63, 2**63 - 1)),
    st.tuples(st.just("s"), st.text(max_size=20).filter(lambda t: "\x00" not in t)),
    st.tuples(st.just("b"), st.binary(max_size=16)),
    st.sampled_from([("T", True), ("F", False), ("N", None), ("I", None)]),
)


@pytest.fixture(scope="module")
def server():
    srv = OscServer(ParamStore(), "127.0.0.1", 0)
    srv.start()
    yield srv
    srv.close()


def _settled(server, datagrams: int) -> None:
    assert wait_until(lambda: server.counts["datagrams"] == datagrams, 5.0, interval=0.001), server.stats()


def _still_answers(server) -> None:
    value = 0.123 if server.params.get("psi") != pytest.approx(0.123) else 0.321
    sent = server.counts["datagrams"] + 1
    send_raw(codec.encode_message("/vrb/psi", (value,), "f"), server.port)
    _settled(server, sent)
    assert wait_until(lambda: server.params.get("psi") == pytest.approx(value), 2.0)


@FUZZ
@given(address=st.one_of(st.sampled_from(ADDRESSES), st.lists(st.text(PATH_CHARS, min_size=1, max_size=8),
                                                                   min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))),
       args=st.lists(ARG, max_size=4))
def test_random_messages_are_applied_or_counted_exactly_once(server, address, args):
    before = dict(server.counts)
    errors_before = sum(v for k, v in server.errors.items())
    data = codec.encode_message(address, [v for _, v in args], "".join(t for t, _ in args))
    send_raw(data, server.port)
    _settled(server, before["datagrams"] + 1)
    applied = server.counts["applied"] - before["applied"]
    errors = sum(server.errors.values()) - errors_before
    assert applied + errors == 1, (address, args, server.stats())


@FUZZ
@given(data=st.binary(min_size=0, max_size=600))
def test_raw_bytes_never_hurt(server, data):
    sent = server.counts["datagrams"] + 1
    send_raw(data, server.port)
    _settled(server, sent)


def _element(draw, depth):
    """A bundle element: a message, a nested bundle, or a lie about its own size."""
    kind = draw(st.sampled_from(["message", "bundle", "bad_size", "huge_count"] if depth < 10 else ["message"]))
    if kind == "message":
        return codec.encode_message(draw(st.sampled_from(ADDRESSES)), (draw(st.integers(0, 3)),))
    if kind == "bundle":
        inner = [_element(draw, depth + 1) for _ in range(draw(st.integers(0, 3)))]
        return codec.encode_bundle(inner, draw(_TIMETAG))
    if kind == "bad_size":
        return b"#bundle\x00" + b"\x00" * 7 + b"\x01" + struct.pack(">i", draw(st.integers(-2**31, 2**31 - 1)))
    return b"#bundle\x00" + b"\x00" * 7 + b"\x01" + (struct.pack(">i", 4) + b"/a\x00\x00") * draw(st.integers(0, 2000))


_TIMETAG = st.one_of(st.just(codec.IMMEDIATE), st.integers(0, 2**64 - 1),
                     st.floats(-2.0, 0.3).map(codec.timetag_in), st.floats(3600, 10**6).map(codec.timetag_in))


@FUZZ
@given(st.data())
def test_crafted_bundles_never_hang_or_kill_the_server(server, data):
    elements = [_element(data.draw, 0) for _ in range(data.draw(st.integers(0, 4)))]
    packet = codec.encode_bundle(elements, data.draw(_TIMETAG))
    sent = server.counts["datagrams"] + 1
    send_raw(packet, server.port)
    _settled(server, sent)


def test_after_the_fuzz_the_server_still_answers_and_nothing_is_stuck(server):
    _still_answers(server)
    assert wait_until(lambda: server.stats()["pending"] == 0, 2.0)  # near-future bundles have run
    assert server._thread.is_alive()
    stats = server.stats()
    assert stats["errors"] == sum(stats["errors_by_code"].values())
    assert stats["errors_by_code"]["internal"] == 0, stats["last_error"]
