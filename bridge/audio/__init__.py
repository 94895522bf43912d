"""Sound as signals: a sound card or a looping file -> features -> ``audio.*`` (and optionally the tempo).

Modules: :mod:`.inputs` (PortAudio devices through sounddevice, files through soundfile), :mod:`.features`
(per-block level, bands, flux, onsets, percussive share), :mod:`.beat` (online tempo and beat phase),
:mod:`.gain` (automatic gain), :mod:`.service` (the thread that runs them and survives a vanishing device).
"""
from __future__ import annotations

from typing import Any, Mapping


def attach(engine, settings: Mapping[str, Any]) -> None:
    """Start the audio service when ``audio`` names an input; ``audio_tempo`` lets it drive bpm and the beat."""
    from bridge.startup import StartupError

    spec = str(settings.get("audio") or "").strip()
    if not spec:
        if settings.get("audio_tempo"):
            raise StartupError("audio_tempo needs an audio input: --audio NAME|INDEX|file:PATH")
        return
    from bridge.audio.inputs import make_input
    from bridge.audio.service import AudioService

    tempo = None
    if settings.get("audio_tempo"):
        tempo = getattr(getattr(engine, "osc", None), "tempo", None)
        if tempo is None:
            raise StartupError("audio_tempo: the engine has no beat clock to drive (the OSC layer is not attached)")
    service = AudioService(engine.signals, make_input(spec), engine.params, tempo)
    engine.add_service(service)
    for sink in engine.sinks:  # the recorder (--record) takes the sound too
        if hasattr(sink, "attach_audio"):
            sink.attach_audio(service)
