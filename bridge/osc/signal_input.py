"""Incoming OSC addresses as signals: ``osc:/1/fader1`` carries the first number sent to ``/1/fader1``.

Any address a route (``from = "osc:/1/fader1"``) or a rig map names is published on the signal bus, so a rig
fader can drive a parameter through a route (modulating per frame over its stored value) as well as through
a map (which sets the stored value). Addresses are watched only when something names them: the bus never grows
from what strangers send.
"""
from __future__ import annotations

import math

from bridge.params import WrongType
from bridge.signals import OSC_PREFIX, osc_signal_spec


class OscSignalInput:
    """Installs one server handler per watched address; each message's first number becomes the signal."""

    def __init__(self, bus, server) -> None:
        self.bus = bus
        self.server = server
        self._watched: set[str] = set()

    def watch(self, signal_name: str, quiet: bool = False) -> None:
        """Start publishing ``osc:<address>`` (idempotent; other signal names are not OSC's and are ignored).

        ``quiet``: another handler (a rig map) owns the address and answers its bad input, so a message that is
        not a number is skipped here instead of being counted twice.
        """
        if not signal_name.startswith(OSC_PREFIX) or signal_name in self._watched:
            return
        self.bus.declare(osc_signal_spec(signal_name))
        address = signal_name[len(OSC_PREFIX):]
        self.server.add_handler(address, self._handler(signal_name, quiet))
        self._watched.add(signal_name)

    def _handler(self, name: str, quiet: bool):
        def publish(address: str, args: tuple, sender=None) -> None:
            value = args[0] if args else None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                if quiet:
                    return
                raise WrongType(address, f"signal {name} takes a finite number as its first argument, got {value!r}")
            self.bus.publish(name, float(value))

        publish.__name__ = f"signal_{name}"
        return publish
