"""The real-footage check: a folder of real clips, one sub-folder per class, through cvkd end to end.

    python benchmarks/real_footage.py --clips my_clips --out /tmp/real [--epochs N] [--seeds N] [--recipe NAME]

It prepares the folder with `cvkd prepare folder` (its own train / val / test split, or the folder's train/ val/ test/
sub-folders when it has them), trains the teacher and the three compact students the demo trains (no KD, KD from the
fused teacher, each stream from its own teacher stream) with mirroring off, tests every teacher seed per stream, and
prints `cvkd compare`'s table. Runs that finished are reused, interrupted ones resumed. The clips are yours: nothing
here is committed (docs/benchmarks.md, "Real footage", says how the figures there were made).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

from cvkd.cli import main as cvkd
from cvkd.commands.train import resolve_recipe
from cvkd.config import load_config
from cvkd.data.lists import VideoList, read_classes
from cvkd.data.prepare import folder_splits
from cvkd.demo import teacher_name
from cvkd.engine.teachers import split_spec
from cvkd.engine.train import is_finished
from cvkd.errors import ConfigError, CvkdError, DatasetError
from cvkd.runs.schema import RunConfig

DEFAULT_RECIPE = "small_real/teachers"
STUDENTS = ("compact_nokd", "compact_kd", "compact_streams")  # beside the teacher recipe, as in synthetic/
MIN_CLIPS = 5  # per class of a flat folder: one test clip, one validation clip and three to train on
TEST_FRACTION = 0.2
VAL_FRACTION = 0.2
SEGMENTS, CROPS = 5, 1  # the demo's test protocol


def check_clips(clips: Path) -> dict[str, int]:
    """Clips per class of a folder `<class>/<clip>` (or `train|val|test/<class>/<clip>`), split as `cvkd prepare`
    will split it; DatasetError naming the folder when it holds no clips, one class, or a class with too few clips to
    be trained on and tested."""
    splits = folder_splits(clips, TEST_FRACTION, seed=0)  # DatasetError when there is no folder or no clip
    classes = splits["train"].classes
    if len(classes) < 2:
        raise DatasetError(f"{clips}: one class ({classes[0]}); a comparison needs at least two class folders")
    if "test" not in splits:
        raise DatasetError(f"{clips}: has train/ but no test/ folder")
    train, test = (Counter(classes[label] for label in splits[subset].labels) for subset in ("train", "test"))
    counts = {name: train[name] + test[name] for name in classes}
    if not (clips / "train").is_dir():
        short = [name for name in classes if counts[name] < MIN_CLIPS]
        if short:
            raise DatasetError(f"{clips}: class {short[0]!r} has {counts[short[0]]} clip(s); each class needs at "
                               f"least {MIN_CLIPS} (one to test, one to validate, three to train)")
    for name in classes:
        for subset, counted in (("train", train), ("test", test)):
            if not counted[name]:
                hint = (f"add some to {clips / subset / name}" if (clips / "train").is_dir() else
                        "clips named v_<name>_g<NN>_c<MM> are held out a whole group at a time: give it more groups")
                raise DatasetError(f"{clips}: class {name!r} gets no {subset} clip ({hint})")
    return counts


def schedule_overrides(epochs: int | None) -> list[str]:
    """`--epochs N`: N epochs for every run, the learning rate divided by 10 after 80 % of them (the recipe's own
    schedule otherwise)."""
    if epochs is None:
        return []
    if epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    decay = int(0.8 * epochs)
    return [f"optim.epochs={epochs}", f"optim.lr_steps={[decay] if 0 < decay < epochs else []}"]


def relocated_teachers(config: RunConfig, teacher: Path) -> list[str]:
    """The recipe's teacher specs (`RUN[:output]`) pointed at `teacher`, the run this check trained."""
    specs = []
    for spec in config.distill.teachers:
        _, output = split_spec(spec)
        specs.append(f"{teacher}:{output}" if output else str(teacher))
    return specs


def train_run(recipe: str, overrides: Sequence[str], run: Path) -> None:
    """Train (or resume, or reuse when finished) one run with cvkd's own command; CvkdError if it failed."""
    if is_finished(run):
        print(f"reusing finished run {run}")
        return
    config = load_config(RunConfig, recipe, list(overrides))
    command = "distill" if config.distill.teachers else "train"
    if cvkd([command, recipe, *overrides, "--resume", "--no-progress"]) != 0:
        raise CvkdError(f"cvkd {command} {recipe} failed (its message is above)")


