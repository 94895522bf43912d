"""Stand-in for PyObjC's ``AppKit`` (syphon.utils.opengl imports it; no OpenGL context exists here)."""


class NSOpenGLContext:
    @staticmethod
    def currentContext():  # noqa: N802
        return None
