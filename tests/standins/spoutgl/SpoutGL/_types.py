"""SpoutSender / SpoutReceiver / SenderInfo with SpoutGL 0.1.1's exact method names and argument orders."""
from __future__ import annotations

import threading

from . import enums
from ._registry import REGISTRY, StandInViolation

_FORMATS = {enums.GL_RGBA: 4, enums.GL_BGRA_EXT: 4, enums.GL_RGB: 3, enums.GL_BGR_EXT: 3}


def _check(method: str, args: tuple, types: tuple) -> None:
    """pybind11's overload resolution: exact arity, bool only for bool, int (not bool/float) for int, str."""
    if len(args) != len(types):
        raise TypeError(f"{method}(): incompatible function arguments ({len(args)} given, {len(types)} expected)")
    for value, kind in zip(args, types):
        ok = (type(value) is bool if kind is bool else
              (isinstance(value, int) and not isinstance(value, bool)) if kind is int else
              isinstance(value, str) if kind is str else True)
        if not ok:
            raise TypeError(f"{method}(): incompatible function arguments: {value!r} is not {kind.__name__}")


def _buffer(method: str, buffer, needed: int) -> memoryview:
    try:
        view = memoryview(buffer)
    except TypeError:
        raise TypeError(f"{method}(): incompatible function arguments: not a buffer") from None
    if view.nbytes < needed:
        raise BufferError("Buffer not large enough")
    if not view.c_contiguous:
        raise BufferError("Buffer must be contiguous")
    return view


class SenderInfo:
    __slots__ = ("width", "height")

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height


class _Common:
    """addCommonDefs: the methods both classes have."""

    _kind = "common"

    def __init__(self) -> None:
        self._gl_thread: int | None = None
        self._auto_share = True
        self._cpu_share = False

    def _log(self, method: str, args: tuple) -> None:
        REGISTRY.calls.append((self._kind, method, args, threading.get_ident()))

    def _need_gl(self, method: str) -> None:
        if self._gl_thread is None:
            raise StandInViolation(f"{method} without createOpenGL(): a headless Spout app has no GL context")
        if self._gl_thread != threading.get_ident():
            raise StandInViolation(f"{method} on another thread than createOpenGL(): the context is not current")

    def isGLDXReady(self):  # noqa: N802
        return True

    def getAutoShare(self):  # noqa: N802
        return self._auto_share

    def setAutoShare(self, *args):  # noqa: N802
        _check("setAutoShare", args, (bool,))
        self._auto_share = args[0]

    def getCPUshare(self):  # noqa: N802
        return self._cpu_share

    def setCPUshare(self, *args):  # noqa: N802
        _check("setCPUshare", args, (bool,))
        self._cpu_share = args[0]

    def createOpenGL(self, *args):  # noqa: N802
        _check("createOpenGL", args, ())
        self._log("createOpenGL", args)
        if self._gl_thread is not None:
            raise StandInViolation("createOpenGL called twice without closeOpenGL")
        self._gl_thread = threading.get_ident()
        return True

    def closeOpenGL(self, *args):  # noqa: N802
        _check("closeOpenGL", args, ())
        self._log("closeOpenGL", args)
        if self._gl_thread is None:
            return False
        if self._gl_thread != threading.get_ident():
            raise StandInViolation("closeOpenGL on another thread than createOpenGL")
        self._gl_thread = None
        return True

    def setActiveSender(self, *args):  # noqa: N802
        _check("setActiveSender", args, (str,))
        return REGISTRY.get(args[0]) is not None

    def getActiveSender(self, *args):  # noqa: N802
        _check("getActiveSender", args, ())
        names = REGISTRY.names()
        return names[0] if names else ""

    def getSenderInfo(self, *args):  # noqa: N802
        _check("getSenderInfo", args, (str,))
        shared = REGISTRY.get(args[0])
        return None if shared is None else SenderInfo(shared.width, shared.height)


