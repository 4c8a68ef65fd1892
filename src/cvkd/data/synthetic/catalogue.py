"""The synthetic benchmark's classes, written as data: one `ClassSpec` per class, one `Look` per appearance.

This is the `split` profile's catalogue (profiles.py lists the others).

Classes come in pairs that share everything but one cue, so that no single CoViAR stream separates them all:
an I-frame sees the shape but not where it goes, the motion vectors see where it goes but hardly its shape, and
the residual sees what block motion cannot predict (blinking, rotation, growth). `--classes N` takes the first N
entries, so the order below is part of the benchmark's definition.

Speeds are in pixels per frame whatever the frame size (motion vectors stay in the range CoViAR's +-20 px
mapping resolves); sizes scale with the frame. Directions are degrees counter-clockwise from "right", so 90 is up.
No class depends on left versus right or on the sense of rotation: training flips frames horizontally (and negates
the MV x channel), which would make such labels ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass

SHAPES = ("disc", "square", "triangle", "ring", "bar")
OBJECT_TEXTURES = ("grating", "checker", "blobs")

Range = tuple[float, float]
Tint = tuple[float, float, float]  # RGB in 0..1 that a random colour is pulled towards

_STILL: Range = (0.0, 0.0)
_DRIFT: Range = (0.0, 0.35)  # a slow wander in a random direction, so that "not moving" is never pixel-exact
_TRANSLATE: Range = (1.0, 1.6)
_BLINK: Range = (0.35, 0.5)


@dataclass(frozen=True)
class ClassSpec:
    """One action class: the main object's shape and the ranges its motion is drawn from, per video."""

    name: str
    shape: str
    summary: str
    direction: float | None = None  # degrees (90 = up); None: a random direction per video
    speed: Range = _DRIFT  # px/frame along `direction`
    spin: Range = _STILL  # degrees/frame, the sense of rotation drawn at random
    zoom: Range = _STILL  # log-scale change per frame (> 0 grows, < 0 shrinks)
    sway: Range = _STILL  # amplitude in px of a horizontal back-and-forth
    blink: Range = _STILL  # relative amplitude of a brightness oscillation
    either_side: bool = False  # mirror `direction` left-right in half the videos, drawn per video (e.g. "sideways")

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"class {self.name}: unknown shape {self.shape!r}, expected one of {SHAPES}")
        for field_name in ("speed", "spin", "zoom", "sway", "blink"):
            low, high = getattr(self, field_name)
            if low > high:
                raise ValueError(f"class {self.name}: {field_name} range {low}..{high} is reversed")


@dataclass(frozen=True)
class Look:
    """How a clip looks: the main object's shape, tint and texture, and its background (None: random per video)."""

    shape: str
    tint: Tint
    texture: str
    background: str | None = None  # background texture kind
    background_tint: Tint | None = None
    spread: float = 0.35  # share of a random colour in the object's and background's colours (the rest is the tint)

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"look: unknown shape {self.shape!r}, expected one of {SHAPES}")
        for kind in (self.texture, self.background or OBJECT_TEXTURES[0]):
            if kind not in OBJECT_TEXTURES:
                raise ValueError(f"look: unknown texture {kind!r}, expected one of {OBJECT_TEXTURES}")


@dataclass(frozen=True)
class Mix:
    """How often a video borrows the cues of another class (drawn per video; the three events exclude each other)."""

    look: float = 0.0  # its look only: the I-frame is misled, motion can still tell
    motion: float = 0.0  # its motion only (direction, speed, spin, zoom, sway, blink): the look still tells
    both: float = 0.0  # look and motion of one other class: a video that looks and moves like another class

    def __post_init__(self) -> None:
        if min(self.look, self.motion, self.both) < 0 or self.look + self.motion + self.both > 1:
            raise ValueError(f"mix: probabilities must be >= 0 and sum to <= 1, got {self}")

    @property
    def any(self) -> bool:
        """Whether any video borrows anything."""
        return self.look + self.motion + self.both > 0


# In the split profile the main object's look goes with its shape (as an action's look goes with its objects), so
# the I-frame stream has a learnable appearance cue even from a few hundred clips trained from scratch; the
# background is random.
SHAPE_LOOKS: dict[str, Look] = {
    "disc": Look("disc", (1.0, 0.3, 0.2), "grating"),
    "square": Look("square", (0.2, 0.5, 1.0), "checker"),
    "triangle": Look("triangle", (0.3, 1.0, 0.3), "blobs"),
    "ring": Look("ring", (1.0, 0.9, 0.2), "grating"),
    "bar": Look("bar", (0.8, 0.3, 1.0), "checker"),
}


CLASS_CATALOGUE: tuple[ClassSpec, ...] = (
    ClassSpec("disc_up", "disc", "a disc moves up", direction=90.0, speed=_TRANSLATE),
    ClassSpec("disc_down", "disc", "a disc moves down", direction=-90.0, speed=_TRANSLATE),
    ClassSpec("square_up", "square", "a square moves up", direction=90.0, speed=_TRANSLATE),
    ClassSpec("square_down", "square", "a square moves down", direction=-90.0, speed=_TRANSLATE),
    ClassSpec("ring_blink", "ring", "a drifting ring blinks", blink=_BLINK),
    ClassSpec("ring_steady", "ring", "a drifting ring keeps its brightness"),
    ClassSpec("triangle_spin", "triangle", "a drifting triangle spins", spin=(5.0, 9.0)),
    ClassSpec("triangle_drift", "triangle", "a drifting triangle keeps its orientation"),
    ClassSpec("bar_grow", "bar", "a drifting bar grows", zoom=(0.015, 0.025)),
    ClassSpec("bar_shrink", "bar", "a drifting bar shrinks", zoom=(-0.025, -0.015)),
    ClassSpec("disc_sway", "disc", "a disc sways left and right", sway=(6.0, 10.0)),
    ClassSpec("square_up_blink", "square", "a square moves up and blinks", direction=90.0, speed=_TRANSLATE,
              blink=_BLINK),
    # Fine-grained pairs: the same cue as an earlier class at a smaller magnitude (speed, spin, blink, growth).
    ClassSpec("disc_up_slow", "disc", "a disc moves up slowly", direction=90.0, speed=(0.45, 0.75)),
    ClassSpec("triangle_spin_slow", "triangle", "a drifting triangle spins slowly", spin=(2.0, 3.5)),
    ClassSpec("ring_blink_faint", "ring", "a drifting ring blinks faintly", blink=(0.12, 0.2)),
    ClassSpec("bar_grow_slow", "bar", "a drifting bar grows slowly", zoom=(0.006, 0.01)),
)

DEFAULT_CLASSES = 8
