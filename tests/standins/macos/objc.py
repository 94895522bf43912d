"""Stand-in for PyObjC's ``objc``: bundle loading, class lookup, opaque pointers, metadata registration."""
from __future__ import annotations

import os

import _mac


class ObjCPointer:
    typestr = b""
    pointerAsInteger = 0


def loadBundle(name, module_globals, bundle_path=None, scan_classes=True):  # noqa: N802
    if not bundle_path or not os.path.isdir(bundle_path):
        raise ImportError(f"stand-in objc: no bundle at {bundle_path!r}")
    if not os.path.exists(os.path.join(bundle_path, name)):  # the real framework binary must be there
        raise ImportError(f"stand-in objc: {bundle_path} has no {name} binary")
    _mac.LOADED_BUNDLES.append(bundle_path)
    _mac.log("loadBundle", name, bundle_path)


def lookUpClass(name):  # noqa: N802
    import _syphon_native

    classes = {"SyphonMetalServer": _syphon_native.SyphonMetalServer,
               "SyphonMetalClient": _syphon_native.SyphonMetalClient,
               "SyphonServerDirectory": _syphon_native.SyphonServerDirectory,
               "NSNotificationCenter": _syphon_native.NSNotificationCenter}
    if name not in classes:
        raise LookupError(f"stand-in objc: class {name!r} is not modelled")
    return classes[name]


def createOpaquePointerType(name, typestr, doc=None):  # noqa: N802
    return type(name, (ObjCPointer,), {"typestr": typestr, "__doc__": doc})


def loadBundleVariables(bundle, module_globals, variables, skip_undefined=True):  # noqa: N802
    for name, _type in variables:
        module_globals[name] = name  # the framework's NSString constants are their own names


def registerMetaDataForSelector(class_name, selector, metadata):  # noqa: N802
    _mac.log("registerMetaDataForSelector", class_name, selector)