class SpoutSender(_Common):
    _kind = "SpoutSender"

    def __init__(self, *args) -> None:
        _check("SpoutSender", args, ())
        super().__init__()
        self._wanted = ""
        self._shared = None

    def __enter__(self):
        return self

    def __exit__(self, *args):
        _check("__exit__", args, (object, object, object))
        self.releaseSender()

    def setSenderName(self, *args):  # noqa: N802
        _check("setSenderName", args, (str,))
        self._log("setSenderName", args)
        self._wanted = args[0]

    def releaseSender(self, *args):  # noqa: N802
        _check("releaseSender", args, ())
        self._log("releaseSender", args)
        if self._shared is not None:
            REGISTRY.unregister(self._shared.name)
            self._shared = None

    def sendImage(self, *args):  # noqa: N802
        _check("sendImage", args, (object, int, int, int, bool, int))
        buffer, width, height, gl_format, invert, host_fbo = args
        self._log("sendImage", (width, height, gl_format, invert, host_fbo))
        if gl_format not in _FORMATS:
            raise ValueError("Unknown GL format")
        view = _buffer("sendImage", buffer, width * height * _FORMATS[gl_format])
        self._need_gl("sendImage")
        if self._shared is None:
            self._shared = REGISTRY.register(self._wanted or "SpoutSender")
        shared = self._shared
        with shared.event:
            shared.width, shared.height, shared.gl_format = width, height, gl_format
            shared.pixels = bytes(view.cast("B")[:width * height * _FORMATS[gl_format]])
            shared.frame += 1
        return True

    def sendTexture(self, *args):  # noqa: N802
        raise NotImplementedError("stand-in: sendTexture (GPU interop) is not modelled")

    def sendFbo(self, *args):  # noqa: N802
        raise NotImplementedError("stand-in: sendFbo is not modelled")

    def getFrame(self, *args):  # noqa: N802
        _check("getFrame", args, ())
        return 0 if self._shared is None else self._shared.frame

    def setFrameSync(self, *args):  # noqa: N802
        _check("setFrameSync", args, (str,))
        self._log("setFrameSync", args)
        shared = REGISTRY.get(args[0])
        if shared is None:
            return  # Spout signals an event nobody waits on
        with shared.event:
            shared.synced += 1
            shared.event.notify_all()

    def waitFrameSync(self, *args):  # noqa: N802
        _check("waitFrameSync", args, (str, int))
        return False

    def getCPU(self):  # noqa: N802
        return False

    def getGLDX(self):  # noqa: N802
        return True

    def createMemoryBuffer(self, *args):  # noqa: N802
        raise NotImplementedError("stand-in: memory buffers are not modelled")

    writeMemoryBuffer = deleteMemoryBuffer = getMemoryBufferSize = createMemoryBuffer


