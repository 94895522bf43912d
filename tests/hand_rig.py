"""The engine's hand chain outside the engine, for the lever tests: hand signals -> the default routes -> a lever.

The same objects the engine wires (``bridge.tracking.attach``): :class:`HandSignals` publishes ``hand.*`` from the
keypoints, the default routes turn them into ``const.corrupt`` / ``sg3.*``, and the lever reads only the snapshot.
"""
from __future__ import annotations

from bridge.routes import RouteTable, parse_route
from bridge.signals import SignalBus
from bridge.tracking import default_routes
from bridge.tracking.features import HandSignals


class HandRig:
    def __init__(self, lever) -> None:
        self.lever = lever
        self.bus = SignalBus()
        self.stage = HandSignals(self.bus)
        self.routes = RouteTable(parse_route(entry) for entry in default_routes())
        self.snapshot: dict = {}

    def apply(self, generator, params, keypoints, now: float) -> None:
        snapshot = dict(params)
        self.stage.update(keypoints, snapshot, now)
        self.snapshot = self.routes.evaluate(snapshot, self.bus.values(), now)
        self.lever.apply(generator, self.snapshot, now)

    @property
    def settling(self) -> bool:
        return self.stage.settling or self.routes.settling or self.lever.settling

    def __getattr__(self, name):
        return getattr(self.lever, name)
