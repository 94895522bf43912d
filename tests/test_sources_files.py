"""Sources: the test pattern moves, video files loop and survive deletion, folders play as slideshows,
cameras that are not there are retried instead of stopping the show."""
from __future__ import annotations

import os
import shutil
import time

import cv2
import numpy as np
import pytest

from bridge.sources import SourceUnavailable, make_source
from bridge.sources.camera import to_rgb
from bridge.sources.pattern import render_pattern
from conftest import IMAGES, read_frames


def write_video(path, n: int = 12, fps: float = 30.0, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for i in range(n):
        bgr = np.zeros((size[1], size[0], 3), np.uint8)
        bgr[:, :, 2] = 255  # pure red in BGR
        cv2.putText(bgr, str(i), (5, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
        writer.write(bgr)
    writer.release()


def test_pattern_moves_and_is_deterministic():
    a, b = render_pattern(0, (160, 120)), render_pattern(15, (160, 120))
    assert a.shape == (120, 160, 3) and a.dtype == np.uint8 and a.flags.c_contiguous
    assert np.abs(a.astype(int) - b).mean() > 10  # half a second later the picture is clearly different
    assert np.array_equal(render_pattern(15, (160, 120)), b)


def test_pattern_source_paces_frames():
    source = make_source("pattern", size=(80, 60), fps=60.0)
    source.open()
    frames = read_frames(source, 6)
    assert [f.index for f in frames] == list(range(6))
    assert frames[-1].t_capture > frames[0].t_capture
    assert frames[0].rgb.shape == (60, 80, 3)
    with pytest.raises(SourceUnavailable):
        make_source("pattern:what")


def test_a_self_paced_source_keeps_a_camera_clock():
    """Frames are captured every 1/fps whether read or not: a slow reader gets the newest one (up to a period
    old, the ones between are gone), a fast reader waits for each; capture times stay on the clock."""
    from bridge.sources.base import FramePacer

    pacer = FramePacer(50.0)  # a frame every 20 ms
    start = pacer._t0
    assert pacer.wait(0.1)
    times = [pacer.mark()]
    for _ in range(3):  # fast reader: waits for the next frame each time
        assert pacer.wait(0.1)
        times.append(pacer.mark())
    steps = [round((b - a) * 50.0, 6) for a, b in zip(times, times[1:])]
    assert steps == [1.0, 1.0, 1.0] and all(round((t - start) * 50.0, 6) % 1 == 0 for t in times)
    time.sleep(0.075)  # slow reader: 3.75 periods later
    assert pacer.wait(0.0)  # a newer frame is already there
    late = pacer.mark()
    age = time.monotonic() - late
    assert 0 <= age < 0.02 + 0.01 and round((late - times[-1]) * 50.0, 6) >= 3
    if late + 0.02 - time.monotonic() > 0.005:  # the next frame is not about to come
        assert not pacer.wait(0.001)  # nothing newer yet: the timeout is honoured


def test_to_rgb_converts_bgr_grey_and_bgra_once():
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 0] = 200  # blue in BGR
    assert tuple(to_rgb(bgr)[0, 0]) == (0, 0, 200)
    assert to_rgb(np.full((4, 4), 7, np.uint8)).shape == (4, 4, 3)
    assert to_rgb(np.zeros((4, 4, 4), np.uint8)).shape == (4, 4, 3)


def test_video_loops_in_rgb(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, n=6, fps=60.0)
    source = make_source(f"video:{path}")
    source.open()
    frames = read_frames(source, 14)
    assert len(frames) == 14
    assert source.stats()["loops"] >= 2
    r, g, b = frames[0].rgb[2, 60].astype(int)  # a corner away from the digits: red survives mp4v
    assert r > 200 and g < 60 and b < 60
    source.close()


def test_video_deleted_mid_run_holds_then_recovers(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, n=4, fps=60.0)
    spare = tmp_path / "spare.mp4"
    shutil.copy(path, spare)
    source = make_source(f"video:{path}")
    source.open()
    assert len(read_frames(source, 2)) == 2
    os.remove(path)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not source.status.startswith("holding"):
        source.read(timeout=0.05)  # never raises: the open handle plays out, then the reopen fails
    assert source.status.startswith("holding"), source.status
    assert source.read(timeout=0.05) is None
    shutil.copy(spare, path)
    back = read_frames(source, 2, timeout=8.0)
    assert len(back) == 2 and source.status == "running"
    assert source.reconnects >= 1


def test_video_missing_at_start_is_a_clear_error(tmp_path):
    with pytest.raises(SourceUnavailable, match="no such file"):
        make_source(f"video:{tmp_path / 'nope.mp4'}").open()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(SourceUnavailable, match="cannot decode"):
        make_source(f"video:{bad}").open()


def test_image_folder_slideshow_rescans(tmp_path):
    for name in ("a.png", "b.png"):
        shutil.copy(IMAGES / ("handSrc.jpg" if name == "a.png" else "basketball1.png"), tmp_path / name)
    (tmp_path / "notes.txt").write_text("ignored")
    source = make_source(f"images:{tmp_path}", slide_s=0.1, fps=50.0)
    source.open()
    seen = {}
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        frame = source.read(timeout=0.1)
        if frame is not None:
            seen[hash(frame.rgb.tobytes())] = frame
    assert len(seen) == 2, "both pictures shown"
    # a picture added during the show joins at the next wrap
    shutil.copy(IMAGES / "Histogram_Comparison_Source_0.jpg", tmp_path / "c.jpg")
    expected = cv2.imread(str(tmp_path / "c.jpg")).shape
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        frame = source.read(timeout=0.1)
        if frame is not None and frame.rgb.shape == expected:
            break
    else:
        pytest.fail("new picture never shown")


def test_image_folder_errors(tmp_path):
    with pytest.raises(SourceUnavailable, match="no such folder"):
        make_source(f"images:{tmp_path / 'missing'}").open()
    with pytest.raises(SourceUnavailable, match="no pictures"):
        make_source(f"images:{tmp_path}").open()


def test_camera_that_is_not_there_is_retried(tmp_path):
    source = make_source(f"camera:{tmp_path / 'video99'}", fps=30.0)
    source.open()  # no exception: the show goes on without it
    assert source.status.startswith("reconnecting")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and source.reconnects < 2:
        assert source.read(timeout=0.1) is None
    assert source.reconnects >= 2
    assert "cannot open camera" in source.stats()["last_error"]
    with pytest.raises(SourceUnavailable, match="neither a device index"):
        make_source("camera:front")


def test_devices_lists_torch_devices_and_probes_cameras_quickly():
    from bridge.commands.devices import probe_cameras, torch_devices

    names = [name for name, _ in torch_devices()]
    assert names[0] == "cpu" and "cuda" in names[1] and "mps" in names
    found = probe_cameras(10)
    for index, desc in found:  # whatever this machine has, each entry is a camera that gave a frame
        assert 0 <= index < 10 and "x" in desc


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_a_huge_picture_is_shrunk_once_where_it_enters(tmp_path, ext):
    """An 8000x4000 photo in the slideshow: frames come out at most MAX_SOURCE_SIDE on the longer side, with
    the aspect and the content kept (the left half red, the right half blue)."""
    from bridge.sources.base import MAX_SOURCE_SIDE

    big = np.zeros((4000, 8000, 3), np.uint8)
    big[:, :4000, 2] = 255  # BGR: red on the left
    big[:, 4000:, 0] = 255  # blue on the right
    cv2.imwrite(str(tmp_path / f"huge{ext}"), big)
    del big
    source = make_source(f"images:{tmp_path}", fps=60.0)
    source.open()
    try:
        frames = read_frames(source, 5)
    finally:
        source.close()
    assert len(frames) == 5
    rgb = frames[-1].rgb
    assert rgb.shape == (MAX_SOURCE_SIDE // 2, MAX_SOURCE_SIDE, 3)
    assert rgb[10, 10, 0] > 200 and rgb[10, 10, 2] < 50 and rgb[10, -10, 2] > 200 and rgb[10, -10, 0] < 50
    assert all(f.rgb is rgb for f in frames[1:])  # one shrunk copy, shared by every frame of the slide


def test_the_engine_shrinks_any_oversized_source_frame():
    from bridge import imageops

    frame = np.full((3000, 6000, 3), 7, np.uint8)
    small = imageops.limit_side(frame, 1920)
    assert small.shape == (960, 1920, 3) and int(small.mean()) == 7
    assert imageops.limit_side(small, 1920) is small  # a frame that fits is passed through untouched


def test_a_missing_camera_is_said_once_in_our_words_without_opencv_noise(capfd, caplog):
    """OpenCV writes its own warnings straight to stderr (about 12 lines per try); the engine silences them
    and says once what is wrong, what was tried and how to list devices."""
    source = make_source("camera:97", fps=30.0)
    with caplog.at_level("WARNING"):
        source.open()
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline and source.reconnects < 2:
            source.read(timeout=0.1)
    source.close()
    assert source.reconnects >= 2
    stderr = capfd.readouterr().err
    assert "[ WARN" not in stderr and "[ERROR" not in stderr and "VIDEOIO" not in stderr, stderr[:500]
    ours = [r.getMessage() for r in caplog.records if "camera 97" in r.getMessage()]
    assert len(ours) == 1 and "vrbridge devices" in ours[0] and "tried OpenCV's" in ours[0], ours