class SpoutReceiver(_Common):
    _kind = "SpoutReceiver"

    def __init__(self, *args) -> None:
        _check("SpoutReceiver", args, ())
        super().__init__()
        self._name = ""
        self._connected: str = ""
        self._size = (0, 0)
        self._updated = False
        self._seen_frame = 0
        self._new = False

    def __enter__(self):
        return self

    def __exit__(self, *args):
        _check("__exit__", args, (object, object, object))
        self.releaseReceiver()

    def setReceiverName(self, *args):  # noqa: N802
        _check("setReceiverName", args, (str,))
        self._log("setReceiverName", args)
        self._name = args[0]

    def releaseReceiver(self, *args):  # noqa: N802
        _check("releaseReceiver", args, ())
        self._log("releaseReceiver", args)
        self._connected, self._size = "", (0, 0)

    def receiveTexture(self, *args):  # noqa: N802
        raise NotImplementedError("stand-in: receiveTexture is not modelled")

    def receiveImage(self, *args):  # noqa: N802
        _check("receiveImage", args, (object, int, bool, int))
        buffer, gl_format, invert, host_fbo = args
        self._log("receiveImage", (None if buffer is None else "buffer", gl_format, invert, host_fbo))
        if gl_format not in _FORMATS:
            raise ValueError("Unknown GL format")
        self._need_gl("receiveImage")
        shared = REGISTRY.get(self._name) if self._name else None
        if shared is None or shared.frame == 0:
            self._connected, self._size = "", (0, 0)
            return False
        if self._connected != shared.name or self._size != (shared.width, shared.height):
            self._connected, self._size, self._updated = shared.name, (shared.width, shared.height), True
            return True  # the caller must (re)allocate: isUpdated() says so
        if buffer is None or memoryview(buffer).nbytes == 0:
            return True
        width, height = self._size
        view = _buffer("receiveImage", buffer, width * height * _FORMATS[gl_format])
        with shared.event:
            pixels, frame, src_format = shared.pixels, shared.frame, shared.gl_format
        out = _convert(pixels, width * height, src_format, gl_format)
        view.cast("B")[:len(out)] = out
        self._new = frame != self._seen_frame
        self._seen_frame = frame
        return True

    def getSenderList(self, *args):  # noqa: N802
        _check("getSenderList", args, ())
        return REGISTRY.names()

    def getSenderName(self, *args):  # noqa: N802 - the 0.1.1 binding bug, kept on purpose
        _check("getSenderName", args, ())
        return self._size[0]

    def getSenderWidth(self, *args):  # noqa: N802
        _check("getSenderWidth", args, ())
        return self._size[0]

    def getSenderHeight(self, *args):  # noqa: N802
        _check("getSenderHeight", args, ())
        return self._size[1]

    def getSenderFormat(self, *args):  # noqa: N802
        return 87  # DXGI_FORMAT_B8G8R8A8_UNORM

    def isConnected(self, *args):  # noqa: N802
        _check("isConnected", args, ())
        return bool(self._connected) and REGISTRY.get(self._connected) is not None

    def isUpdated(self, *args):  # noqa: N802
        _check("isUpdated", args, ())
        updated, self._updated = self._updated, False
        return updated

    def isFrameNew(self, *args):  # noqa: N802
        _check("isFrameNew", args, ())
        return self._new

    def isFrameCountEnabled(self, *args):  # noqa: N802
        return True

    def getSenderFrame(self, *args):  # noqa: N802
        return self._seen_frame

    def setFrameSync(self, *args):  # noqa: N802
        _check("setFrameSync", args, (str,))

    def waitFrameSync(self, senderName, timeout=0):  # noqa: N802,N803 - py::arg names of the binding
        _check("waitFrameSync", (senderName, timeout), (str, int))
        self._log("waitFrameSync", (senderName, timeout))
        shared = REGISTRY.get(senderName)
        if shared is None:
            return False
        with shared.event:
            seen = shared.synced
            return shared.event.wait_for(lambda: shared.synced != seen, timeout / 1000.0)

    def readMemoryBuffer(self, *args):  # noqa: N802
        raise NotImplementedError("stand-in: memory buffers are not modelled")

    getMemoryBufferSize = readMemoryBuffer


def _convert(pixels: bytes, count: int, src: int, dst: int) -> bytes:
    """Spout converts between the GL formats on receive; model RGBA/BGRA/RGB/BGR with numpy."""
    import numpy as np

    channels = {enums.GL_RGBA: "RGBA", enums.GL_BGRA_EXT: "BGRA", enums.GL_RGB: "RGB", enums.GL_BGR_EXT: "BGR"}
    src_order, dst_order = channels[src], channels[dst]
    array = np.frombuffer(pixels, np.uint8).reshape(count, len(src_order))
    full = {c: array[:, src_order.index(c)] if c in src_order else np.full(count, 255, np.uint8) for c in "RGBA"}
    return np.stack([full[c] for c in dst_order], axis=1).tobytes()
