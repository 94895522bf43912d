"""OSC 1.0 address pattern matching: ``?``, ``*``, ``[abc]``, ``[a-z]``, ``[!abc]``, ``{foo,bar}``.

Per the spec, a pattern is matched part by part: no wildcard ever crosses a ``/``, so a pattern and an address
match only if they have the same number of parts and each pattern part matches its address part.

Why not regular expressions: any datagram may carry a pattern, and a backtracking regex engine takes
exponential time on ``/vrb/****************x`` (one 44-byte datagram froze the engine for minutes while
holding the GIL). Here each part is matched by simulating all its alternatives at once: the set of address
positions reachable after each pattern token is one Python int used as a bit set, so every token costs one
or two big-int operations on an address-sized number. Matching is therefore linear in the pattern length,
whatever the wildcards, and a hostile pattern costs no more than a long literal one.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from bridge.text import brief

_SPECIAL = set("?*[]{}")
_CACHE_UP_TO = 256  # characters; rigs repeat short patterns, a hostile long one is not worth keeping


class BadPattern(ValueError):
    code = "pattern"


def is_pattern(address: str) -> bool:
    return not _SPECIAL.isdisjoint(address)


# A token of one pattern part: ("lit", "c"), ("any", None), ("star", None), ("set", (chars, ranges, negate))
# or ("alt", {length: frozenset(words)}).
Token = tuple


@dataclass(frozen=True)
class CompiledPattern:
    """One parsed pattern; :meth:`match` runs in time linear in the pattern and address length."""

    text: str
    parts: tuple[tuple[Token, ...], ...]
    min_lengths: tuple[int, ...]  # fewest address characters each part can match (a cheap early "no")

    def match(self, address: str) -> bool:
        names = address.split("/")
        if len(names) != len(self.parts):
            return False
        if any(len(name) < least for name, least in zip(names, self.min_lengths)):
            return False
        return all(_match_part(tokens, name) for tokens, name in zip(self.parts, names))


def compile_pattern(pattern: str) -> CompiledPattern:
    """Parse one OSC address pattern; raises :class:`BadPattern` for an unclosed ``[`` or ``{``."""
    if len(pattern) <= _CACHE_UP_TO:
        return _compile_cached(pattern)
    return _compile(pattern)


@functools.lru_cache(maxsize=4096)
def _compile_cached(pattern: str) -> CompiledPattern:
    return _compile(pattern)


def _compile(pattern: str) -> CompiledPattern:
    parts = []
    for part in _split_parts(pattern):
        parts.append(tuple(_tokens(part, pattern)))
    return CompiledPattern(pattern, tuple(parts), tuple(_min_length(p) for p in parts))


def _split_parts(pattern: str) -> list[str]:
    """Split on ``/`` outside brackets, refusing a ``/`` inside ``[...]`` or ``{...}``."""
    depth_open = ""
    for ch in pattern:
        if ch in "[{" and not depth_open:
            depth_open = "]" if ch == "[" else "}"
        elif depth_open and ch == depth_open:
            depth_open = ""
        elif depth_open and ch == "/":
            raise BadPattern(f"'/' inside '[...]' or '{{...}}' in {brief(pattern)}")
    return pattern.split("/")


def _tokens(part: str, pattern: str):
    i = 0
    previous_star = False
    while i < len(part):
        ch = part[i]
        star = ch == "*"
        if star:
            if not previous_star:  # '**' means the same as '*'
                yield ("star", None)
        elif ch == "?":
            yield ("any", None)
        elif ch == "[":
            end = part.find("]", i + 1)
            if end < 0:
                raise BadPattern(f"unclosed '[' in {brief(pattern)}")
            yield ("set", _char_set(part[i + 1:end], pattern))
            i = end
        elif ch == "{":
            end = part.find("}", i + 1)
            if end < 0:
                raise BadPattern(f"unclosed '{{' in {brief(pattern)}")
            yield ("alt", _alternatives(part[i + 1:end]))
            i = end
        elif ch in "]}":
            raise BadPattern(f"unmatched {ch!r} in {brief(pattern)}")
        else:
            yield ("lit", ch)
        previous_star = star
        i += 1


def _char_set(body: str, pattern: str) -> tuple[frozenset, tuple, bool]:
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    if not body:
        raise BadPattern(f"empty '[...]' in {brief(pattern)}")
    chars, ranges = set(), []
    j = 0
    while j < len(body):
        if j + 2 < len(body) and body[j + 1] == "-":
            low, high = body[j], body[j + 2]
            if low > high:
                raise BadPattern(f"reversed range {low}-{high} in {brief(pattern)}")
            ranges.append((low, high))
            j += 3
        else:
            chars.add(body[j])
            j += 1
    return frozenset(chars), tuple(ranges), negate


def _alternatives(body: str) -> dict[int, frozenset]:
    by_length: dict[int, set] = {}
    for word in body.split(","):
        by_length.setdefault(len(word), set()).add(word)
    return {length: frozenset(words) for length, words in by_length.items()}


def _min_length(tokens: tuple[Token, ...]) -> int:
    total = 0
    for kind, arg in tokens:
        if kind in ("lit", "any", "set"):
            total += 1
        elif kind == "alt":
            total += min(arg)
    return total


def _match_part(tokens: tuple[Token, ...], name: str) -> bool:
    """Bit j of ``reach`` set = the tokens so far can consume exactly ``name[:j]``."""
    n = len(name)
    every = (1 << (n + 1)) - 1
    reach = 1
    masks: dict = {}
    for kind, arg in tokens:
        if kind == "star":
            lowest = reach & -reach
            reach = every & ~(lowest - 1)  # every position from the earliest one reached
        elif kind == "alt":
            reach = _step_alt(reach, arg, name)
        else:
            key = (kind, arg)
            mask = masks.get(key)
            if mask is None:
                mask = masks[key] = _positions(name, _char_test(kind, arg))
            reach = (reach & mask) << 1
        if not reach:
            return False
    return bool(reach >> n & 1)


def _char_test(kind: str, arg):
    if kind == "lit":
        return lambda c: c == arg
    if kind == "any":
        return lambda c: True
    chars, ranges, negate = arg
    return lambda c: (c in chars or any(lo <= c <= hi for lo, hi in ranges)) != negate


def _positions(name: str, test) -> int:
    """Bit set of the positions j whose character passes ``test``."""
    mask = 0
    for j, c in enumerate(name):
        if test(c):
            mask |= 1 << j
    return mask


def _step_alt(reach: int, by_length: dict[int, frozenset], name: str) -> int:
    out = 0
    for length, words in by_length.items():
        for j in range(len(name) - length + 1):
            if reach >> j & 1 and name[j:j + length] in words:
                out |= 1 << (j + length)
    return out


def matches(pattern: str, address: str) -> bool:
    """Whether an OSC ``pattern`` selects the concrete ``address``."""
    if not is_pattern(pattern):
        return pattern == address
    return compile_pattern(pattern).match(address)

