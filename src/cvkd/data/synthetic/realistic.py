"""The `realistic` profile's tables: every class has its own look and its own motion, and nuisances blur both.

Real action classes differ in everything at once (objects, scene, motion), and each cue is imperfect: an I-frame
alone recognises most actions, motion and residual fewer. Here each class has a `Look` (shape, tint, texture,
background kind and tint) and a motion signature (`ClassSpec`: direction, speed, spin, zoom, sway, blink), both
distinct from every other class's; the motion ranges of some classes overlap, blinking varies from faint to strong,
and `REALISTIC_MIX` makes some videos borrow another class's look, motion or both (profiles.py draws them).

As in the split profile, no class depends on left versus right or on the sense of rotation (training flips frames).
"""

from __future__ import annotations

from cvkd.data.synthetic.catalogue import ClassSpec, Look, Mix, Tint
from cvkd.data.synthetic.render import Framing

# Object tints and scene contexts (background texture kind, background tint): names keep the table readable.
TINTS: dict[str, Tint] = {
    "red": (1.0, 0.25, 0.2), "orange": (1.0, 0.6, 0.15), "yellow": (1.0, 0.9, 0.2), "green": (0.3, 1.0, 0.3),
    "cyan": (0.2, 0.9, 1.0), "blue": (0.2, 0.45, 1.0), "purple": (0.7, 0.3, 1.0), "pink": (1.0, 0.45, 0.8),
}
SCENES: dict[str, tuple[str, Tint]] = {
    "field": ("blobs", (0.45, 0.75, 0.35)), "court": ("checker", (0.85, 0.6, 0.4)),
    "water": ("grating", (0.35, 0.55, 0.9)), "hall": ("checker", (0.6, 0.55, 0.7)),
}

_UP, _DOWN, _SIDEWAYS, _UP_SLANT, _DOWN_SLANT = 90.0, -90.0, 0.0, 45.0, -45.0

# The profile's nuisance knobs (the mix of borrowed cues is REALISTIC_MIX, at the end).
COLOUR_SPREAD = 0.1  # share of a random colour in an object's or background's colour; the rest is the class tint
DRIFT = (0.0, 0.25)  # px/frame in a random direction: the speed of classes that name no other
FLICKER = (0.15, 0.35)  # brightness oscillation of classes that do not blink: blinking is a matter of degree
# A larger main object than the split profile's (0.16-0.21 of the shorter side) and a slower camera pan (0-0.6
# px/frame): the object's motion spans more 16x16 blocks and stands out more from the background's.
REALISTIC_FRAMING = Framing(main_radius=(0.21, 0.27), pan_speed=(0.0, 0.3))

# name, what it does, (shape, tint, object texture, scene), motion (ClassSpec keywords; no direction: a random one
# per video; no speed: DRIFT; no blink: FLICKER). The MV stream sees motion accumulated since the GOP's I-frame, in
# which a speed cannot be told from how far into the GOP a frame is; so motions differ by kind rather than by rate:
# the direction (up, down, sideways, slanted up, slanted down; flipping keeps each one's class), a spin, a zoom in or
# out, a sway, and combinations of a spin with the others. Two classes hardly move (one blinks, one rests), as some
# actions hardly do, and two classes' motions look alike in the MV field (a sway and a sideways glide).
_TABLE: tuple[tuple[str, str, tuple[str, str, str, str], dict], ...] = (
    ("disc_rise", "rises", ("disc", "red", "grating", "field"), dict(direction=_UP, speed=(0.9, 1.4))),
    ("square_fall", "falls", ("square", "blue", "checker", "court"), dict(direction=_DOWN, speed=(0.9, 1.4))),
    ("triangle_whirl", "spins", ("triangle", "green", "blobs", "water"), dict(spin=(6.0, 10.0))),
    ("ring_flash", "blinks", ("ring", "yellow", "grating", "hall"), dict(blink=(0.4, 0.6))),
    ("bar_swell", "grows", ("bar", "purple", "checker", "field"), dict(zoom=(0.02, 0.035))),
    ("disc_swing", "sways widely", ("disc", "cyan", "blobs", "court"), dict(sway=(7.0, 10.0))),
    ("square_climb", "rises turning", ("square", "orange", "grating", "water"),
     dict(direction=_UP, speed=(0.7, 1.1), spin=(5.0, 8.0))),
    ("triangle_sink", "sinks turning", ("triangle", "pink", "checker", "hall"),
     dict(direction=_DOWN, speed=(0.7, 1.1), spin=(5.0, 8.0))),
    ("ring_glide", "glides sideways", ("ring", "green", "blobs", "court"),
     dict(direction=_SIDEWAYS, speed=(0.9, 1.3), either_side=True)),
    ("bar_fade", "shrinks", ("bar", "yellow", "grating", "water"), dict(zoom=(-0.035, -0.02))),
    ("disc_swirl", "grows turning and blinks", ("disc", "purple", "checker", "hall"),
     dict(zoom=(0.015, 0.03), spin=(5.0, 8.0), blink=(0.2, 0.35))),
    ("square_roll", "rolls sideways", ("square", "red", "blobs", "hall"),
     dict(direction=_SIDEWAYS, speed=(0.7, 1.1), spin=(5.0, 8.0), either_side=True)),
    ("triangle_hop", "rises on a slant and blinks", ("triangle", "orange", "grating", "court"),
     dict(direction=_UP_SLANT, speed=(0.7, 1.2), blink=(0.2, 0.35), either_side=True)),
    ("ring_rest", "rests", ("ring", "pink", "checker", "water"), dict()),
    ("bar_drop", "falls on a slant", ("bar", "cyan", "blobs", "hall"),
     dict(direction=_DOWN_SLANT, speed=(0.7, 1.2), either_side=True)),
    ("disc_vanish", "shrinks turning", ("disc", "blue", "grating", "water"),
     dict(zoom=(-0.03, -0.015), spin=(5.0, 8.0))),
)


def _look(shape: str, tint: str, texture: str, scene: str) -> Look:
    background, background_tint = SCENES[scene]
    return Look(shape, TINTS[tint], texture, background, background_tint, COLOUR_SPREAD)


REALISTIC_CATALOGUE: tuple[ClassSpec, ...] = tuple(
    ClassSpec(name, look[0], f"{look[1]} {look[0]} {verb} ({look[3]})", **{"speed": DRIFT, "blink": FLICKER, **motion})
    for name, verb, look, motion in _TABLE
)
REALISTIC_LOOKS: tuple[Look, ...] = tuple(_look(*look) for _, _, look, _ in _TABLE)

# How often a video borrows another class's look, motion or both (a class chosen uniformly among the others in use).
REALISTIC_MIX = Mix(look=0.05, motion=0.02, both=0.05)
