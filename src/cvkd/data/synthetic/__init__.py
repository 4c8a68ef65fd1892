"""The built-in synthetic action benchmark: class catalogue, numpy renderer, generator and contact sheet.

`generate` writes a benchmark folder; `profiles` says which classes a benchmark draws and how each video picks its
cues, from the tables in `catalogue` (the default `split` profile) and `realistic`; `render` draws one clip; `sheet`
draws the contact sheet. The names below are the package's public surface.
"""

from cvkd.data.synthetic.catalogue import CLASS_CATALOGUE, DEFAULT_CLASSES, ClassSpec
from cvkd.data.synthetic.generate import (
    CODECS, CONTACT_SHEET, DEFAULT_FRAMES, DEFAULT_Q, DEFAULT_SEED, DEFAULT_SIZE, DEFAULT_VIDEOS_PER_CLASS, FPS, GOP,
    MANIFEST, SynthSettings, SynthSummary, encode_h264, generate_synthetic, render_video, split_of, video_relpath,
    video_rng, write_contact_sheet,
)
from cvkd.data.synthetic.profiles import DEFAULT_PROFILE, PROFILES, Profile, get_profile
from cvkd.data.synthetic.render import Scene, draw_scene, render_clip, sample_scene

__all__ = [
    "CLASS_CATALOGUE", "CODECS", "CONTACT_SHEET", "ClassSpec", "DEFAULT_CLASSES", "DEFAULT_FRAMES", "DEFAULT_Q",
    "DEFAULT_PROFILE", "DEFAULT_SEED", "DEFAULT_SIZE", "DEFAULT_VIDEOS_PER_CLASS", "FPS", "GOP", "MANIFEST", "PROFILES",
    "Profile", "Scene", "SynthSettings", "SynthSummary", "draw_scene", "encode_h264", "generate_synthetic",
    "get_profile", "render_clip", "render_video", "sample_scene",
    "split_of", "video_relpath", "video_rng", "write_contact_sheet",
]
