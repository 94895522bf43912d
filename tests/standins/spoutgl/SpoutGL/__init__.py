"""Strict stand-in for SpoutGL 0.1.1 (PyPI ``SpoutGL``, Windows only), so the Spout adapters run on Linux.

Pinned API: the class, method and enum names below are exactly those bound by SpoutGL 0.1.1 — read from the
strings of ``_spoutgl.cp311-win_amd64.pyd`` in ``spoutgl-0.1.1-cp311-cp311-win_amd64.whl`` and from its
pybind11 source, https://github.com/jlai/Python-SpoutGL ``src/PySpoutGL.cpp`` (commit 21cdb934, which lacks
the later-added getSenderList/getActiveSender/setActiveSender/getSenderInfo that the 0.1.1 binary has):

* both classes (``addCommonDefs``): isGLDXReady, getAutoShare, setAutoShare, getCPUshare, setCPUshare,
  createOpenGL, closeOpenGL, setActiveSender, getActiveSender, getSenderInfo (-> SenderInfo: width, height)
* SpoutSender: __enter__, __exit__ (releaseSender), setSenderName, releaseSender, sendTexture, sendFbo,
  sendImage(buffer, width, height, glFormat, invert, hostFbo) -> bool, getFrame, setFrameSync(name),
  waitFrameSync, getCPU, getGLDX, createMemoryBuffer, writeMemoryBuffer, deleteMemoryBuffer,
  getMemoryBufferSize
* SpoutReceiver: __enter__, __exit__ (releaseReceiver), setReceiverName, releaseReceiver, receiveTexture,
  receiveImage(buffer or None, glFormat, invert, hostFbo) -> bool, getSenderList, getSenderName (0.1.1 bug:
  bound to GetSenderWidth, so it returns the WIDTH), getSenderWidth, getSenderHeight, getSenderFormat,
  isConnected, isUpdated, isFrameNew, isFrameCountEnabled, getSenderFrame, setFrameSync,
  waitFrameSync(senderName, timeout=0), readMemoryBuffer, getMemoryBufferSize
* enums: GL_RGBA, GL_BGRA_EXT, GL_RGB, GL_BGR_EXT; helpers: getBytesPerPixel, isBufferEmpty, copyToFloat32,
  copyToByteBuffer

Strictness: arguments are positional with pybind11's type rules (an int is not a bool, a float is not an
int), buffers must be C-contiguous and large enough (BufferError, like pybind11's buffer_error), and the
hidden OpenGL context rules of Spout are enforced: sendImage/receiveImage need ``createOpenGL()`` on the
SAME thread first, and ``closeOpenGL()`` must come from that thread too (violations raise
:class:`StandInViolation`, which a real Spout would turn into silent black frames). Behaviour modelled after
Spout 2.007: a sender registers its name on the first send; a name already taken gets ``_1``, ``_2`` ...
appended; receivers see the newest pixels; ``setFrameSync``/``waitFrameSync`` signal per sender name.
Not modelled: textures, FBOs, memory buffers (they raise NotImplementedError), DirectX.
"""
from __future__ import annotations


from . import enums, helpers  # noqa: F401  (SpoutGL re-exports both)
from ._registry import REGISTRY, StandInViolation  # noqa: F401
from ._types import SenderInfo, SpoutReceiver, SpoutSender  # noqa: F401

__version__ = "0.1.1"
