"""The native Syphon.framework classes the stand-in ``objc.lookUpClass`` hands out (as the framework documents)."""
from __future__ import annotations

import threading

import _mac
import Metal


class _Alloc:
    @classmethod
    def alloc(cls):
        return cls.__new__(cls)


class SyphonMetalServer(_Alloc):
    def initWithName_device_options_(self, name, device, options):  # noqa: N802
        _mac.log("SyphonMetalServer.init", name, tuple(sorted(options)))
        self._name, self.device, self.options = name, device, options
        self.uuid = _mac.new_uuid()
        self.surface = None  # Syphon keeps its own BGRA8 IOSurface-backed texture
        self.frames = 0
        self.flipped = []
        self.stopped = False
        with _mac.LOCK:
            _mac.SERVERS[self.uuid] = self
        return self

    def name(self):
        return self._name

    def setName_(self, value):  # noqa: N802
        self._name = value

    def serverDescription(self):  # noqa: N802
        return {"SyphonServerDescriptionUUIDKey": self.uuid, "SyphonServerDescriptionNameKey": self._name,
                "SyphonServerDescriptionAppNameKey": "python"}

    def publishFrameTexture_onCommandBuffer_imageRegion_flipped_(self, texture, command_buffer, region, flipped):  # noqa: N802
        (x, y), (w, h) = region
        if (x, y, w, h) != (0, 0, texture.width(), texture.height()):
            raise ValueError(f"stand-in Syphon: region {region} is not the whole texture")
        if texture.pixelFormat() != Metal.MTLPixelFormatRGBA8Unorm:
            raise ValueError("stand-in Syphon: the adapter publishes RGBA8 textures")
        import numpy as np

        rgba = np.frombuffer(bytes(texture.data), np.uint8).reshape(h, w, 4)
        bgra = np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])
        surface = Metal.MTLTexture(Metal.MTLTextureDescriptor(Metal.MTLPixelFormatBGRA8Unorm, w, h, False))
        surface.data[:] = bgra.tobytes()
        self.surface = surface
        self.frames += 1
        self.flipped.append(flipped)
        _mac.log("publishFrameTexture", w, h, flipped)

    def hasClients(self):  # noqa: N802
        return False

    def publish(self):
        pass

    def newFrameImage(self):  # noqa: N802
        return self.surface

    def stop(self):
        _mac.log("SyphonMetalServer.stop", self._name)
        self.stopped = True
        with _mac.LOCK:
            _mac.SERVERS.pop(self.uuid, None)


class SyphonServerDirectory:
    _shared = None

    @classmethod
    def sharedDirectory(cls):  # noqa: N802
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def servers(self):
        with _mac.LOCK:
            return [s.serverDescription() for s in _mac.SERVERS.values()]


class NSNotificationCenter:
    _default = None

    @classmethod
    def defaultCenter(cls):  # noqa: N802
        if cls._default is None:
            cls._default = cls()
        return cls._default

    def addObserverForName_object_queue_usingBlock_(self, name, obj, queue, block):  # noqa: N802
        return (name, block)

    def removeObserver_(self, token):  # noqa: N802
        pass


class SyphonMetalClient(_Alloc):
    def initWithServerDescription_device_options_newFrameHandler_(self, description, device, options, handler):  # noqa: N802
        uuid = description.get("SyphonServerDescriptionUUIDKey")
        _mac.log("SyphonMetalClient.init", uuid)
        with _mac.LOCK:
            server = _mac.SERVERS.get(uuid)
        if server is None:
            return None
        self.server, self.seen = server, 0
        self._lock = threading.Lock()
        return self

    def isValid(self):  # noqa: N802
        return not self.server.stopped

    def hasNewFrame(self):  # noqa: N802
        return not self.server.stopped and self.server.frames != self.seen

    def newFrameImage(self):  # noqa: N802
        if self.server.stopped:
            return None
        self.seen = self.server.frames
        return self.server.surface

    def serverDescription(self):  # noqa: N802
        return self.server.serverDescription()

    def stop(self):
        _mac.log("SyphonMetalClient.stop")
