"""SIGKILL `cvkd prepare`, `cvkd reencode` and `cvkd train` at several moments; running the same command again ends
with the result of an uninterrupted run, and nothing half-written is ever read back.

(`tests/engine/test_resume.py` kills a run right after its first checkpoint and checks optimiser state and log
rows too; here the kills land at drawn moments, including during checkpoint and video writes.)
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest
import torch
from clips import encode_with_pyav, moving_square, pan
from processes import cvkd_command, kill_group

from cvkd.codec.index import index_video
from cvkd.config import load_config
from cvkd.data.lists import PREPARE_REPORT_FILE
from cvkd.data.synthetic import generate_synthetic
from cvkd.runs.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint
from cvkd.runs.folder import CONFIG_FILE, LOG_FILE, SUMMARY_FILE
from cvkd.runs.schema import RunConfig
from cvkd.engine.cache_files import MANIFEST
from cvkd.engine.teacher_cache import TeacherCache
from cvkd.engine.train import CACHE_FOLDER, train

SOURCE_SIZE = (320, 240)
SOURCE_FRAMES = 96
SOURCES_PER_CLASS = 10
RUN_SECONDS = 240  # bound on any one command; none comes near it
EPOCHS = 3
TINY_RUN = (
    "device=cpu", "optim.layer_lr=uniform", "optim.lr=3e-3", f"optim.epochs={EPOCHS}", "optim.lr_steps=[2]",
    "data.crop_size=48", "data.workers=0", "data.segments=2", "data.val_segments=2", "data.batch_size=3",
    "model.streams={iframe: cnn_tiny, mv: cnn_tiny}",
)


@pytest.fixture(scope="module")
def source_videos(tmp_path_factory) -> Path:
    """Two classes of ten 320x240 AVI clips (MPEG-4, GOP 30), each a little different: root/<class>/<video>.avi."""
    root = tmp_path_factory.mktemp("sources")
    for k in range(SOURCES_PER_CLASS):
        (root / "pan").mkdir(exist_ok=True)
        (root / "square").mkdir(exist_ok=True)
        encode_with_pyav(pan(SOURCE_SIZE, SOURCE_FRAMES, (1 + k % 3, k % 2)), root / "pan" / f"v{k}.avi",
                         container_format="avi", gop=30)
        encode_with_pyav(moving_square(SOURCE_SIZE, SOURCE_FRAMES, (2, k % 2), (4 + k, 8), side=32),
                         root / "square" / f"v{k}.avi", container_format="avi", gop=30)
    return root


def run_to_end(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run a command to completion (bounded); fail the test with its stderr if it does not succeed."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=RUN_SECONDS)
    assert done.returncode == 0, f"{' '.join(command[2:5])} failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done


def kill_when(
    command: list[str], cwd: Path, spawn, ready: Callable[[], bool], delay: float, log: Path
) -> bool:
    """Start `command`, poll until `ready()`, wait `delay` s more, SIGKILL its process group; False if it ended first."""
    with open(log, "a") as output:
        process = spawn(command, cwd, stdout=output, stderr=output)
    deadline = time.monotonic() + RUN_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            time.sleep(delay)
            if process.poll() is not None:
                break
            kill_group(process)
            return True
        time.sleep(0.002)
    assert process.wait(timeout=RUN_SECONDS) == 0, f"the command failed before its kill:\n{log.read_text()[-3000:]}"
    return False


def visible_files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` whose name does not start with a dot (temporary files do), relative path -> bytes."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    }


def temporary_files(folder: Path) -> list[str]:
    """Names of the hidden temporary files (`.NAME.XXXX.tmp.EXT`) under `folder`."""
    return sorted(path.name for path in folder.rglob(".*.tmp*"))


def assert_complete_videos(folder: Path, frames: int) -> None:
    """Every visible video under `folder` is whole: it indexes and holds all `frames` frames."""
    for path in folder.rglob("*.mp4"):
        if not path.name.startswith("."):
            assert index_video(path, use_cache=False).num_frames == frames, path


def count_videos(folder: Path) -> Callable[[], int]:
    return lambda: sum(1 for path in folder.rglob("*.mp4") if not path.name.startswith("."))


def interrupt_repeatedly(
    command: list[str], cwd: Path, spawn, triggers: list[tuple[Callable[[], bool], float]],
    check: Callable[[], str], log: Path,
) -> list[str]:
    """Kill `command` once per trigger (re-running it each time) and check the state after each kill, then run it
    to the end; return, per kill that landed before the command finished, what `check` saw after it."""
    moments = []
    for ready, delay in triggers:
        if not kill_when(command, cwd, spawn, ready, delay, log):
            break
        moments.append(check())
    run_to_end(command, cwd)
    return moments


def videos_left(folder: Path, frames: int) -> Callable[[], str]:
    """A check for video-writing commands: every visible video is whole; says how many there are."""

    def check() -> str:
        assert_complete_videos(folder, frames)
        return f"{count_videos(folder)()} videos done, {len(temporary_files(folder))} temporary"

    return check


# -- prepare ------------------------------------------------------------------------------------------------------
def prepare_command(source: Path, out: Path) -> list[str]:
    return cvkd_command("prepare", "folder", str(source), "--out", str(out), "--size", "x".join(map(str, SOURCE_SIZE)),
                        "--workers", "2", "--test-fraction", "0.3")


def without_counts(report: bytes) -> dict:
    """A prepare report without the counts that say how much this run did (they differ after a resume)."""
    payload = json.loads(report)
    counts = payload.pop("counts")
    assert counts["encoded"] + counts["already_encoded"] == counts["listed"]
    return {**payload, "counts": {k: v for k, v in counts.items() if k not in ("encoded", "already_encoded")}}


def test_prepare_killed_at_several_moments_ends_like_an_uninterrupted_run(source_videos, tmp_path, spawn) -> None:
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_to_end(prepare_command(source_videos, reference), tmp_path)
    total = 2 * SOURCES_PER_CLASS
    done = count_videos(killed / "videos")
    rng = random.Random(7)
    triggers = [(lambda k=k: done() >= k, rng.uniform(0, 0.05)) for k in (1, total // 3, 2 * total // 3)]

    kills = interrupt_repeatedly(prepare_command(source_videos, killed), tmp_path, spawn, triggers,
                                 videos_left(killed, SOURCE_FRAMES), tmp_path / "prepare.log")

    print(f"\nprepare: kills survived {kills}; temporary files left: {temporary_files(killed)}")
    assert kills
    expected, found = visible_files(reference), visible_files(killed)
    assert sorted(found) == sorted(expected)
    different = [name for name in expected if name != PREPARE_REPORT_FILE and found[name] != expected[name]]
    assert not different, different  # same videos byte for byte, same classes.txt and CSV lists
    assert without_counts(found[PREPARE_REPORT_FILE]) == without_counts(expected[PREPARE_REPORT_FILE])
    for listing in ("train.csv", "test.csv"):
        assert ".tmp" not in found[listing].decode()


# -- reencode -----------------------------------------------------------------------------------------------------
def test_reencode_killed_at_several_moments_ends_like_an_uninterrupted_run(source_videos, tmp_path, spawn) -> None:
    size = "x".join(map(str, SOURCE_SIZE))
    command = lambda out: cvkd_command("reencode", str(source_videos), "--out", str(out), "--size", size,  # noqa: E731
                                       "--workers", "1")
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_to_end(command(reference), tmp_path)
    done = count_videos(killed)
    rng = random.Random(11)
    triggers = [(lambda k=k: done() >= k, rng.uniform(0, 0.05)) for k in (2, 8, 14)]

    kills = interrupt_repeatedly(command(killed), tmp_path, spawn, triggers, videos_left(killed, SOURCE_FRAMES),
                                 tmp_path / "reencode.log")

    print(f"\nreencode: kills survived {kills}; temporary files left: {temporary_files(killed)}")
    assert kills
    assert visible_files(killed) == visible_files(reference)


# -- synth (the demo's first step) -------------------------------------------------------------------------------
def test_synth_killed_at_several_moments_ends_like_an_uninterrupted_run(tmp_path, spawn) -> None:
    command = lambda out: cvkd_command("synth", str(out), "--classes", "3", "--videos-per-class", "10",  # noqa: E731
                                       "--size", "96x96", "--frames", "25", "--workers", "1", "--quiet")
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_to_end(command(reference), tmp_path)
    done = count_videos(killed / "videos")
    rng = random.Random(13)
    triggers = [(lambda k=k: done() >= k, rng.uniform(0, 0.05)) for k in (2, 12, 22)]

    kills = interrupt_repeatedly(command(killed), tmp_path, spawn, triggers, videos_left(killed, 25),
                                 tmp_path / "synth.log")

    print(f"\nsynth: kills survived {kills}; temporary files left: {temporary_files(killed)}")
    assert kills
    assert temporary_files(killed) == []  # synth tidies what a killed run left
    assert visible_files(killed) == visible_files(reference)


# -- train --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    """3 classes x 5 videos (9 train, 3 val), 64x64, 13 frames."""
    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, classes=3, videos_per_class=5, size=(64, 64), frames=13, seed=0, workers=1,
                       progress=False)
    return root


def run_overrides(data: Path, output: Path, name: str) -> list[str]:
    return [f"data.root={data}", f"output_dir={output}", f"name={name}", *TINY_RUN]


def assert_run_folder_readable(run: Path) -> None:
    """Whatever a killed run left is whole: checkpoints load (weights-only), the log and summary parse."""
    for name in (LAST, BEST):
        if (run / name).exists():
            load_checkpoint(run / name)
    for line in (run / LOG_FILE).read_text().splitlines() if (run / LOG_FILE).exists() else []:
        json.loads(line)
    if (run / SUMMARY_FILE).exists():
        json.loads((run / SUMMARY_FILE).read_text())


def plant_stray_checkpoint(run: Path, like: dict, name: str = ".last.planted.tmp.pt") -> Path:
    """A temporary file as a killed save leaves it, but holding a valid, finished checkpoint of other weights (all
    7.0): if resume ever read it, the run would stop at once with wrong weights."""
    stray = run / name
    poisoned = {**like, "epoch": EPOCHS - 1, "model": {k: torch.full_like(v, 7.0) for k, v in like["model"].items()}}
    save_checkpoint({k: v for k, v in poisoned.items() if k != "format"}, stray)
    return stray


def grows(count: Callable[[], int]) -> Callable[[], bool]:
    """A trigger that fires once `count()` exceeds its value at the trigger's first poll (right after the start)."""
    baseline: list[int] = []

    def ready() -> bool:
        if not baseline:
            baseline.append(count())
        return count() > baseline[0]

    return ready


