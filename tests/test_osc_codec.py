"""The OSC codec and address patterns, cross-checked against python-osc (an independent implementation)."""
from __future__ import annotations

import math
import struct

import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.osc import codec
from bridge.osc.patterns import BadPattern, matches


def _pyosc_message(address, *typed):
    builder = OscMessageBuilder(address)
    for tag, value in typed:
        builder.add_arg(value, tag)
    return builder.build().dgram


def test_our_messages_parse_in_python_osc():
    data = codec.encode_message("/vrb/mix/coarse", (0, 4))
    msg = OscMessage(data)
    assert msg.address == "/vrb/mix/coarse" and msg.params == [0, 4]
    data = codec.encode_message("/x", (1.5, "dusk", True, False, None, b"\x01\x02\x03", 2**40, 2.25), "fsTFNbhd")
    assert OscMessage(data).params == [1.5, "dusk", True, False, None, b"\x01\x02\x03", 2**40, 2.25]
    assert OscMessage(codec.encode_int_message("/i", -5)).params == [-5]
    assert OscMessage(codec.encode_float_message("/f", 0.5)).params == [0.5]


def test_python_osc_messages_decode_here():
    data = _pyosc_message("/vrb/psi", ("f", 0.75))
    assert codec.decode(data) == codec.Message("/vrb/psi", (0.75,), "f")
    data = _pyosc_message("/a/b", ("i", -7), ("s", "héllo"), ("T", True), ("F", False), ("b", b"xyz"),
                          ("d", 1e300), ("h", -2**50))
    msg = codec.decode(data)
    assert msg.args == (-7, "héllo", True, False, b"xyz", 1e300, -2**50)
    assert msg.typetags == "isTFbdh"


def test_bundles_both_ways_with_timetags():
    builder = OscBundleBuilder(codec.timetag_to_unix(codec.timetag_in(0)) + 5.0)
    builder.add_content(OscMessageBuilder("/vrb/seed").build())
    inner = OscBundleBuilder(0)  # python-osc: 0 means immediately
    inner.add_content(OscMessageBuilder("/vrb/freeze").build())
    builder.add_content(inner.build())
    packet = codec.decode(builder.build().dgram)
    assert isinstance(packet, codec.Bundle) and len(packet.elements) == 2
    assert abs(codec.timetag_to_unix(packet.timetag) - codec.timetag_to_unix(codec.timetag_in(5.0))) < 0.5
    # our bundles parse in python-osc, nested timetags never run earlier than their parent
    ours = codec.encode_bundle([codec.encode_message("/a", (1,)), codec.encode_bundle([codec.encode_message("/b", ())])],
                               codec.timetag_in(1.0))
    parsed = OscBundle(ours)
    assert parsed.num_contents == 2
    tags = [tag for tag, _ in codec.iter_messages(codec.decode(ours))]
    assert tags[0] == tags[1] != codec.IMMEDIATE


def test_timetag_round_trip():
    for seconds in (0.0, 1.5, 1_700_000_000.123456):
        assert abs(codec.timetag_to_unix(codec.unix_to_timetag(seconds)) - seconds) < 1e-6


def _msg_bytes(address: str, tags: str, body: bytes = b"") -> bytes:
    return codec._pad_str(address) + codec._pad_str("," + tags) + body


@pytest.mark.parametrize("data, detail", [
    (b"", "not a positive multiple of 4"),
    (b"/ab", "not a positive multiple of 4"),
    (b"xyz\x00", "neither '/'"),
    (b"/abc", "no NUL terminator"),
    (b"/a\x00x", "non-NUL padding"),
    (codec._pad_str("/a") + codec._pad_str("ff"), "does not start with ','"),
    (_msg_bytes("/a", "i"), "int32 needs 4 bytes"),
    (_msg_bytes("/a", "b", struct.pack(">i", 10**6)), "blob needs 1000000 bytes"),
    (_msg_bytes("/a", "b", struct.pack(">i", -4)), "negative"),
    (_msg_bytes("/a", "i", b"\x00" * 8), "bytes left over"),
    (_msg_bytes("/a", "q", b"\x00" * 4), "unsupported type tag 'q'"),
    (_msg_bytes("/a", "[ii]", b"\x00" * 8), "array arguments"),
    (_msg_bytes("/a", "s", b"\xff\xfe\x00\x00"), "not UTF-8"),
    (b"#bundle\x00" + b"\x00" * 4, "bundle timetag needs 8 bytes"),
    (b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", 1000) + b"/a\x00\x00", "element size 1000"),
    (b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", 6) + b"/a\x00\x00,\x00\x00\x00", "element size 6"),
])
def test_malformed_datagrams_are_named(data, detail):
    with pytest.raises(codec.Malformed, match=detail.replace("(", r"\(").replace("[", r"\[")):
        codec.decode(data)


def test_bundle_limits():
    message = codec.encode_message("/a", ())
    deep = message
    for _ in range(codec.MAX_DEPTH + 1):
        deep = codec.encode_bundle([deep])
    with pytest.raises(codec.Malformed, match="nested deeper"):
        codec.decode(deep)
    wide = codec.encode_bundle([message] * (codec.MAX_ELEMENTS + 1))
    with pytest.raises(codec.Malformed, match="more than"):
        codec.decode(wide)
    ok = codec.encode_bundle([message] * 100)
    assert len(list(codec.iter_messages(codec.decode(ok)))) == 100


def test_pack_bundles_respects_the_safe_size_and_keeps_order():
    messages = [codec.encode_float_message(f"/vrb/h1/landmark_{i:02d}/x", i / 100) for i in range(120)]
    bundles = codec.pack_bundles(messages)
    assert len(bundles) > 1
    assert all(len(b) <= codec.SAFE_DATAGRAM for b in bundles)
    decoded = [m for b in bundles for _, m in codec.iter_messages(codec.decode(b))]
    assert [m.address for m in decoded] == [f"/vrb/h1/landmark_{i:02d}/x" for i in range(120)]
    assert math.isclose(decoded[57].args[0], 0.57, rel_tol=1e-6)


@pytest.mark.parametrize("pattern, address, expected", [
    ("/vrb/psi", "/vrb/psi", True),
    ("/vrb/*", "/vrb/psi", True),
    ("/vrb/*", "/vrb/mix/coarse", False),  # '*' never crosses '/'
    ("/vrb/mix/*", "/vrb/mix/coarse", True),
    ("/vrb/p?i", "/vrb/psi", True),
    ("/vrb/p?i", "/vrb/p/i", False),
    ("/vrb/mix/[cf]*", "/vrb/mix/fine", True),
    ("/vrb/mix/[cf]*", "/vrb/mix/middle", False),
    ("/vrb/mix/[!cf]*", "/vrb/mix/middle", True),
    ("/vrb/mix/[a-d]oarse", "/vrb/mix/coarse", True),
    ("/vrb/mix/[a-b]oarse", "/vrb/mix/coarse", False),
    ("/vrb/mix/{coarse,fine}", "/vrb/mix/fine", True),
    ("/vrb/mix/{coarse,fine}", "/vrb/mix/middle", False),
    ("/vrb/{psi,seed}", "/vrb/seed", True),
    ("/h1:*:x", "/h1:wrist:x", True),
    ("/a.b", "/axb", False),  # regex characters are literal
])
def test_patterns(pattern, address, expected):
    assert matches(pattern, address) is expected


@pytest.mark.parametrize("pattern", ["/a/[bc", "/a/{b,c", "/a/b]", "/a/[z-a]", "/a/{b/c}"])
def test_bad_patterns(pattern):
    with pytest.raises(BadPattern):
        matches(pattern, "/a/b")