def run_check(clips: Path, out: Path, epochs: int | None = None, seeds: int = 1, recipe: str = DEFAULT_RECIPE,
              workers: int = 2) -> Path:
    """Prepare, train the teacher and the compact students with mirroring off, test and compare; return the report
    folder. Every step prints what cvkd prints."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    counts = check_clips(clips)
    teacher_recipe = resolve_recipe(recipe)
    if not Path(teacher_recipe).is_file():
        raise ConfigError(f"--recipe {recipe}: no such file or built-in recipe")
    student_recipes = [str(Path(teacher_recipe).with_name(f"{name}.yaml")) for name in STUDENTS]
    missing = [path for path in student_recipes if not Path(path).is_file()]
    if missing:
        raise ConfigError(f"--recipe {recipe}: the students' recipes must sit beside it ({missing[0]} is missing)")
    out = out.resolve()
    data, runs = out / "data", out / "runs"

    print(f"[1/4] {len(counts)} classes, {sum(counts.values())} clips: {counts}")
    prepare = ["prepare", "folder", str(clips), "--out", str(data), "--workers", str(max(workers, 1))]
    if not (clips / "val").is_dir():
        prepare += ["--val-fraction", str(VAL_FRACTION)]
    if not (clips / "train").is_dir():
        prepare += ["--test-fraction", str(TEST_FRACTION)]
    if cvkd(prepare) != 0:
        raise CvkdError("cvkd prepare failed (its message is above)")

    common = [f"data.root={data}", f"output_dir={runs}", "data.flip=false", f"data.workers={workers}",
              *schedule_overrides(epochs)]
    teacher_base = load_config(RunConfig, teacher_recipe).name
    teachers = [runs / teacher_name(teacher_base, seed) for seed in range(seeds)]
    print(f"[2/4] teacher {teacher_recipe} x {seeds} seed(s)")
    for seed, teacher in enumerate(teachers):
        train_run(teacher_recipe, [*common, f"name={teacher.name}", f"seed={seed}"], teacher)

    print(f"[3/4] students {', '.join(STUDENTS)} x {seeds} seed(s), student seed i taught by teacher seed i")
    students: dict[str, list[Path]] = {}
    for student_recipe in student_recipes:
        config = load_config(RunConfig, student_recipe)
        for seed, teacher in enumerate(teachers):
            run = runs / teacher_name(config.name, seed)
            specs = relocated_teachers(config, teacher)
            taught = [f"distill.teachers={json.dumps(specs)}"] if specs else []
            train_run(student_recipe, [*common, *taught, f"name={run.name}", f"seed={seed}"], run)
            students.setdefault(config.name, []).append(run)

    test_videos = len(VideoList.cvkd_dataset(data, "test"))
    classes = read_classes(data / "classes.txt")
    print(f"[4/4] test split: {test_videos} videos, {len(classes)} classes, chance {100 / len(classes):.2f} %; "
          f"{SEGMENTS} segments x {CROPS} crop")
    for seed, teacher in enumerate(teachers):
        print(f"teacher seed {seed} ({teacher.name}), per stream and fused:")
        if cvkd(["test", str(teacher), "--segments", str(SEGMENTS), "--crops", str(CROPS), "--workers", str(workers),
                 "--no-progress"]) != 0:
            raise CvkdError(f"cvkd test {teacher} failed (its message is above)")
    names = list(students)
    kd, streams = names[STUDENTS.index("compact_kd")], names[STUDENTS.index("compact_streams")]
    report = out / "report"
    compare = ["compare", *[str(run) for group in students.values() for run in group],
               "--teacher", *[str(run) for run in teachers], "--segments", str(SEGMENTS), "--crops", str(CROPS),
               "--workers", str(workers), "--no-latency", "--no-progress", "--out", str(report),
               "--primary", f"several teachers teach better than one={streams}:{kd}",
               "--primary", f"compression costs little accuracy={streams}:teacher"]
    if cvkd(compare) != 0:
        raise CvkdError("cvkd compare failed (its message is above)")
    return report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: `--clips DIR --out DIR [--epochs N] [--seeds N] [--recipe NAME] [--workers N]`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, required=True,
                        help="real clips, one sub-folder per class (or train/ val/ test/ sub-folders of those)")
    parser.add_argument("--out", type=Path, required=True, help="where the prepared data, runs and report go")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of every run (default: the recipe's)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds of the teacher and of each student (default 1)")
    parser.add_argument("--recipe", default=DEFAULT_RECIPE,
                        help=f"the teacher's recipe; compact_nokd, compact_kd and compact_streams beside it are the "
                        f"students' (default {DEFAULT_RECIPE}; synthetic/teachers gives the demo's)")
    parser.add_argument("--workers", type=int, default=2, help="data-loader processes per run (default 2)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; cvkd's errors end it with one line and exit code 2."""
    args = parse_args(argv)
    try:
        run_check(args.clips, args.out, args.epochs, args.seeds, args.recipe, args.workers)
    except CvkdError as error:
        print(f"real_footage: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
