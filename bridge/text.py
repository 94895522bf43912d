"""Keeping user-supplied values short in messages.

Error lines quote the value that was refused, but that value comes from outside (a show file, an OSC
datagram, a flag) and may be megabytes long: a 10 MB show-file value once gave a 21 MB "one line" error.
Every message that quotes outside input goes through :func:`brief` (one value) or :func:`clip_line` (a
whole line, the last guard before printing or sending).
"""
from __future__ import annotations

from typing import Any

VALUE_LIMIT = 80  # characters of one quoted value
LINE_LIMIT = 400  # characters of one whole error line


def brief(value: Any, limit: int = VALUE_LIMIT) -> str:
    """``repr(value)``, cut in the middle to at most about ``limit`` characters, saying how long it was."""
    try:
        text = repr(value)
    except RecursionError:  # a deeply nested list from a hostile show file
        return f"<{type(value).__name__} nested too deeply to show>"
    return clip_line(text, limit)


def clip_line(text: str, limit: int = LINE_LIMIT) -> str:
    """``text`` cut to about ``limit`` characters (head ... tail, with the full length)."""
    if len(text) <= limit:
        return text
    tail = min(12, limit // 4)
    return f"{text[:limit - tail - 3]}...{text[-tail:]} ({len(text):,} chars)"
