"""An independent NDI peer, run as its own process by tests/test_sinks_ndi*.py (real NDI, not a stand-in).

It uses ndi-python directly and none of this project's code, so it behaves like TouchDesigner's NDI In /
NDI Out TOPs would.

``receive NAME``: find a source whose name contains NAME (discovery as configured by NDI_CONFIG_DIR), receive
--frames video frames as BGRA, write one JSON line per frame to stdout (size, FourCC, frame rate, timecode,
per-frame metadata); with --save also store every frame's pixels in an .npz file.
Exit status: 0 all frames received, 3 source not found, 4 too few frames before --timeout.

``send NAME``: publish a moving test picture (--size WxH, --fps, clocked) for --seconds, printing
``ready`` once the sender exists. Frame i is ``gradient + 4 * i`` (mod 256) so a receiver can check content.

    python tests/standins/ndi_probe.py receive NAME --frames 5 [--save out.npz] [--timeout 10]
    python tests/standins/ndi_probe.py send NAME --seconds 5 [--size 320x240] [--fps 30]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def find_source(ndi, name: str, deadline: float):
    finder = ndi.find_create_v2(ndi.FindCreate())
    try:
        while time.monotonic() < deadline:
            ndi.find_wait_for_sources(finder, 200)
            for source in ndi.find_get_current_sources(finder):
                if name in source.ndi_name:
                    return source
        return None
    finally:
        ndi.find_destroy(finder)


def moving_picture(width: int, height: int, i: int) -> np.ndarray:
    """(H, W, 3) RGB: a smooth gradient shifted by 4 * i (smooth, so codec loss stays small)."""
    x = np.linspace(0, 200, width)[None, :]
    y = np.linspace(0, 200, height)[:, None]
    base = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1)
    return ((base + 4 * i) % 256).astype(np.uint8)


def send(ndi, args) -> int:
    width, height = (int(v) for v in args.size.split("x"))
    create = ndi.SendCreate()
    create.ndi_name = args.name
    create.clock_video = True
    sender = ndi.send_create(create)
    if sender is None:
        return 5
    video = ndi.VideoFrameV2()
    video.FourCC = ndi.FOURCC_VIDEO_TYPE_BGRA
    video.frame_rate_N, video.frame_rate_D = int(args.fps), 1
    print("ready", flush=True)
    end = time.monotonic() + args.seconds
    i = 0
    while time.monotonic() < end:
        rgb = moving_picture(width, height, i)
        bgra = np.ascontiguousarray(np.dstack([rgb[:, :, ::-1], np.full((height, width), 255, np.uint8)]))
        video.data = bgra
        ndi.send_send_video_v2(sender, video)
        i += 1
    ndi.send_destroy(sender)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("receive", "send"))
    parser.add_argument("name")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--save", default="")
    parser.add_argument("--timeout", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()
    import NDIlib as ndi

    if args.mode == "send":
        if not ndi.initialize():
            return 2
        return send(ndi, args)

    if not ndi.initialize():
        return 2
    deadline = time.monotonic() + args.timeout
    source = find_source(ndi, args.name, deadline)
    if source is None:
        print(json.dumps({"error": "not found"}), flush=True)
        return 3
    create = ndi.RecvCreateV3()
    create.color_format = ndi.RECV_COLOR_FORMAT_BGRX_BGRA
    receiver = ndi.recv_create_v3(create)
    ndi.recv_connect(receiver, source)
    pixels = {}
    got = 0
    while got < args.frames and time.monotonic() < deadline:
        kind, video, _audio, _meta = ndi.recv_capture_v2(receiver, 500)
        if kind != ndi.FRAME_TYPE_VIDEO:
            continue
        record = {"source": source.ndi_name, "w": video.xres, "h": video.yres, "fourcc": str(video.FourCC),
                  "fps_n": video.frame_rate_N, "fps_d": video.frame_rate_D, "timecode": video.timecode,
                  "metadata": video.metadata, "t_received": time.time()}
        if args.save:
            pixels[f"f{got}"] = np.array(video.data, copy=True)
        ndi.recv_free_video_v2(receiver, video)
        print(json.dumps(record), flush=True)
        got += 1
    ndi.recv_destroy(receiver)
    if args.save:
        np.savez(args.save, **pixels)
    ndi.destroy()
    return 0 if got >= args.frames else 4


if __name__ == "__main__":
    sys.exit(main())