def interrupt_run(verb: str, overrides: list[str], run: Path, spawn, cwd: Path, seed: int) -> list[str]:
    """`cvkd VERB ... --resume` killed during set-up, epoch 1 or the teacher cache, then twice shortly after an epoch
    of the re-run ends (during the next epoch or while its checkpoint is written), re-run each time and then to the
    end; a stray temporary checkpoint is planted after the first kill that leaves a checkpoint. Returns what each
    kill left."""
    command = cvkd_command(verb, *overrides, "--resume", "--no-progress")

    def rows() -> int:
        return len((run / LOG_FILE).read_text().splitlines()) if (run / LOG_FILE).exists() else 0

    rng = random.Random(seed)
    triggers = [
        (lambda: (run / CONFIG_FILE).exists(), rng.uniform(0.0, 0.5)),
        (grows(rows), rng.uniform(0.0, 0.3)),  # an epoch finished in this attempt: kill in the next or its save
        (grows(rows), rng.uniform(0.0, 0.3)),
    ]

    def check() -> str:
        assert_run_folder_readable(run)
        epochs = load_checkpoint(run / LAST)["epoch"] + 1 if (run / LAST).exists() else 0
        leftovers = [name for name in temporary_files(run) if name != ".last.planted.tmp.pt"]
        moment = f"{epochs} epochs saved, {len(leftovers)} temporary"
        if (run / LAST).exists() and not (run / ".last.planted.tmp.pt").exists():
            plant_stray_checkpoint(run, load_checkpoint(run / LAST))
        return moment

    kills = interrupt_repeatedly(command, cwd, spawn, triggers, check, cwd / f"{verb}.log")
    print(f"\n{verb}: kills survived {kills}; temporary files left: {temporary_files(run)}")
    return kills


