"""Stand-in for PyObjC's ``Foundation`` (only NSBundle.bundleWithPath_)."""


class NSBundle:
    def __init__(self, path):
        self.path = path

    @classmethod
    def bundleWithPath_(cls, path):  # noqa: N802
        return cls(path)
