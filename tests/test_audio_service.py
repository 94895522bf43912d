"""The audio service on the real signal bus: tempo driving the engine's beat clock, hold-then-ease when the
sound stops, one line and a retry for a missing file, and a real PortAudio device (a PulseAudio null sink:
no sound card needed) that vanishes mid-show and comes back."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time

import numpy as np
import pytest

soundfile = pytest.importorskip("soundfile")

from bridge.audio.features import BLOCK, BLOCK_S  # noqa: E402
from bridge.audio.inputs import DeviceInput, FileInput  # noqa: E402
from bridge.audio.service import EASE_S, HOLD_S, SIGNALS, AudioService  # noqa: E402
from bridge.osc.tempo import Tempo  # noqa: E402
from bridge.params import ParamStore  # noqa: E402
from bridge.signals import SignalBus  # noqa: E402
from conftest import IN_CI, require_tool, vrbridge_cmd, wait_for  # noqa: E402
from test_audio_analysis import FILE_RATE, click_track  # noqa: E402


class Clock:
    """Simulated time for the offline tests (the service and the beat clock share it)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_audio_tempo_drives_bpm_and_beat_phase(tmp_path):
    bpm = 128.0
    path = tmp_path / "clicks.wav"
    soundfile.write(path, click_track(bpm, 12.0, start=0.3), FILE_RATE)
    source = FileInput(str(path))
    source.open()
    clock, store, bus = Clock(), ParamStore(), SignalBus()
    tempo = Tempo(store, clock=clock)
    service = AudioService(bus, source, store, tempo, clock=clock)
    bus.declare(*SIGNALS)
    start = clock.t
    for block in source.blocks():
        clock.t += BLOCK_S
        service.process(block)
    assert abs(store.get("bpm") - bpm) / bpm < 0.01, store.get("bpm")
    assert service.tempo_updates > 5
    truth = ((clock.t - start) - 0.3) * bpm / 60.0 % 1.0  # beats since the first click, at the last block's end
    error = abs((tempo.beats() % 1.0 - truth + 0.5) % 1.0 - 0.5)
    assert error * 60.0 / bpm <= 2 * BLOCK_S, (tempo.beats() % 1.0, truth)
    values = bus.values()
    assert values["audio.bpm"] == pytest.approx(service.beat.bpm) and 0 <= values["audio.beat_phase"] < 1
    assert 0 < values["audio.rms"] <= 1 and values["audio.percussive"] > 0


def test_signals_hold_then_ease_to_rest_when_the_sound_stops():
    clock, bus = Clock(), SignalBus()
    service = AudioService(bus, FileInput("unused.wav"), None, clock=clock)
    bus.declare(*SIGNALS)
    noise = np.random.RandomState(0).randn(BLOCK).astype(np.float32) * 0.3
    for _ in range(40):
        clock.t += BLOCK_S
        service.process(noise)
    loud = bus.value("audio.rms")
    assert loud > 0.5
    clock.t += HOLD_S * 0.8
    service._ease()
    assert bus.value("audio.rms") == loud  # held
    clock.t += HOLD_S * 0.2 + EASE_S
    service._ease()
    assert bus.value("audio.rms") == pytest.approx(loud * np.exp(-1), rel=0.05)  # easing, one time constant
    for _ in range(40):
        clock.t += EASE_S / 4
        service._ease()
    assert bus.value("audio.rms") == 0.0  # at rest


def test_missing_file_is_one_line_then_retried_until_it_appears(tmp_path, caplog):
    path = tmp_path / "late.wav"
    bus = SignalBus()
    service = AudioService(bus, FileInput(str(path)), ParamStore())
    with caplog.at_level(logging.WARNING, logger="bridge.audio.service"):
        service.start()
        try:
            assert wait_for(lambda: service._backoff.delay >= 2.0, timeout=10)  # tried at least twice
            lines = [r.getMessage() for r in caplog.records]
            assert len(lines) == 1 and "no such file" in lines[0] and "retrying" in lines[0], lines
            assert bus.stats()["errors"]["audio"] == 1 and service.stats()["status"].startswith("retrying")
            soundfile.write(path, click_track(120.0, 2.0), FILE_RATE)
            assert wait_for(lambda: service.blocks > 20, timeout=15), service.stats()
            assert bus.value("audio.rms") is not None and service.stats()["status"] == "running"
        finally:
            service.close()


