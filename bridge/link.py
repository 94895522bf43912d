"""Ableton Link (through aalink): join the booth's Link session for tempo and beat phase. Off by default
(``--link``).

Link needs an asyncio loop: :class:`LinkService` runs one on its own thread. Every ``POLL_S`` it reads the
session's tempo and beat: a tempo change from the session is written to ``bpm`` (source ``link``), and the
beat phase of :class:`bridge.osc.tempo.Tempo` is pulled onto the session's beat, so the LFO, presets and
beat-synced levers follow the booth. A bpm set here (OSC, tap, panel) is proposed to the session, as any
Link peer may. Peers are found by multicast on the local network (and on loopback between programs here).
A session with peers drives the tempo unless ``tempo.source`` names another clock (the arbitration is
:meth:`bridge.osc.tempo.Tempo.claim`).
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from bridge.params import ParamStore

log = logging.getLogger(__name__)
SOURCE = "link"
POLL_S = 0.05
PHASE_TOLERANCE = 0.01  # beats: closer than this is left alone


class LinkUnavailable(RuntimeError):
    pass


class LinkService:
    kind = "link"

    def __init__(self, store: ParamStore, tempo):
        try:
            import aalink  # noqa: F401
        except ImportError:
            raise LinkUnavailable("link: needs aalink (pip install aalink)") from None
        self.store = store
        self.tempo = tempo
        self.link: Any = None
        self.peers = 0
        self.errors = 0
        self.tempo_changes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._last_session_bpm: float | None = None
        self._drives = False  # whether Link drove the tempo at the last poll

    def start(self) -> None:
        self.store.add_listener(self._on_change)
        self._thread = threading.Thread(target=self._run, name="link", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)

    def close(self) -> None:
        self.store.remove_listener(self._on_change)
        if self._loop is not None and self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except Exception as exc:  # noqa: BLE001 - Link is optional: say so once, the show goes on
            self.errors += 1
            log.warning("link stopped: %s", exc)
        finally:
            self._ready.set()
            loop.close()

    async def _main(self) -> None:
        import aalink

        self._stop = asyncio.Event()
        self.link = aalink.Link(float(self.store.get("bpm")))
        self.link.enabled = True
        self._last_session_bpm = float(self.link.tempo)
        self._ready.set()
        try:
            while not self._stop.is_set():
                self._follow()
                try:
                    await asyncio.wait_for(self._stop.wait(), POLL_S)
                except asyncio.TimeoutError:
                    pass
        finally:
            self.link.enabled = False

    def _follow(self) -> None:
        """Take the session's tempo when it changed there (or when Link just took the tempo over), and its
        beat phase, while Link drives the tempo.

        A session with peers claims the tempo (first under ``tempo.source = auto``); alone, Link only echoes
        what was proposed to it, so it does not claim."""
        link = self.link
        self.peers = int(link.num_peers)
        session_bpm = float(link.tempo)
        changed = self._last_session_bpm is None or abs(session_bpm - self._last_session_bpm) > 1e-3
        self._last_session_bpm = session_bpm
        drives = self.peers > 0 and self.tempo.claim(SOURCE)
        took_over, self._drives = drives and not self._drives, drives
        if not drives:
            return
        if (changed or took_over) and abs(session_bpm - float(self.store.get("bpm"))) > 1e-3:
            self.tempo_changes += 1
            self.store.set("bpm", session_bpm, source=SOURCE)
        self.tempo.align(float(link.beat) % 1.0, tolerance=PHASE_TOLERANCE)

    def _on_change(self, name: str, value: Any, source: str) -> None:
        """A bpm set here by anything but Link is proposed to the session."""
        if name == "bpm" and source != SOURCE and self._loop is not None and self.link is not None:
            self._loop.call_soon_threadsafe(self._propose, float(value))

    def _propose(self, bpm: float) -> None:
        if self.link is not None:
            self.link.tempo = bpm
            self._last_session_bpm = bpm

    def stats(self) -> dict[str, Any]:
        return {"peers": self.peers, "tempo": self._last_session_bpm, "errors": self.errors,
                "tempo_changes": self.tempo_changes}

    def describe(self) -> str:
        return "ableton link (tempo and beat phase from the session)"


def attach(engine, settings) -> LinkService | None:
    """The engine builder's hook: join Link when ``link`` is on (needs the OSC bridge's tempo clock)."""
    if not settings.get("link"):
        return None
    from bridge.cli import UserError

    tempo = getattr(getattr(engine, "osc", None), "tempo", None)
    if tempo is None:
        raise UserError("link: needs the tempo clock of the OSC bridge")
    try:
        service = LinkService(engine.params, tempo)
    except LinkUnavailable as exc:
        raise UserError(str(exc)) from None
    engine.add_service(service)
    return service
