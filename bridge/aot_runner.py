"""Run an AOTInductor package's model through its C entry point, so other Python threads run meanwhile.

Why: torch's loader (``torch._inductor.aoti_load_package``; ``AOTIModelPackageLoader.run`` and ``boxed_run``,
torch 2.13) keeps the GIL for the whole call. With the compiled synthesis that froze every other thread of the
engine (capture hand-over, encode, OSC, trackers) for a whole frame: a 1 ms ticker thread got one tick per
synthesis (``bench/gil_hold.py``, BENCHMARKS.md issue 16). ctypes releases the GIL around a foreign call.

How: the package's wrapper ``.so`` exports AOTInductor's C ABI (``torch/csrc/inductor/aoti_runtime/interface.h``:
``AOTInductorModelContainerCreateWithDevice`` / ``Run``); tensors cross as ``AtenTensorHandle``s made and
taken back by ``torch._C._aoti``'s helpers, the ones Inductor's own generated wrappers use. The weights are in
the ``.so`` (AOTInductor's default for CPU packages). Private torch API: :func:`load` returns None with one log
line when anything is missing, and bridge.aot checks the runner on its probe before use, falling back to
torch's loader, so a torch release that changes them costs the other threads' time, not the show.

The ``.so`` is copied out of the package next to it in the cache folder (trusted like the package: native code
this machine's compiler wrote).
"""
from __future__ import annotations

import ctypes
import logging
import os
import shutil
import zipfile
from pathlib import Path

import torch

log = logging.getLogger(__name__)

_CAPSULE_POINTER = ctypes.pythonapi.PyCapsule_GetPointer
_CAPSULE_POINTER.restype = ctypes.c_void_p
_CAPSULE_POINTER.argtypes = [ctypes.py_object, ctypes.c_char_p]
_CAPSULE_NEW = ctypes.pythonapi.PyCapsule_New
_CAPSULE_NEW.restype = ctypes.py_object
_CAPSULE_NEW.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


class PackageRunner:
    """``runner(*inputs)`` -> the model's single output tensor, computed with the GIL released (CPU packages).

    The model container lives as long as the process (an engine loads one package once): deleting it while the
    render thread might still be inside a call would be a use-after-free, so it is never deleted."""

    def __init__(self, library: ctypes.CDLL, num_inputs: int) -> None:
        self._run = library.AOTInductorModelContainerRun
        self._run.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t,
                              ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]
        self._run.restype = ctypes.c_int
        create = library.AOTInductorModelContainerCreateWithDevice
        create.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_char_p, ctypes.c_char_p]
        create.restype = ctypes.c_int
        self._container = ctypes.c_void_p()
        if create(ctypes.byref(self._container), 1, b"cpu", None) != 0:
            raise RuntimeError("AOTInductorModelContainerCreateWithDevice failed")
        self._library = library  # keeps the .so loaded
        # The run writes as many outputs as the model has into our array: check the counts before any run
        counts = (_count(library.AOTInductorModelContainerGetNumInputs, self._container),
                  _count(library.AOTInductorModelContainerGetNumOutputs, self._container))
        if counts != (num_inputs, 1):
            raise RuntimeError(f"the package's model takes {counts[0]} inputs and gives {counts[1]} outputs, "
                               f"not {num_inputs} and 1")
        self.num_inputs = num_inputs

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) != self.num_inputs:
            raise ValueError(f"the package takes {self.num_inputs} inputs, got {len(inputs)}")
        capsules = torch._C._aoti.unsafe_alloc_void_ptrs_from_tensors([t.contiguous() for t in inputs])
        handles = (ctypes.c_void_p * len(inputs))(*[_CAPSULE_POINTER(c, None) for c in capsules])
        outputs = (ctypes.c_void_p * 1)()
        code = self._run(self._container, handles, len(inputs), outputs, 1, None, None)  # the run steals handles
        if code != 0:
            raise RuntimeError(f"AOTInductorModelContainerRun failed (code {code})")
        return torch._C._aoti.alloc_tensors_by_stealing_from_void_ptrs([_CAPSULE_NEW(outputs[0], None, None)])[0]


def _count(getter, container: ctypes.c_void_p) -> int:
    getter.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
    getter.restype = ctypes.c_int
    value = ctypes.c_size_t()
    if getter(container, ctypes.byref(value)) != 0:
        raise RuntimeError(f"{getter.__name__} failed")
    return value.value


def load(package: Path, num_inputs: int) -> PackageRunner | None:
    """The GIL-free runner of ``package``'s model, or None (logged) where this torch or package does not allow it."""
    try:
        return PackageRunner(ctypes.CDLL(str(_extracted_library(package))), num_inputs)
    except (OSError, AttributeError, RuntimeError, KeyError, zipfile.BadZipFile) as exc:
        log.info("compiled synthesis: no GIL-free runner (%s); torch's loader runs it", exc)
        return None


def library_copies(package: Path) -> list[Path]:
    """The copies of ``package``'s library made beside it (to delete with the package)."""
    return list(package.parent.glob(f"{package.stem}.*.so"))


def _extracted_library(package: Path) -> Path:
    """The package's one wrapper .so, copied beside the package once. Named by the package and the library's
    CRC, so a rebuilt package never meets an old copy; written under a temporary name, then renamed."""
    with zipfile.ZipFile(package) as archive:
        members = [m for m in archive.infolist() if "/aotinductor/" in m.filename and m.filename.endswith(".so")]
        if len(members) != 1:
            raise KeyError(f"expected one model library in the package, found {len(members)}")
        target = package.with_name(f"{package.stem}.{members[0].CRC:08x}.so")
        if not target.is_file() or target.stat().st_size != members[0].file_size:
            part = target.with_name(f"{target.name}.{os.getpid()}.part")
            with archive.open(members[0]) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(part, target)
    return target
