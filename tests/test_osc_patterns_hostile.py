"""OSC address patterns stay fast whatever a datagram carries: every wildcard kind, hostile sizes, a time bound.

A backtracking matcher took 113 s on ``/vrb/****************************x`` (one 44-byte datagram). The
matcher must be linear in pattern and address length; the bounds here are generous (a linear matcher takes a
few milliseconds) so they fail only on super-linear behaviour, not on a slow machine.
"""
from __future__ import annotations

import random
import re
import socket
import time

import pytest

from bridge.osc import codec
from bridge.osc.patterns import compile_pattern, matches
from bridge.osc.server import OscServer
from bridge.params import PARAMS, ParamStore
from conftest import wait_for

LIVE_ADDRESSES = [p.osc_address for p in PARAMS if p.live]
N = 8000  # the control server's datagram limit is 8 KB: no pattern can be longer

HOSTILE = {
    "star": "/vrb/" + "*" * N + "x",
    "star_then_match": "/vrb/" + "*" * N + "i",
    "question": "/vrb/" + "?*" * (N // 2) + "x",
    "set": "/vrb/" + "[a-z]*" * (N // 6) + "x",
    "negated_set": "/vrb/" + "[!q]*" * (N // 6) + "x",
    "alternatives": "/vrb/" + "{a,b,ps,psi}*" * (N // 13) + "x",
    "wide_alternatives": "/vrb/{" + ",".join(f"w{i}" for i in range(N // 6)) + "}",
    "mixed": "/vrb/" + "*[a-z]?{m,mi}" * (N // 14),
    "many_parts": "/" + "/".join(["*a"] * (N // 3)),
    "short_44_bytes": "/vrb/****************************x",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_pattern_against_every_address_is_fast(name):
    pattern = HOSTILE[name]
    start = time.perf_counter()
    compiled = compile_pattern(pattern)
    hits = [a for a in LIVE_ADDRESSES if compiled.match(a)]
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"{name}: {elapsed:.2f} s for {len(pattern)} characters"
    assert hits == (["/vrb/psi"] if name == "star_then_match" else [])


def test_long_hostile_address_against_a_handler_pattern_is_fast():
    address = "/vrb/in/h1/" + "a" * N
    start = time.perf_counter()
    for pattern in ("/vrb/in/h[12]/*", "/vrb/in/h?/*a*a*a*a*b", "/vrb/in/h1/{a,aa,aaa}*{b,ab}"):
        assert matches(pattern, address) is (pattern == "/vrb/in/h[12]/*")
    assert time.perf_counter() - start < 0.5


def _reference_regex(pattern: str) -> re.Pattern:
    """An independent (backtracking) translation, safe on the short patterns used for cross-checking."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.index("]", i)
            body = pattern[i + 1:end]
            neg = body.startswith("!")
            out.append("[" + ("^/" if neg else "") + (body[1:] if neg else body) + "]")
            i = end
        elif ch == "{":
            end = pattern.index("}", i)
            out.append("(?:" + "|".join(map(re.escape, pattern[i + 1:end].split(","))) + ")")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z")


def test_agrees_with_a_regex_translation_on_random_short_patterns():
    rng = random.Random(7)
    pieces = ["*", "?", "[a-c]", "[!b]", "{a,bc,}", "a", "b", "c", "/"]
    addresses = ["/" + "/".join("".join(rng.choice("abc") for _ in range(rng.randint(0, 4)))
                                for _ in range(rng.randint(1, 3))) for _ in range(60)]
    checked = 0
    for _ in range(400):
        pattern = "/" + "".join(rng.choice(pieces) for _ in range(rng.randint(1, 7)))
        reference = _reference_regex(pattern)
        for address in addresses:
            assert matches(pattern, address) is bool(reference.match(address)), (pattern, address)
            checked += 1
    assert checked == 400 * 60


def test_engine_keeps_serving_control_after_a_hostile_datagram():
    """Real UDP: the frozen-engine datagram, then an ordinary message that must apply within a second."""
    store = ParamStore()
    server = OscServer(store, "127.0.0.1", 0)
    server.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for pattern in HOSTILE.values():
                data = codec.encode_message(pattern, [1.0])
                if len(data) <= server.max_packet:
                    sock.sendto(data, ("127.0.0.1", server.port))
            sent = time.monotonic()
            sock.sendto(codec.encode_message("/vrb/psi", [0.25]), ("127.0.0.1", server.port))
            assert wait_for(lambda: store.get("psi") == pytest.approx(0.25), timeout=5.0)
            assert time.monotonic() - sent < 1.0
        assert server.errors["unknown"] >= 5  # the patterns matched nothing: counted, not run
    finally:
        server.close()
