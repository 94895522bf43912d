"""The synthesis network captured once as a CUDA graph and replayed for every frame it covers.

Why: at batch 1 a GPU spends a StyleGAN frame launching kernels rather than running them. On an H200 the
eager synthesis launched 400-700 kernels per frame and StyleGAN2 took the same 13-15 ms at 256 and 1024 px,
the embedded demo 14-17 ms (BENCHMARKS.md, issue 16, the GPU check). A CUDA graph records those launches
once; a replay is one call.

What the graph covers (bridge.stylegan.export_graph.FrameCoverage, checked per frame): ws [1, num_ws, w_dim]
float32 on the generator's CUDA device, noise const, no network bend, the weights as they were at capture.
The tensor levers (StyleGAN2's ``b4.const``, StyleGAN3's ``input.transform``) are edited in place at the
address the graph reads, so every replay follows the hand. Any other frame runs eagerly; after a lever that
edits the weights (model mixing) the graph stays off until the next start.

Capture happens on the render thread, at the first frame it covers: warm-up calls on a side stream (as CUDA
graph capture requires, and so cuDNN has chosen its kernels; its plan cache is per thread since pytorch PR
103939), the capture, one replay compared with the eager picture (>= 60 dB PSNR, else the graph is dropped with
one line). That first frame takes a few eager frames' time, once.
"""
from __future__ import annotations

import logging

import torch

from bridge.aot import PROBE_MIN_PSNR_DB, psnr_db

log = logging.getLogger(__name__)

WARMUP_CALLS = 3


class GraphedSynthesis:
    """The engine's compiled synthesis on CUDA: ``__call__(ws, noise_mode)`` returns the image, or None when this
    frame must run eagerly. A service of the engine (start / close / stats)."""

    def __init__(self, generator) -> None:
        from bridge.stylegan.export_graph import FrameCoverage

        self.generator = generator
        self.device = next(generator.synthesis.parameters()).device
        self.status = "waiting for the first frame"
        self.frames = 0
        self._coverage = FrameCoverage(generator, "cuda")
        self._graph: torch.cuda.CUDAGraph | None = None
        self._ws: torch.Tensor | None = None  # the graph's input: each frame's ws is copied in
        self._img: torch.Tensor | None = None  # the graph's output, overwritten by every replay

    # -- service --------------------------------------------------------------------------------
    def start(self) -> None:
        if self.device.type != "cuda":
            self.status = f"failed: CUDA graphs need a CUDA device, not {self.device.type}"

    def close(self) -> None:
        self._graph = self._ws = self._img = None

    def stats(self) -> dict:
        return {"status": self.status, "compiled_frames": self.frames}

    # -- per frame (render thread) --------------------------------------------------------------
    def __call__(self, ws: torch.Tensor, noise_mode: str) -> torch.Tensor | None:
        if self.status.startswith("failed") or not self._coverage.covers(ws, noise_mode):
            return None
        with torch.inference_mode():  # the graph's own tensors are made in inference mode: edit them in it
            if self._graph is None:
                return self._capture(ws)
            self._ws.copy_(ws)
            self._graph.replay()
            self.frames += 1
            return self._img.clone()  # the next replay overwrites the graph's own output

    def _capture(self, ws: torch.Tensor) -> torch.Tensor | None:
        """Record the synthesis once; returns this frame's eager picture (or None if capture failed)."""
        synthesis = self.generator.synthesis
        try:
            with torch.inference_mode():
                static_ws = ws.detach().clone()
                side = torch.cuda.Stream(self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):
                    for _ in range(WARMUP_CALLS):
                        eager = synthesis(static_ws, noise_mode="const")
                torch.cuda.current_stream(self.device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                # thread_local: the encode thread keeps running CUDA work on its own stream meanwhile; in the
                # default (global) mode its calls broke the capture (measured: "operation not permitted when
                # stream is capturing" in the encoder, the capture invalidated)
                with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                    img = synthesis(static_ws, noise_mode="const")
                graph.replay()
                db = psnr_db(img, eager)
        except Exception as exc:  # noqa: BLE001 - the show goes on eagerly
            self.status = f"failed: {type(exc).__name__}: {str(exc)[:160]}"
            log.warning("CUDA graph of the synthesis unavailable (%s); synthesis stays eager", self.status[8:])
            return None
        if db < PROBE_MIN_PSNR_DB:
            self.status = f"failed: the replay differs from the eager network ({db:.1f} dB)"
            log.warning("CUDA graph of the synthesis dropped: %s; synthesis stays eager", self.status[8:])
            return eager
        self._graph, self._ws, self._img = graph, static_ws, img
        self.status = "ready"
        log.info("synthesis captured as a CUDA graph (%s)", self.device)
        return eager
