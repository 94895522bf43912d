"""SpoutGL.helpers (only what an adapter may call; same names and argument order as 0.1.1)."""
from __future__ import annotations

from . import enums


def getBytesPerPixel(glFormat):  # noqa: N802,N803 - SpoutGL's names
    if type(glFormat) is not int:
        raise TypeError("getBytesPerPixel(): incompatible function arguments")
    if glFormat in (enums.GL_RGBA, enums.GL_BGRA_EXT):
        return 4
    if glFormat in (enums.GL_RGB, enums.GL_BGR_EXT):
        return 3
    raise ValueError("Unknown GL format")  # std::invalid_argument -> ValueError in pybind11


def isBufferEmpty(buffer):  # noqa: N802
    view = memoryview(buffer)
    if not view.c_contiguous:
        raise BufferError("Byte buffer must be contiguous")
    return not any(view.cast("B"))


def copyToFloat32(byteBuffer, floatBuffer):  # noqa: N802,N803
    raise NotImplementedError("stand-in: copyToFloat32 is not modelled")


def copyToByteBuffer(floatBuffer, byteBuffer):  # noqa: N802,N803
    raise NotImplementedError("stand-in: copyToByteBuffer is not modelled")
