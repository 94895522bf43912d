"""Pick an implementation by name from a ``kind -> "module:factory"`` table, importing only what is asked for.

Sources and sinks are named on the command line as ``kind[:arg]`` (``camera:0``, ``ndi:Stage``); optional
packages (SpoutGL, syphon-python, ndi-python) then only matter to the user who names that kind.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable


def factory_for(kinds: dict[str, str], spec: str, what: str) -> tuple[Callable[..., Any], str]:
    """Return ``(factory, arg)`` for ``spec``; ValueError naming the choices for an unknown kind."""
    kind, _, arg = spec.partition(":")
    if kind not in kinds:
        raise ValueError(f"unknown {what} {kind!r}: choose one of {', '.join(kinds)}")
    module_name, factory = kinds[kind].split(":")
    return getattr(importlib.import_module(module_name), factory), arg


def install_hint(extra: str) -> str:
    """How to install an optional extra. The package is installed from a clone (it is not on PyPI), so
    ``pip install visual-reactive-bridge[ndi]`` cannot work; the editable install of the clone can."""
    return f'`pip install -e ".[{extra}]"` in the clone'
