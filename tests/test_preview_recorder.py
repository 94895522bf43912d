"""The recorder (mp4, real time, optional side by side) and the PNG-sequence writer, read back with OpenCV."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from bridge.frames import RenderedFrame
from bridge.sinks import SinkUnavailable, make_sink


def frame(i: int, t: float, colour, size=(64, 48), with_input=True) -> RenderedFrame:
    rgb = np.zeros((size[1], size[0], 3), np.uint8)
    rgb[:] = colour
    inp = np.full((24, 32, 3), (0, 0, 250), np.uint8) if with_input else None
    return RenderedFrame(rgb=rgb, index=i, source_index=i, t_capture=t, t_rendered=t, input_rgb=inp)


def drain(sink, n: int) -> None:
    deadline = time.monotonic() + 5
    while sink.sent + sink._box.dropped < n and time.monotonic() < deadline:
        time.sleep(0.01)


def test_recorder_writes_real_time_mp4_side_by_side(tmp_path):
    path = tmp_path / "show.mp4"
    sink = make_sink(f"record:{path}", fps=20.0, side_by_side=True)
    sink.start()
    t0 = time.monotonic()
    # three frames rendered 0.0 s, 0.5 s and 1.0 s apart: the file must last ~1 s at 20 fps
    for i, (dt, colour) in enumerate(((0.0, (250, 0, 0)), (0.5, (0, 250, 0)), (1.0, (250, 250, 250)))):
        sink.publish(frame(i, t0 + dt, colour))
        drain(sink, i + 1)
    sink.close()
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(bgr[:, :, ::-1])
    cap.release()
    assert 19 <= len(frames) <= 23, len(frames)  # repeated to keep real time
    assert frames[0].shape == (48, 64 + 64, 3)  # output | input (scaled to the output height)
    left, right = frames[0][:, :64].astype(int), frames[0][:, 64:].astype(int)
    assert left[..., 0].mean() > 200 and left[..., 1].mean() < 40  # red output
    assert right[..., 2].mean() > 200  # blue input
    assert frames[12][:, :64, 1].mean() > 200  # green from 0.5 s


def test_recorder_refuses_bad_paths(tmp_path):
    with pytest.raises(SinkUnavailable, match="does not exist"):
        make_sink(f"record:{tmp_path / 'no' / 'x.mp4'}")
    with pytest.raises(SinkUnavailable, match="must end in"):
        make_sink(f"record:{tmp_path / 'x.gif'}")


def test_png_sequence(tmp_path):
    folder = tmp_path / "frames"
    sink = make_sink(f"png:{folder}")
    sink.start()
    t0 = time.monotonic()
    for i in range(3):
        sink.publish(frame(i, t0, (10 * i, 100, 200), with_input=False))
        drain(sink, i + 1)
    sink.close()
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    img = cv2.imread(str(folder / "frame_000002.png"))[:, :, ::-1]
    assert tuple(img[0, 0]) == (20, 100, 200)  # lossless, RGB order kept
    (tmp_path / "file").write_text("x")
    with pytest.raises(SinkUnavailable, match="not a folder"):
        make_sink(f"png:{tmp_path / 'file'}")


def test_png_sequence_keeps_alpha_with_a_luma_key(tmp_path):
    """alpha.mode luma: the PNG is RGBA with the key's alpha (dark = clear), like Spout/Syphon/NDI get it;
    switched back to opaque over the live table, the next PNG is plain RGB."""
    from bridge.params import ParamStore

    params = ParamStore({"alpha.mode": "luma", "alpha.luma_low": 0.2, "alpha.luma_high": 0.8})
    folder = tmp_path / "frames"
    sink = make_sink(f"png:{folder}", params=params)
    sink.start()
    t0 = time.monotonic()
    sink.publish(frame(0, t0, (0, 0, 0), with_input=False))
    drain(sink, 1)
    sink.publish(frame(1, t0, (255, 255, 255), with_input=False))
    drain(sink, 2)
    params.set("alpha.mode", "opaque")
    sink.publish(frame(2, t0, (0, 0, 0), with_input=False))
    drain(sink, 3)
    sink.close()
    dark = cv2.imread(str(folder / "frame_000000.png"), cv2.IMREAD_UNCHANGED)
    light = cv2.imread(str(folder / "frame_000001.png"), cv2.IMREAD_UNCHANGED)
    opaque = cv2.imread(str(folder / "frame_000002.png"), cv2.IMREAD_UNCHANGED)
    assert dark.shape[2] == 4 and dark[0, 0, 3] == 0 and tuple(dark[0, 0, :3]) == (0, 0, 0)
    assert light.shape[2] == 4 and light[0, 0, 3] == 255
    assert opaque.shape[2] == 3