def assert_same_run(run: Path, reference: Path) -> None:
    """Bit-identical final weights and the same per-epoch figures as the uninterrupted reference run."""
    final, expected = load_checkpoint(run / LAST), load_checkpoint(reference / LAST)
    assert final["epoch"] == expected["epoch"] == EPOCHS - 1
    assert sorted(final["model"]) == sorted(expected["model"])
    assert all(torch.equal(final["model"][k], expected["model"][k]) for k in expected["model"])
    rows_killed = [json.loads(line) for line in (run / LOG_FILE).read_text().splitlines()]
    rows_reference = [json.loads(line) for line in (reference / LOG_FILE).read_text().splitlines()]
    for key in ("epoch", "lr", "train_loss", "val_top1"):
        assert [r[key] for r in rows_killed] == [r[key] for r in rows_reference], key
    assert temporary_files(run) == [".last.planted.tmp.pt"]  # not read, and not taken for a killed save's leftover


def test_train_killed_at_several_moments_resumes_to_the_uninterrupted_weights(synthetic_root, tmp_path, spawn) -> None:
    torch.set_num_threads(1)
    runs = tmp_path / "runs"
    reference = train(load_config(RunConfig, None, run_overrides(synthetic_root, runs, "reference")), progress=False)

    kills = interrupt_run("train", run_overrides(synthetic_root, runs, "killed"), runs / "killed", spawn, tmp_path, 3)

    assert kills
    assert_same_run(runs / "killed", reference.run_dir)