# ---- a real PortAudio device: PulseAudio's null sink, its monitor as the input ---------------------------
@pytest.fixture
def pulse(tmp_path, monkeypatch):
    """A private PulseAudio server (own socket) with a null sink; restartable to simulate a vanishing device."""
    exe = shutil.which("pulseaudio")
    if exe is None:
        require_tool("pulseaudio")
    require_tool("paplay")
    pactl = require_tool("pactl")
    runtime = tmp_path / "pulse"
    runtime.mkdir()
    script = runtime / "test.pa"
    script.write_text(f"load-module module-native-protocol-unix auth-anonymous=1 socket={runtime}/native\n"
                      "load-module module-null-sink sink_name=vrbtest\n"
                      "set-default-sink vrbtest\nset-default-source vrbtest.monitor\n")
    env = {**os.environ, "PULSE_SERVER": f"unix:{runtime}/native", "PULSE_RUNTIME_PATH": str(runtime),
           "HOME": str(tmp_path)}
    monkeypatch.setenv("PULSE_SERVER", env["PULSE_SERVER"])  # PortAudio's ALSA "pulse" device connects there
    procs = []

    def start():
        proc = subprocess.Popen([exe, "-n", "-F", str(script), "--daemonize=no", "--exit-idle-time=-1",
                                 "--use-pid-file=no", "--log-target=stderr"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        def ready():  # the socket comes up before the null sink is loaded: wait for the sink itself
            sinks = subprocess.run([pactl, "list", "short", "sinks"], env=env, capture_output=True, text=True)
            return "vrbtest" in sinks.stdout or proc.poll() is not None

        if not wait_for(ready, timeout=10) or proc.poll() is not None:
            message = "pulseaudio would not start here"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        return proc

    def play(path):
        procs.append(subprocess.Popen(["paplay", "-d", "vrbtest", str(path)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    yield start, play
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_devices_command_lists_the_audio_input(pulse):
    start, _ = pulse
    start()
    out = subprocess.run(vrbridge_cmd() + ["devices"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    section = out.stdout.split("audio inputs", 1)[1].split("torch devices", 1)[0]
    assert "pulse" in section and "Hz" in section, out.stdout


@pytest.mark.slow
def test_real_device_vanishes_and_comes_back(tmp_path, pulse, caplog):
    start, play = pulse
    clicks = tmp_path / "clicks.wav"
    soundfile.write(clicks, click_track(120.0, 20.0), FILE_RATE)
    server = start()
    play(clicks)
    bus = SignalBus()
    service = AudioService(bus, DeviceInput("pulse"), ParamStore())
    with caplog.at_level(logging.WARNING, logger="bridge.audio.service"):
        service.start()
        try:
            assert wait_for(lambda: service.onsets >= 3, timeout=15), service.stats()  # the clicks are heard
            server.kill()  # the device goes away mid-show
            server.wait(5)
            assert wait_for(lambda: service.stats()["status"].startswith("retrying"), timeout=10), service.stats()
            assert wait_for(lambda: bus.value("audio.rms") == 0.0, timeout=10)  # eased to rest
            assert len([r for r in caplog.records if "audio" in r.getMessage()]) >= 1
            start()  # it comes back
            play(clicks)
            before = service.onsets
            assert wait_for(lambda: service.onsets >= before + 3, timeout=20), service.stats()  # heard again
            assert service.reconnects == 1 and service.stats()["status"] == "running"
        finally:
            service.close()


@pytest.mark.slow
def test_recording_has_the_sound_muxed_in(tmp_path):
    """--record with --audio file:...: ffprobe finds a video and an audio stream of about the same length."""
    import json

    from bridge.startup import build_engine
    from conftest import STYLEGAN_FIXTURES

    ffprobe = require_tool("ffprobe")
    require_tool("ffmpeg")
    sound = tmp_path / "clicks.wav"
    soundfile.write(sound, click_track(120.0, 2.0), FILE_RATE)
    out = tmp_path / "show.mp4"
    engine = build_engine({"network": str(STYLEGAN_FIXTURES / "sg2_tiny.pkl"), "source": "pattern",
                           "osc_in": "off", "osc_out": [], "oscquery": "off", "preview": "off",
                           "demo_encoder": True, "encoder_size": "64x48", "resolution": "64x48",
                           "record": str(out), "record_fps": 10, "audio": f"file:{sound}"})
    assert any("with sound" in line for line in engine.describe())
    engine.start()
    try:
        assert wait_for(lambda: engine.sinks[0].written >= 30, timeout=60)  # 3 s of video
    finally:
        engine.stop()
    probe = json.loads(subprocess.run([ffprobe, "-v", "error", "-show_streams", "-of", "json", str(out)],
                                      capture_output=True, text=True, check=True).stdout)
    kinds = {s["codec_type"]: s for s in probe["streams"]}
    assert set(kinds) == {"video", "audio"}
    video_s, audio_s = float(kinds["video"]["duration"]), float(kinds["audio"]["duration"])
    assert abs(video_s - audio_s) < 0.5, (video_s, audio_s)
    assert not (tmp_path / "show.audio.wav").exists()


def test_a_broken_block_is_counted_and_the_thread_goes_on(tmp_path):
    """Garbage from a driver (NaN samples, a block that is not numbers) costs at most that block."""
    path = tmp_path / "clicks.wav"
    soundfile.write(path, click_track(120.0, 2.0), FILE_RATE)
    source = FileInput(str(path))
    bus = SignalBus()
    service = AudioService(bus, source, ParamStore())
    real_read = source.read
    calls = {"n": 0}

    def flaky_read(timeout=0.1):
        calls["n"] += 1
        block = real_read(timeout)
        if block is not None and calls["n"] % 10 == 0:
            return np.full(BLOCK, np.nan, np.float32) if calls["n"] % 20 else np.array(["x"] * BLOCK)
        return block

    source.read = flaky_read  # the boundary a real driver sits behind
    service.start()
    try:
        assert wait_for(lambda: service.blocks > 60 and service.errors >= 1, timeout=20), service.stats()
        assert all(np.isfinite(v) for v in bus.values().values())
        assert service._thread.is_alive()
    finally:
        service.close()
