"""MediaPipe's native start-up chatter kept off the terminal.

Creating a landmarker makes LiteRT print about a dozen ``INFO: ...`` lines and absl a few ``W0000 ...`` lines
(alignment and ROI notes on the first frames) straight to file descriptor 2: Python's logging cannot filter
them and no environment variable of this MediaPipe build turns them off. So while a landmarker is created and
runs its first frames, fd 2 goes to a temporary file; afterwards everything in it that is not that chatter (a
real error, or a line another thread wrote meanwhile) is written to the real stderr, in order.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading

_NOISE = re.compile(r"^(INFO: |I\d{4} |WARNING: Logging before InitGoogle|W\d{4} \S+\s+\d+ "
                    r"(inference_runner_litert|landmark_projection_calculator|gl_context|face_landmarker_graph))")
_LOCK = threading.Lock()  # one redirection at a time (hands and pose may start together)


@contextlib.contextmanager
def native_chatter_muted():
    with _LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no real fd 2 (embedded, some IDEs): nothing to mute
            yield
            return
        with tempfile.TemporaryFile(mode="w+b") as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                kept = [line for line in sink.read().decode("utf-8", "replace").splitlines(keepends=True)
                        if not _NOISE.match(line)]
                if kept:
                    sys.stderr.write("".join(kept))
                    sys.stderr.flush()



class FirstFramesMuted:
    """Mutes native chatter while a landmarker is created and for its first few frames (MediaPipe's
    alignment and ROI notes come with the first frame of each new picture size)."""

    def __init__(self, frames: int = 2) -> None:
        self.left = frames

    def __call__(self):
        if self.left <= 0:
            return contextlib.nullcontext()
        self.left -= 1
        return native_chatter_muted()
