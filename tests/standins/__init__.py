"""Test helpers for the platform boundaries this Linux machine cannot reach (and real NDI peers).

* ``spoutgl/``: a strict stand-in for SpoutGL 0.1.1 (Windows only), see its header for the pinned API.
* ``macos/``: stand-ins for PyObjC's ``objc``, ``Foundation``, ``Cocoa``, ``AppKit`` and ``Metal``, so that
  syphon-python's real package code runs here.
* ``ndi_probe.py``: a real, independent NDI receiver/sender process (ndi-python, none of our code).
* ``ndi_env.py``: NDI on loopback without mDNS, for tests.
"""
