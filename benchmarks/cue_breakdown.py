"""Test accuracy of each stream split by what a realistic-profile video borrowed: nothing, another class's look,
its motion, or both.

Run: .venv/bin/python benchmarks/cue_breakdown.py DATA SCORES_PREFIX [SCORES_PREFIX ...]

DATA is a benchmark drawn with `cvkd synth --profile realistic`; each SCORES_PREFIX is what `cvkd test RUN
--save-scores PREFIX` wrote (PREFIX_iframe.npz, PREFIX_mv.npz, PREFIX_residual.npz and PREFIX.npz for the fused
scores), e.g. one per teacher seed. Each video's cues are drawn again from its own generator, as `cvkd synth` drew
them, so the split needs nothing beyond the data's manifest. Prints, per stream, the videos and top-1 % in each
category (pooled over the prefixes) and the overall top-1; the mix's share of a category moves a stream's overall
accuracy only through that category's row, which is how docs/synthetic.md reasons about the calibration.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from cvkd.data.synthetic import get_profile, video_rng
from cvkd.data.synthetic.profiles import draw_cues
from cvkd.scores.files import load_scores

STREAMS = {"iframe": "_iframe", "mv": "_mv", "residual": "_residual", "fused": ""}
CATEGORIES = ("nothing", "look", "motion", "both")
VIDEO_INDEX = re.compile(r"_(\d+)\.[^.]+$")


def cue_categories(data: Path, names: np.ndarray, labels: np.ndarray) -> list[str]:
    """What each listed video borrowed, drawn again from the benchmark's manifest and the video's generator."""
    manifest = json.loads((data / "synth.json").read_text())
    settings = manifest["settings"]
    profile = get_profile(settings.get("profile", "split"))
    if manifest.get("mix") != {key: getattr(profile.mix, key) for key in manifest.get("mix", {})}:
        raise SystemExit(f"{data / 'synth.json'}: drawn with another mix than this code's {profile.mix}")
    categories = []
    for name, label in zip(names, labels):
        match = VIDEO_INDEX.search(str(name))
        if match is None:
            raise SystemExit(f"{name}: not a synthetic video name (CLASS_NNN.mp4)")
        cues = draw_cues(profile, settings["classes"], int(label), video_rng(settings["seed"], int(label),
                                                                               int(match.group(1))))
        look, motion = cues.look_from != label, cues.motion_from != label
        categories.append("both" if look and motion else "look" if look else "motion" if motion else "nothing")
    return categories


def main() -> None:
    """Print the per-category table for the given benchmark and score prefixes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("prefixes", nargs="+")
    args = parser.parse_args()
    print("| stream | " + " | ".join(f"{c}: videos, top-1 %" for c in CATEGORIES) + " | overall top-1 % |")
    print("|---|" + "---:|" * (len(CATEGORIES) + 1))
    for stream, suffix in STREAMS.items():
        hits: dict[str, list[bool]] = {c: [] for c in CATEGORIES}
        for prefix in args.prefixes:
            scores = load_scores(f"{prefix}{suffix}.npz")
            correct = scores.scores.argmax(1) == scores.labels
            for category, right in zip(cue_categories(args.data, scores.names, scores.labels), correct):
                hits[category].append(bool(right))
        runs = len(args.prefixes)
        cells = [f"{len(h) // runs}, {100 * np.mean(h):.1f}" if h else "0, -" for h in hits.values()]
        overall = 100 * np.mean([right for h in hits.values() for right in h])
        print(f"| {stream} | " + " | ".join(cells) + f" | {overall:.2f} |")


if __name__ == "__main__":
    main()