def test_distill_with_a_teacher_cache_killed_at_several_moments_ends_like_an_uninterrupted_run(
    synthetic_root, tmp_path, spawn
) -> None:
    torch.set_num_threads(1)
    runs = tmp_path / "runs"
    one_epoch = ["optim.epochs=1", "optim.lr_steps=[]"]  # no learning-rate step beyond the last epoch
    teacher = train(load_config(RunConfig, None, [*run_overrides(synthetic_root, runs, "teacher"), *one_epoch]),
                    progress=False).run_dir
    student = ["model.streams={iframe: cnn_tiny}", "distill.strategy=avg_targets", f"distill.teachers=[{teacher}]",
               "distill.cache=true", "distill.cache_views=2"]
    reference = train(load_config(RunConfig, None, [*run_overrides(synthetic_root, runs, "reference"), *student]),
                      progress=False).run_dir

    kills = interrupt_run("distill", [*run_overrides(synthetic_root, runs, "killed"), *student], runs / "killed",
                          spawn, tmp_path, 5)

    assert kills
    assert_same_run(runs / "killed", reference)
    key = json.loads((reference / CACHE_FOLDER / MANIFEST).read_text())["key"]
    killed, whole = (TeacherCache.open(run / CACHE_FOLDER, key).read_all()[0] for run in (runs / "killed", reference))
    assert torch.equal(killed, whole)


def test_a_stray_temporary_checkpoint_is_never_read(synthetic_root, tmp_path) -> None:
    """Resume and `load_run` read last.pt / best.pt only, never a killed save's temporary file."""
    from cvkd.runs.folder import load_run

    torch.set_num_threads(1)
    runs = tmp_path / "runs"
    overrides = run_overrides(synthetic_root, runs, "run")
    train(load_config(RunConfig, None, [*overrides, "optim.epochs=1", "optim.lr_steps=[]"]), progress=False)
    run = runs / "run"
    one_epoch = load_checkpoint(run / LAST)
    stray = plant_stray_checkpoint(run, one_epoch, ".last.k7x2q9z0.tmp.pt")  # named exactly like a killed save's
    shutil.copy(stray, run / ".best.k7x2q9z0.tmp.pt")

    loaded = load_run(run).model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in one_epoch["model"].items())
    train(load_config(RunConfig, None, overrides), resume=True, progress=False)
    resumed = load_checkpoint(run / LAST)
    assert resumed["epoch"] == EPOCHS - 1
    assert not any(torch.equal(v, torch.full_like(v, 7.0)) for v in resumed["model"].values() if v.is_floating_point())
    assert ".last.k7x2q9z0.tmp.pt" not in temporary_files(run)  # the next save of last.pt removed its leftover
