"""Named simulator presets: a scene (layout, field, optics, sensor) and its reference defects.

``line_pair`` is tuned to look like the SinSEMI paper's 96 x 96 line-pair image (tests/test_optics.py
compares its statistics with the real image): 192 nm pitch lines on 10 nm pixels (19.2 px period,
5 periods in the field) imaged at 193 nm with NA 0.85. The pitch is below the coherent limit
lambda / NA = 227 nm, so only off-axis source points bring a first diffraction order into the pupil:
two-beam imaging gives the paper image's low-contrast, purely sinusoidal profile. A bridge joins
lines 1 and 2 at the centre of the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sinsemi.data.imaging import Optics
from sinsemi.data.layouts import Bridge, ContactHoles, Defect, FieldOfView, LineSpace, Open, Particle, SramCell
from sinsemi.data.scene import Scene
from sinsemi.data.sensor import Sensor
from sinsemi.errors import InputError


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    scene: Scene
    defects: tuple[Defect, ...] = field(default_factory=tuple)


def _scene(**kw):
    return Scene(**kw)


LINE_PAIR_LAYOUT = LineSpace(pitch_nm=192.0, duty=0.5, orientation="vertical", offset_nm=187.0,
                             ler_sigma_nm=0.3, ler_corr_nm=30.0, placement_sigma_nm=0.86, feature=0.69, background=1.0)
LINE_PAIR_OPTICS = Optics(wavelength_nm=193.0, na=0.85, sigma=0.7, defocus_nm=0.0, source_samples=9)
LINE_PAIR_SENSOR = Sensor(photon_budget=1450.0, diffusion_px=0.97, read_noise_e=3.0, gain=0.0661, offset=0.0, output="uint8")
FIELD_96 = FieldOfView(height_px=96, width_px=96, pixel_nm=10.0, oversample=4, guard_px=0)


def _line_pair() -> Preset:
    return Preset(
        name="line_pair",
        description="vertical 192 nm line pairs, one bridge at the centre (looks like the SinSEMI paper's image)",
        scene=_scene(layout=LINE_PAIR_LAYOUT, fov=FIELD_96, optics=LINE_PAIR_OPTICS, sensor=LINE_PAIR_SENSOR),
        defects=(Bridge(line=1, along_nm=480.0, length_nm=50.0),),
    )


def _line_open() -> Preset:
    p = _line_pair()
    return Preset(name="line_open", description="the line_pair scene with an open (break) in line 2 instead",
                  scene=p.scene, defects=(Open(line=2, along_nm=480.0, length_nm=70.0),))


def _contact_holes() -> Preset:
    return Preset(
        name="contact_holes",
        description="a 240 nm-pitch array of 120 nm contact holes with one particle between four holes",
        scene=_scene(layout=ContactHoles(pitch_x_nm=240.0, pitch_y_nm=240.0, diameter_nm=120.0, offset_x_nm=120.0,
                                         offset_y_nm=120.0, cd_sigma_nm=2.0, feature=1.0, background=0.1),
                     fov=FieldOfView(height_px=96, width_px=96, pixel_nm=10.0, guard_px=16),
                     optics=Optics(wavelength_nm=193.0, na=0.85, sigma=0.7),
                     sensor=Sensor(photon_budget=10000.0, diffusion_px=0.7, read_noise_e=10.0, gain=0.045, offset=0.0)),
        defects=(Particle(x_nm=480.0, y_nm=480.0, radius_nm=40.0, amplitude=0.0),),
    )


def _sram() -> Preset:
    return Preset(
        name="sram",
        description="a stylised SRAM-like cell, tiled, with one particle",
        scene=_scene(layout=SramCell(), fov=FieldOfView(height_px=96, width_px=96, pixel_nm=10.0, guard_px=16),
                     optics=Optics(wavelength_nm=193.0, na=0.85, sigma=0.7),
                     sensor=Sensor(photon_budget=10000.0, diffusion_px=0.7, read_noise_e=10.0, gain=0.02, offset=0.0)),
        defects=(Particle(x_nm=300.0, y_nm=500.0, radius_nm=40.0, amplitude=0.0),),
    )


PRESETS = {"line_pair": _line_pair, "line_open": _line_open, "contact_holes": _contact_holes, "sram": _sram}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; unknown names raise one error listing the known presets."""
    if name not in PRESETS:
        raise InputError(f"unknown simulator preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]()
