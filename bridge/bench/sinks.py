"""``vrbridge bench sinks``: what publishing one frame costs each sink, at 512x512, 1024x1024 and 1920x1080.

* conversion (every sink): RGB -> RGBA (Spout, Syphon) / BGRA / UYVY (NDI), opaque and with a luma key;
* NDI for real: the sink's whole ``_send`` (conversion + ``send_send_video_v2``, unclocked so the figure is
  the CPU cost, not the pacing) on a live sender, with one receiver process attached if one can be started
  (NDI skips encoding when nobody listens, so both are reported).
Spout and Syphon themselves cannot run on Linux; their cost here is the conversion (+ a host copy).
The sink thread does this work, never the render loop; end-to-end fps with sinks attached: ``bench engine``.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIZES = ((512, 512), (1024, 1024), (1920, 1080))


def _picture(width: int, height: int) -> np.ndarray:
    x = np.linspace(0, 255, width)[None, :]
    y = np.linspace(0, 255, height)[:, None]
    return np.ascontiguousarray(np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], -1).astype(np.uint8))


def _time_ms(fn, repeats: int) -> tuple[float, float]:
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000.0)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


def _conversion_rows(repeats: int) -> list[dict]:
    from bridge.sinks.convert import FrameConverter

    rows = []
    for width, height in SIZES:
        rgb = _picture(width, height)
        for layout, sinks in (("rgba", "spout, syphon"), ("bgra", "ndi"), ("uyvy", "ndi (ndi.format uyvy)")):
            for alpha in ("opaque", "luma"):
                if layout == "uyvy" and alpha == "luma":
                    continue
                converter = FrameConverter(layout, {"alpha.mode": alpha})
                p50, p90 = _time_ms(lambda: converter.convert(rgb), repeats)
                rows.append({"what": f"convert {layout} ({sinks})", "alpha": alpha, "size": f"{width}x{height}",
                             "p50_ms": round(p50, 2), "p90_ms": round(p90, 2)})
    return rows


def _ndi_rows(repeats: int) -> tuple[list[dict], list[str]]:
    try:
        from bridge.sinks import ndi
        lib = ndi.load_ndi()
    except Exception as exc:  # noqa: BLE001
        return [], [f"NDI not measured: {exc}"]
    from bridge.frames import RenderedFrame

    rows, notes = [], []
    probe = Path(__file__).resolve().parents[2] / "tests" / "standins" / "ndi_probe.py"
    for width, height in SIZES:
        sink = ndi.NdiSink(f"vrb-bench-{os.getpid()}-{width}", lib, fps=60, clock=False)
        sink._open()
        rgb = _picture(width, height)
        counter = iter(range(10**9))

        def send():
            i = next(counter)
            now = time.monotonic()
            sink._send(RenderedFrame(rgb=rgb, index=i, source_index=i, t_capture=now, t_rendered=now))

        p50, p90 = _time_ms(send, repeats)
        rows.append({"what": "ndi send (bgra, no receiver)", "alpha": "opaque", "size": f"{width}x{height}",
                     "p50_ms": round(p50, 2), "p90_ms": round(p90, 2)})
        if probe.exists():
            receiver = subprocess.Popen([sys.executable, str(probe), "receive", sink.actual_name,
                                         "--frames", str(10**6), "--timeout", "60"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and lib.send_get_no_connections(sink._sender, 100) == 0:
                send()
            if lib.send_get_no_connections(sink._sender, 0):
                p50, p90 = _time_ms(send, repeats)
                rows.append({"what": "ndi send (bgra, 1 receiver)", "alpha": "opaque", "size": f"{width}x{height}",
                             "p50_ms": round(p50, 2), "p90_ms": round(p90, 2)})
            else:
                notes.append(f"no NDI receiver connected at {width}x{height} (NDI_CONFIG_DIR set?)")
            receiver.kill()
            receiver.wait()
        sink._close()
    return rows, notes


def run(args) -> dict:
    import cv2

    cv2.setNumThreads(1)
    repeats = 10 if args.quick else 60
    rows = _conversion_rows(repeats)
    ndi_rows, notes = _ndi_rows(repeats)
    rows += ndi_rows
    notes += ["one thread (cv2.setNumThreads(1)); median and 90th percentile of %d calls" % repeats,
              "Spout/Syphon transport cost is not measurable on Linux; GPU interop (CUDA-OpenGL) is not implemented"]
    return {"rows": rows, "notes": notes}
