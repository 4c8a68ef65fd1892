"""Benchmark profiles: which classes a benchmark draws and how each video's look and motion are chosen.

`split` (the default) is the original benchmark: classes in pairs that differ by a cue only one stream sees.
`realistic` gives every class its own look and motion and blurs both with nuisances, so that every stream
recognises every class to a degree, the I-frame stream best (realistic.py). A video's cues are drawn here from its
own generator before its scene is: in the split profile nothing is drawn, so its videos are those of old.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvkd.data.synthetic.catalogue import CLASS_CATALOGUE, ClassSpec, Look, Mix
from cvkd.data.synthetic.realistic import REALISTIC_CATALOGUE, REALISTIC_FRAMING, REALISTIC_LOOKS, REALISTIC_MIX
from cvkd.data.synthetic.render import Framing, Scene, sample_scene
from cvkd.errors import ConfigError


@dataclass(frozen=True)
class Profile:
    """A benchmark's classes (motion and shape), their looks (None: by shape), how often videos borrow cues, and
    its framing (object size, camera pan)."""

    name: str
    summary: str
    catalogue: tuple[ClassSpec, ...]
    looks: tuple[Look, ...] | None = None
    mix: Mix = Mix()
    framing: Framing = Framing()

    def look(self, class_index: int) -> Look | None:
        """The look of a class (None: the one that goes with its shape)."""
        return None if self.looks is None else self.looks[class_index]


DEFAULT_PROFILE = "split"
PROFILES: dict[str, Profile] = {
    "split": Profile("split", "class pairs split by a cue only one stream sees", CLASS_CATALOGUE),
    "realistic": Profile("realistic", "every class its own look and motion, blurred by nuisances",
                         REALISTIC_CATALOGUE, REALISTIC_LOOKS, REALISTIC_MIX, REALISTIC_FRAMING),
}


def get_profile(name: str) -> Profile:
    """The profile called `name`; an unknown name is a ConfigError."""
    if name not in PROFILES:
        raise ConfigError(f"synth profile: must be one of {', '.join(PROFILES)}, got {name!r}")
    return PROFILES[name]


@dataclass(frozen=True)
class VideoCues:
    """Which classes lend a video its look and its motion (both its own class unless the profile's mix says)."""

    look_from: int
    motion_from: int


def draw_cues(profile: Profile, classes: int, class_index: int, rng: np.random.Generator) -> VideoCues:
    """Draw whether a video of `class_index` borrows the look, motion or both of another of the first `classes`."""
    if not profile.mix.any or classes < 2:
        return VideoCues(class_index, class_index)
    event = rng.random()
    other = (class_index + 1 + int(rng.integers(classes - 1))) % classes
    mix = profile.mix
    if event < mix.both:
        return VideoCues(other, other)
    if event < mix.both + mix.look:
        return VideoCues(other, class_index)
    if event < mix.both + mix.look + mix.motion:
        return VideoCues(class_index, other)
    return VideoCues(class_index, class_index)


def sample_video_scene(
    profile: Profile, classes: int, class_index: int, rng: np.random.Generator, size: tuple[int, int], frames: int
) -> tuple[VideoCues, Scene]:
    """Draw one video of `class_index` among the first `classes` of `profile`: its cues, then its scene."""
    cues = draw_cues(profile, classes, class_index, rng)
    scene = sample_scene(profile.catalogue[cues.motion_from], rng, size, frames, profile.look(cues.look_from),
                         profile.framing)
    return cues, scene
