"""Stand-in for PyObjC's ``Metal``: a device, command queues/buffers and RGBA8/BGRA8 textures in host memory."""
from __future__ import annotations

from collections import namedtuple

import _mac

MTLPixelFormatRGBA8Unorm = 70
MTLPixelFormatBGRA8Unorm = 80
_Origin = namedtuple("MTLOrigin", "x y z")
_Size = namedtuple("MTLSize", "width height depth")


class MTLRegion(tuple):
    def __new__(cls, origin, size):
        return super().__new__(cls, (_Origin(*origin), _Size(*size)))

    @property
    def origin(self):
        return self[0]

    @property
    def size(self):
        return self[1]


def MTLRegionMake2D(x, y, width, height):  # noqa: N802
    return MTLRegion((x, y, 0), (width, height, 1))


class MTLTextureDescriptor:
    def __init__(self, pixel_format, width, height, mipmapped):
        self.pixel_format, self.width, self.height, self.mipmapped = pixel_format, width, height, mipmapped

    @classmethod
    def texture2DDescriptorWithPixelFormat_width_height_mipmapped_(cls, fmt, width, height, mipmapped):  # noqa: N802
        if fmt not in (MTLPixelFormatRGBA8Unorm, MTLPixelFormatBGRA8Unorm):
            raise ValueError(f"stand-in Metal: pixel format {fmt} not modelled")
        if width <= 0 or height <= 0:
            raise ValueError("stand-in Metal: texture size must be positive")
        return cls(fmt, width, height, mipmapped)


class MTLTexture:
    def __init__(self, descriptor):
        self._fmt, self._w, self._h = descriptor.pixel_format, descriptor.width, descriptor.height
        self.data = bytearray(self._w * self._h * 4)
        self.writes = 0

    def width(self):
        return self._w

    def height(self):
        return self._h

    def pixelFormat(self):  # noqa: N802
        return self._fmt

    def replaceRegion_mipmapLevel_withBytes_bytesPerRow_(self, region, level, data, bytes_per_row):  # noqa: N802
        if (region.origin.x, region.origin.y, region.size.width, region.size.height) != (0, 0, self._w, self._h):
            raise ValueError("stand-in Metal: only whole-texture writes are modelled")
        if bytes_per_row != self._w * 4 or len(data) != len(self.data):
            raise ValueError(f"stand-in Metal: {len(data)} bytes at {bytes_per_row}/row for a {self._w}x{self._h} texture")
        self.data[:] = data
        self.writes += 1
        _mac.log("replaceRegion", self._w, self._h)

    def getBytes_bytesPerRow_bytesPerImage_fromRegion_mipmapLevel_slice_(self, buffer, bpr, bpi, region, level,  # noqa: N802
                                                                         slice_):
        buffer[:] = bytes(self.data)


class MTLCommandBuffer:
    def __init__(self):
        self.committed = False

    def commitAndWaitUntilSubmitted(self):  # noqa: N802
        self.committed = True
        _mac.log("commitAndWaitUntilSubmitted")


class MTLCommandQueue:
    def commandBuffer(self):  # noqa: N802
        return MTLCommandBuffer()


class MTLDevice:
    def newCommandQueue(self):  # noqa: N802
        return MTLCommandQueue()

    def newTextureWithDescriptor_(self, descriptor):  # noqa: N802
        return MTLTexture(descriptor)

    def name(self):
        return "stand-in GPU"


_DEVICE = MTLDevice()


def MTLCreateSystemDefaultDevice():  # noqa: N802
    return _DEVICE
