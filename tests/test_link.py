"""Ableton Link (aalink) with two real peers in this process on loopback: a bpm set on one engine's store
reaches the other through the Link session, and both beat phases follow the session's beat."""
from __future__ import annotations

import time

import pytest

from bridge.osc.tempo import Tempo
from bridge.params import ParamStore
from test_osc_support import wait_until


def test_two_peers_agree_on_tempo_and_phase():
    pytest.importorskip("aalink")
    from bridge.link import LinkService

    stores = [ParamStore({"bpm": 120.0}), ParamStore({"bpm": 90.0})]
    tempos = [Tempo(store) for store in stores]
    peers = [LinkService(store, tempo) for store, tempo in zip(stores, tempos)]
    for peer in peers:
        peer.start()
    try:
        if not wait_until(lambda: all(p.peers >= 1 for p in peers), 8.0):
            pytest.skip("Link peers did not find each other: no multicast on this machine's interfaces")
        stores[0].set("bpm", 133.0, source="osc")  # e.g. tapped on the first engine
        assert wait_until(lambda: abs(stores[1].get("bpm") - 133.0) < 0.01, 5.0), stores[1].get("bpm")
        assert peers[1].tempo_changes >= 1
        time.sleep(0.3)  # a few polls: both phases pulled onto the session beat
        now = time.monotonic()
        phases = [t.beats(now) % 1.0 for t in tempos]
        gap = abs(phases[0] - phases[1])
        assert min(gap, 1.0 - gap) < 0.05, phases
    finally:
        for peer in peers:
            peer.close()


def test_link_is_off_by_default_and_joins_with_the_flag(tmp_path):
    pytest.importorskip("aalink")
    from bridge.link import attach as attach_link
    from bridge.osc import attach as attach_osc
    from test_osc_support import MiniEngine

    engine = MiniEngine()
    attach_osc(engine, {"osc_in": "127.0.0.1:0", "osc_out": [], "oscquery": "off", "presets": str(tmp_path / "p")})
    assert attach_link(engine, {}) is None and attach_link(engine, {"link": False}) is None
    service = attach_link(engine, {"link": True})
    assert service in engine.services
    engine.start()
    try:
        assert wait_until(lambda: service.link is not None, 5.0)
        engine.params.set("bpm", 97.0, source="osc")  # proposed to the session (alone in it: it stays)
        assert wait_until(lambda: abs(float(service.link.tempo) - 97.0) < 0.01, 5.0)
    finally:
        engine.close()
