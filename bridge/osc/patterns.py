"""OSC 1.0 address pattern matching: ``?``, ``*``, ``[abc]``, ``[a-z]``, ``[!abc]``, ``{foo,bar}``.

Per the spec, a pattern is matched part by part: no wildcard ever crosses a ``/``. Patterns are compiled to
regular expressions once and cached, because rigs send the same few addresses thousands of times.
"""
from __future__ import annotations

import functools
import re

_SPECIAL = set("?*[]{}")


class BadPattern(ValueError):
    code = "pattern"


def is_pattern(address: str) -> bool:
    return not _SPECIAL.isdisjoint(address)


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Regex for one OSC address pattern; raises :class:`BadPattern` for an unclosed ``[`` or ``{``."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "?":
            out.append("[^/]")
        elif ch == "*":
            out.append("[^/]*")
        elif ch == "[":
            i, piece = _char_class(pattern, i)
            out.append(piece)
        elif ch == "{":
            end = pattern.find("}", i)
            if end < 0:
                raise BadPattern(f"unclosed '{{' in {pattern!r}")
            words = pattern[i + 1:end].split(",")
            if any("/" in w for w in words):
                raise BadPattern(f"'/' inside '{{...}}' in {pattern!r}")
            out.append("(?:" + "|".join(re.escape(w) for w in words) + ")")
            i = end
        elif ch in "]}":
            raise BadPattern(f"unmatched {ch!r} in {pattern!r}")
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _char_class(pattern: str, start: int) -> tuple[int, str]:
    end = pattern.find("]", start + 1)
    if end < 0:
        raise BadPattern(f"unclosed '[' in {pattern!r}")
    body = pattern[start + 1:end]
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    if not body or "/" in body:
        raise BadPattern(f"empty or '/' in '[...]' in {pattern!r}")
    parts = []
    j = 0
    while j < len(body):
        if j + 2 < len(body) and body[j + 1] == "-":
            low, high = body[j], body[j + 2]
            if low > high:
                raise BadPattern(f"reversed range {low}-{high} in {pattern!r}")
            parts.append(re.escape(low) + "-" + re.escape(high))
            j += 3
        else:
            parts.append(re.escape(body[j]))
            j += 1
    return end, "[" + ("^/" if negate else "") + "".join(parts) + "]"


def matches(pattern: str, address: str) -> bool:
    """Whether an OSC ``pattern`` selects the concrete ``address``."""
    if not is_pattern(pattern):
        return pattern == address
    return compile_pattern(pattern).match(address) is not None
