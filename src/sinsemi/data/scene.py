"""A simulator scene: everything but the defects and the seeds (layout, field of view, optics, sensor).
Used by the presets (:mod:`sinsemi.data.presets`) and the simulator (:mod:`sinsemi.data.optics`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sinsemi.data.imaging import Optics
from sinsemi.data.layouts import FieldOfView, Layout, LineSpace
from sinsemi.data.sensor import Sensor
from sinsemi.errors import InputError


@dataclass(frozen=True)
class Scene:
    """Everything but the defects and the seeds: layout, field of view, optics, sensor."""

    layout: Layout = field(default_factory=LineSpace)
    fov: FieldOfView = field(default_factory=FieldOfView)
    optics: Optics = field(default_factory=Optics)
    sensor: Sensor = field(default_factory=Sensor)

    def to_dict(self) -> dict:
        return {k: dataclasses.asdict(getattr(self, k)) for k in ("layout", "fov", "optics", "sensor")}

    def replace(self, **groups: dict) -> Scene:
        """Copy with some parameters changed, e.g. ``replace(sensor={"photon_budget": 500})``."""
        new = {}
        for name, changes in groups.items():
            if name not in ("layout", "fov", "optics", "sensor"):
                raise InputError(f"unknown simulator parameter group {name!r}; known: layout, fov, optics, sensor")
            obj = getattr(self, name)
            known = {f.name for f in dataclasses.fields(obj) if f.init}
            bad = sorted(set(changes) - known)
            if bad:
                raise InputError(f"unknown {name} parameter(s) {bad} for {type(obj).__name__}; known: {sorted(known)}")
            new[name] = dataclasses.replace(obj, **changes)
        return dataclasses.replace(self, **new)
