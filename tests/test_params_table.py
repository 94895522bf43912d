"""The parameter table and the live store: coercion, ranges, and the thread-safe snapshot contract."""
from __future__ import annotations

import threading

import pytest

from bridge.params import (
    OSC_ROOT, PARAMS, PARAMS_BY_ADDRESS, NotLive, OutOfRange, ParamStore, UnknownParam, WrongType, get_param,
)


def test_every_row_is_well_formed():
    names = [p.name for p in PARAMS]
    assert len(names) == len(set(names))
    for p in PARAMS:
        assert p.osc_address.startswith(OSC_ROOT + "/")
        assert PARAMS_BY_ADDRESS[p.osc_address] is p
        assert p.description and p.description[0].isupper(), p.name
        if p.kind != "action":
            assert p.coerce(p.default) == p.default, p.name  # every default is valid for its own row
        if p.min is not None and p.max is not None:
            assert p.min < p.max, p.name


def test_float_clamps_and_coerces_ints():
    psi = get_param("psi")
    assert psi.coerce(1) == 1.0 and isinstance(psi.coerce(1), float)
    assert psi.coerce(9.5) == psi.max
    assert psi.coerce(-9.5) == psi.min
    with pytest.raises(WrongType, match="psi: expects a number"):
        psi.coerce("0.5")
    with pytest.raises(WrongType, match="finite"):
        psi.coerce(float("nan"))


def test_reject_rows_refuse_out_of_range():
    seed = get_param("seed")
    assert seed.out_of_range == "reject"
    with pytest.raises(OutOfRange, match=r"seed: -1 is outside \[0, "):
        seed.coerce(-1)
    assert seed.coerce(7.0) == 7
    with pytest.raises(WrongType):
        seed.coerce(7.5)


def test_bool_enum_int2_list():
    assert get_param("freeze").coerce(1) is True
    assert get_param("freeze").coerce("off") is False
    with pytest.raises(WrongType):
        get_param("freeze").coerce(2)
    assert get_param("noise_mode").coerce("RANDOM") == "random"
    with pytest.raises(OutOfRange, match="not one of const, random, none"):
        get_param("noise_mode").coerce("loud")
    assert get_param("mix.coarse").coerce([0, 4]) == (0, 4)
    with pytest.raises(WrongType, match="two ints"):
        get_param("mix.coarse").coerce([0])
    assert get_param("sink").coerce("ndi:x") == ("ndi:x",)


def test_store_set_snapshot_listeners():
    store = ParamStore()
    heard = []
    store.add_listener(lambda name, value, source: heard.append((name, value, source)))
    snap_before = store.snapshot()
    assert store.set("psi", 0.25, source="osc") == 0.25
    assert snap_before["psi"] == get_param("psi").default  # a snapshot never changes under a frame
    assert store.snapshot()["psi"] == 0.25
    assert heard == [("psi", 0.25, "osc")]
    with pytest.raises(UnknownParam):
        store.set("nope", 1)
    with pytest.raises(NotLive, match="start-up setting"):
        store.set("network", "x.pkl")
    with pytest.raises(TypeError):
        store.snapshot()["psi"] = 1.0  # read-only


def test_failed_set_changes_nothing_and_broken_listener_is_harmless():
    store = ParamStore()
    store.add_listener(lambda *a: 1 / 0)
    version = store.version
    with pytest.raises(OutOfRange):
        store.set("seed", -5)
    assert store.version == version and store.get("seed") == get_param("seed").default
    store.set("seed", 5)
    assert store.get("seed") == 5


def test_concurrent_writers_and_snapshots_stay_consistent():
    store = ParamStore()

    def writer(offset):
        for i in range(500):
            store.set("seed", offset + i)

    threads = [threading.Thread(target=writer, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for _ in range(200):
        snap = store.snapshot()
        assert isinstance(snap["seed"], int)
    for t in threads:
        t.join()
    assert store.version == 2000
