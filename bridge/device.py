"""The one place that decides which torch device the engine, the encoder and the commands run on.

``auto`` prefers CUDA, then Apple's MPS, then the CPU. An explicit device that is not there is refused in one
line (:class:`DeviceUnavailable`) instead of failing later inside a kernel. :func:`plan_run` then decides how
to run there (fast path, memory layout and dtype through it, how the engine's stages share the device).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import threading

import torch

from bridge.params import COMPILE_MODES

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


class DeviceUnavailable(ValueError):
    """The asked-for device does not exist on this machine (the message is the line the user sees)."""


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda, else mps, else cpu; ``cuda:N`` picks a GPU; a missing device raises DeviceUnavailable."""
    text = str(name).strip().lower() or "auto"
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else ("mps" if mps_available() else "cpu"))
    try:
        device = torch.device(text)
    except RuntimeError as exc:
        raise DeviceUnavailable(f"device {text!r} is not a device name ({', '.join(DEVICE_CHOICES)}, cuda:N)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"device {text!r}: this torch has no CUDA device (choose auto, cpu, cuda or mps)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailable(f"device {text!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type == "mps" and not mps_available():
        raise DeviceUnavailable(f"device {text!r}: MPS is not available here (choose auto, cpu, cuda or mps)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise DeviceUnavailable(f"device {text!r} is not supported (choose auto, cpu, cuda or mps)")
    return device


# ------------------------------------------------------------------------------------------ how to run there

SCHEDULES = ("auto", "overlap", "serial")
# Fewer torch threads than this: encode and synthesis on the CPU take turns instead of splitting the cores.
OVERLAP_MIN_CPU_THREADS = 4


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What the engine does on its device, decided once here, with the reason shown at start-up.

    fast:            the generator's fast path (channels_last, cached derived tensors; fp16 where NVIDIA uses
                     it, on CUDA only). On the CPU it pays off for both: StyleGAN3 (polyphase resampling)
                     and StyleGAN2 (bridge.stylegan.sg2_cpu, float32; config-f and the embedded demo network
                     both faster, BENCHMARKS.md issue 16). On MPS, StyleGAN3's only (StyleGAN2 has none there).
                     Not on CUDA: on an H200 the plain path (float32, TF32 convolutions) was as fast or faster
                     at batch 1 in both GPU checks, captured as a CUDA graph too (SG2 256 px 2.3 vs 3.0 ms,
                     1024 px 5.8 vs 8.1 ms; SG3-R 1024 px eager 293 vs 490 ms; BENCHMARKS.md, the GPU check).
    schedule:        "overlap": encode and render run on their own threads at once (CUDA streams, or spare
                     CPU cores); "serial": the render thread encodes each fresh frame itself, then synthesises
                     (few CPU cores: no two stages competing for them; MPS: torch before the fix of pytorch
                     issue 197805 crashes Metal when two threads run on one MPS device). On 2-3 CPU threads
                     with the synthesis compiled in the background, overlap: the compiled call releases the GIL
                     (bridge.aot_runner) and the two stages then beat serial on both frames and latency (demo,
                     2 cores: 28.25 fps at 55.8 ms p50 against 24.0 fps at 58.8 ms; eager frames, before the
                     package is ready or when it does not cover them, lose ~10 ms of latency that way).
    cudnn_benchmark: let cuDNN pick the fastest kernels (the engine's shapes never change).
    compile:         "background": the synthesis compiled ahead of time in a child process (bridge.aot), used
                     once ready; "cudagraph": captured as a CUDA graph at the first frame and replayed
                     (bridge.cuda_graph: at batch 1 a GPU frame is mostly kernel launches); "startup":
                     torch.compile in place before the first frame; "off". With
                     "startup" on the CPU the plain path is compiled: Inductor fuses its ops into ~2x faster
                     code, while our hand-made CPU fast path compiled ran slower than eager (BENCHMARKS.md).
    """

    device: torch.device
    fast: bool
    schedule: str
    cudnn_benchmark: bool
    why: str
    compile: str = "off"

    def describe(self) -> str:
        compiled = "" if self.compile == "off" else f", synthesis compiled ({self.compile})"
        return f"fast path {'on' if self.fast else 'off'}{compiled}, stages {self.schedule} ({self.why})"


def plan_run(device: str | torch.device, arch: str, schedule: str = "auto",
             cpu_threads: int | None = None, compile: str = "off", backend: str = "torch") -> RunPlan:
    """The one decision of fast path, stage schedule, compilation and backend flags for ``device`` and
    architecture ``arch``."""
    device = torch.device(device)
    if schedule not in SCHEDULES:
        raise DeviceUnavailable(f"schedule {schedule!r} is not one of {', '.join(SCHEDULES)}")
    if compile not in COMPILE_MODES:
        raise DeviceUnavailable(f"compile {compile!r} is not one of {', '.join(COMPILE_MODES)}")
    threads = torch.get_num_threads() if cpu_threads is None else int(cpu_threads)
    if backend != "torch":
        compile = "off"  # another runtime runs the graphs
    elif compile == "auto":  # measured on the CPU and on CUDA (BENCHMARKS.md, issue 16); MPS users choose
        compile = _compile_from_environment() or {"cpu": "background", "cuda": "cudagraph"}.get(device.type, "off")
    if compile == "cudagraph" and device.type != "cuda":
        raise DeviceUnavailable(f"compile cudagraph needs a CUDA device, not {device.type}: use background, "
                                "startup or off")
    fast = (device.type == "cpu" and compile != "startup") or (device.type == "mps" and arch == "stylegan3")
    if device.type == "mps":
        chosen, why = "serial", "one thread runs torch on MPS: Metal is not safe from two threads before pytorch issue 197805's fix"
    elif schedule != "auto":
        chosen, why = schedule, "as asked"
    elif device.type == "cuda":
        chosen, why = "overlap", "encoder on its own CUDA stream beside synthesis"
    elif threads >= OVERLAP_MIN_CPU_THREADS:
        chosen, why = "overlap", f"{threads} CPU threads: half each for encode and synthesis"
    elif compile == "background" and threads >= 2:
        chosen, why = "overlap", (f"{threads} CPU threads, synthesis compiled: it runs without the GIL, so encode "
                                  "takes the other core meanwhile")
    else:
        chosen, why = "serial", f"{threads} CPU threads: stages take turns instead of splitting the cores"
    return RunPlan(device=device, fast=fast, schedule=chosen, cudnn_benchmark=device.type == "cuda", why=why,
                   compile=compile)


def _compile_from_environment() -> str | None:
    """VRBRIDGE_COMPILE, when it names a mode, is what auto means (the test suite sets off: no background
    compiler per engine start)."""
    mode = os.environ.get("VRBRIDGE_COMPILE", "").strip().lower()
    return mode if mode in COMPILE_MODES and mode != "auto" else None


def apply_plan(plan: RunPlan) -> None:
    """Process-wide backend flags the plan asks for."""
    if plan.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True


def synchronize(device: str | torch.device) -> None:
    """Wait for the device's queued work (CUDA or MPS); nothing to wait for on the CPU. For timing only."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


_MPS_TURN = threading.RLock()


def torch_turn(device: str | torch.device):
    """Hold this while a thread runs torch work on ``device``: on MPS, one thread at a time for the whole process
    (the engine's stages, the depth analyser), because Metal crashes when two threads use one MPS device in
    torch releases before the fix of pytorch issue 197805; elsewhere nothing is held."""
    return _MPS_TURN if torch.device(device).type == "mps" else contextlib.nullcontext()
